// Loads the gateway's page in headless Chromium, uses its form the way a person would, and
// prints what the page showed as one JSON object (tests/integration/test_gateway_browser.py
// asserts on it): per step, the reply area, the fields marked invalid with their messages, the
// focused element, and the RPCs the page sent during the step (its network events).
// usage: node page.js --url http://127.0.0.1:PORT/ --chromium /usr/bin/chromium --profile DIR
"use strict";

const { chromium } = require("playwright-core");

const STEP_TIMEOUT_MS = 15000;
const STREAM_OVER = "stream ended|^error:|^not sent:";
// The page's inputs (each with its message element #<id>-error, see fields.ts).
const FIELDS = ["name", "names", "language", "languages"];
const TOO_LONG_NAME = "a".repeat(101); // the contract allows at most 100 characters

function argument(name) {
  const index = process.argv.indexOf(`--${name}`);
  if (index < 0 || index + 1 >= process.argv.length) {
    throw new Error(`missing --${name}`);
  }
  return process.argv[index + 1];
}

// Every input marked invalid or showing a message: {aria-invalid, aria-describedby, message}.
function markedFields(fields) {
  const marked = {};
  for (const id of fields) {
    const input = document.getElementById(id);
    const message = document.getElementById(`${id}-error`);
    if (input.hasAttribute("aria-invalid") || !message.hidden || message.textContent !== "") {
      marked[id] = {
        invalid: input.getAttribute("aria-invalid"),
        describedby: input.getAttribute("aria-describedby"),
        message: message.hidden ? null : message.textContent,
      };
    }
  }
  return marked;
}

class Driver {
  constructor(page) {
    this.page = page;
    this.step = null; // the step that RPC requests are counted for: the last one started
    page.on("request", (request) => {
      const path = new URL(request.url()).pathname;
      if (this.step !== null && path.startsWith("/acme.")) this.step.requests.push(path);
    });
  }

  async open(url) {
    this.step = null;
    await this.page.goto(url, { timeout: STEP_TIMEOUT_MS });
    await this.page.waitForSelector("#ready[data-ready=true]", { timeout: STEP_TIMEOUT_MS });
  }

  // Clicks a button, then waits until the reply area shows something other than "calling..."
  // that matches `final` (a regular expression's source): a stream's replies show one by one,
  // so its call is over only once "stream ended" (or an error, or "not sent") shows. A request
  // the page refuses to send shows its "not sent" at once, in the click's own event handler.
  async call(button, final = "") {
    const step = { requests: [] };
    this.step = step;
    await this.page.click(button);
    await this.page.waitForFunction(
      (pattern) => {
        const text = document.getElementById("output").textContent;
        return text !== "" && text !== "calling..." && new RegExp(pattern).test(text);
      },
      final,
      { timeout: STEP_TIMEOUT_MS },
    );
    const output = this.page.locator("#output");
    step.text = await output.textContent();
    step.state = await output.getAttribute("data-state");
    step.fields = await this.page.evaluate(markedFields, FIELDS);
    step.focused = await this.page.evaluate(() => document.activeElement?.id ?? null);
    return step;
  }
}

// Each step names the form as it is filled in, so that no step depends on an earlier one's
// leftovers; `fill` clears an input first.
async function fill(page, values) {
  for (const [id, value] of Object.entries(values)) await page.fill(`#${id}`, value);
}

async function main() {
  const context = await chromium.launchPersistentContext(argument("profile"), {
    executablePath: argument("chromium"),
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const results = { console: [] };
  try {
    const page = await context.newPage();
    page.on("console", (message) => results.console.push(`${message.type()}: ${message.text()}`));
    page.on("pageerror", (error) => results.console.push(`pageerror: ${error.message}`));
    const driver = new Driver(page);
    const url = argument("url");
    await driver.open(url);
    results.title = await page.title();
    const valid = { name: "Ada", names: "Ada, Alan, Grace", language: "", languages: "en, fr, de" };

    // The page's own check: each invalid form is refused before sending.
    await fill(page, valid);
    results.introduce = await driver.call("#introduce");
    await fill(page, { name: "" });
    results.empty_name = await driver.call("#introduce");
    await fill(page, { name: TOO_LONG_NAME });
    results.long_name = await driver.call("#introduce");
    await fill(page, { name: " ", language: "xx" });
    results.blank_name_and_language = await driver.call("#introduce");
    await fill(page, { ...valid, names: `Ada, ${TOO_LONG_NAME}` });
    results.long_names_entry = await driver.call("#introduce-all");
    await fill(page, { ...valid, languages: "en, xx" });
    results.stream_language = await driver.call("#languages-stream", STREAM_OVER);
    await fill(page, valid);
    results.introduce_all = await driver.call("#introduce-all");
    results.stream = await driver.call("#languages-stream", STREAM_OVER);

    await page.selectOption("#protocol", "grpc-web");
    await fill(page, { ...valid, name: "Grace" });
    results.grpc_web_introduce = await driver.call("#introduce");
    await fill(page, { name: "" });
    results.grpc_web_empty_name = await driver.call("#introduce");
    await fill(page, { ...valid, name: "Alan" });
    results.grpc_web_stream = await driver.call("#languages-stream", STREAM_OVER);

    // The test hook `?novalidate`: the page sends what it would refuse, the server answers.
    await driver.open(`${url}?novalidate`);
    await fill(page, { ...valid, name: "" });
    results.server_empty_name = await driver.call("#introduce");
    await fill(page, { ...valid, language: "xx" });
    results.server_language = await driver.call("#introduce");
    await page.selectOption("#protocol", "grpc-web");
    await fill(page, { ...valid, name: "" });
    results.server_grpc_web_empty_name = await driver.call("#introduce");
  } finally {
    await context.close();
  }
  process.stdout.write(JSON.stringify(results) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
