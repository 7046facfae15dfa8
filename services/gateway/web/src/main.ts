// The gateway's page: calls Caller.Introduce, Caller.IntroduceAll and (when the gateway
// exposes Greeter) the server stream Greeter.SayHelloLanguages, over the Connect protocol or
// gRPC-Web, and shows each reply or error (code, message and BadRequest field violations).
import { ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { CallerService } from "./proto/acme/caller/v1/caller_pb";
import { GreeterService } from "./proto/acme/greeter/v1/greeter_pb";
import { BadRequestSchema } from "./proto/google/rpc/error_details_pb";

const TIMEOUT_MS = 5000; // sent as connect-timeout-ms / grpc-timeout: the gateway passes it on

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

function transport(): Transport {
  const baseUrl = window.location.origin;
  return element<HTMLSelectElement>("protocol").value === "grpc-web"
    ? createGrpcWebTransport({ baseUrl })
    : createConnectTransport({ baseUrl });
}

function show(lines: string[], failed: boolean): void {
  const output = element<HTMLPreElement>("output");
  output.textContent = lines.join("\n");
  output.dataset.state = failed ? "error" : "ok";
}

function describe(error: unknown): string[] {
  const failure = ConnectError.from(error);
  const lines = [`error: ${failure.code === undefined ? "unknown" : codeName(failure.code)}`];
  lines.push(`message: ${failure.rawMessage}`);
  for (const detail of failure.findDetails(BadRequestSchema)) {
    for (const violation of detail.fieldViolations) {
      lines.push(`field ${violation.field}: ${violation.description}`);
    }
  }
  return lines;
}

// Connect's code names (snake case), as the protocol spells them on the wire.
const CODE_NAMES = [
  "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
  "already_exists", "permission_denied", "resource_exhausted", "failed_precondition", "aborted",
  "out_of_range", "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated",
];

function codeName(code: number): string {
  return CODE_NAMES[code] ?? String(code);
}

function names(): string[] {
  return element<HTMLInputElement>("names")
    .value.split(",")
    .map((name) => name.trim())
    .filter((name) => name.length > 0);
}

async function introduce(): Promise<void> {
  const caller = createClient(CallerService, transport());
  const reply = await caller.introduce(
    { name: element<HTMLInputElement>("name").value, language: element<HTMLInputElement>("language").value },
    { timeoutMs: TIMEOUT_MS },
  );
  show([`greeting: ${reply.message}`, `greeter: ${reply.greeterInstance}`], false);
}

async function introduceAll(): Promise<void> {
  const caller = createClient(CallerService, transport());
  const reply = await caller.introduceAll(
    { names: names(), language: element<HTMLInputElement>("language").value },
    { timeoutMs: TIMEOUT_MS },
  );
  const lines = reply.introductions.map((item) =>
    item.errorCode ? `${item.name}: ${item.errorCode} ${item.errorMessage}` : `greeting: ${item.message}`,
  );
  lines.push(`succeeded: ${reply.succeeded}, failed: ${reply.failed}`);
  show(lines, false);
}

async function languages(): Promise<void> {
  const greeter = createClient(GreeterService, transport());
  const languageList = element<HTMLInputElement>("languages")
    .value.split(",")
    .map((tag) => tag.trim())
    .filter((tag) => tag.length > 0);
  const lines: string[] = [];
  const stream = greeter.sayHelloLanguages(
    { name: element<HTMLInputElement>("name").value, languages: languageList },
    { timeoutMs: TIMEOUT_MS },
  );
  for await (const reply of stream) {
    lines.push(`greeting (${reply.language}): ${reply.message}`);
    show(lines, false); // each message as it arrives
  }
  lines.push(`stream ended: ${lines.length} messages`);
  show(lines, false);
}

function wire(id: string, action: () => Promise<void>): void {
  element<HTMLButtonElement>(id).addEventListener("click", (event) => {
    event.preventDefault();
    show(["calling..."], false);
    action().catch((error: unknown) => show(describe(error), true));
  });
}

wire("introduce", introduce);
wire("introduce-all", introduceAll);
wire("languages-stream", languages);
element<HTMLFormElement>("form").addEventListener("submit", (event) => event.preventDefault());
element<HTMLElement>("ready").dataset.ready = "true";
