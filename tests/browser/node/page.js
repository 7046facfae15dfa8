// Loads the gateway's page in headless Chromium, uses its form the way a person would, and
// prints what the page showed as one JSON object (tests/browser/test_page.py asserts on it).
// usage: node page.js --url http://127.0.0.1:PORT/ --chromium /usr/bin/chromium --profile DIR
"use strict";

const { chromium } = require("playwright-core");

const STEP_TIMEOUT_MS = 15000;
const STREAM_OVER = "stream ended|^error:";

function argument(name) {
  const index = process.argv.indexOf(`--${name}`);
  if (index < 0 || index + 1 >= process.argv.length) {
    throw new Error(`missing --${name}`);
  }
  return process.argv[index + 1];
}

// Clicks a button, then waits until the reply area shows something other than "calling..."
// that matches `final` (a regular expression's source): a stream's replies show one by one, so
// its call is over only once "stream ended" (or an error) shows.
async function call(page, button, final = "") {
  await page.click(button);
  await page.waitForFunction(
    (pattern) => {
      const text = document.getElementById("output").textContent;
      return text !== "" && text !== "calling..." && new RegExp(pattern).test(text);
    },
    final,
    { timeout: STEP_TIMEOUT_MS },
  );
  const output = page.locator("#output");
  return { text: await output.textContent(), state: await output.getAttribute("data-state") };
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
    await page.goto(argument("url"), { timeout: STEP_TIMEOUT_MS });
    await page.waitForSelector("#ready[data-ready=true]", { timeout: STEP_TIMEOUT_MS });
    results.title = await page.title();

    await page.fill("#name", "Ada");
    results.introduce = await call(page, "#introduce");
    await page.fill("#name", "");
    results.empty_name = await call(page, "#introduce");
    await page.fill("#names", "Ada, Alan, Grace");
    results.introduce_all = await call(page, "#introduce-all");
    await page.fill("#name", "Ada");
    await page.fill("#languages", "en, fr, de");
    results.stream = await call(page, "#languages-stream", STREAM_OVER);

    await page.selectOption("#protocol", "grpc-web");
    await page.fill("#name", "Grace");
    results.grpc_web_introduce = await call(page, "#introduce");
    await page.fill("#name", "");
    results.grpc_web_empty_name = await call(page, "#introduce");
    await page.fill("#name", "Alan");
    results.grpc_web_stream = await call(page, "#languages-stream", STREAM_OVER);
  } finally {
    await context.close();
  }
  process.stdout.write(JSON.stringify(results) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
