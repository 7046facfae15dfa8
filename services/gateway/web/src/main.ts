// The gateway's page: calls Caller.Introduce, Caller.IntroduceAll and (when the gateway
// exposes Greeter) the server stream Greeter.SayHelloLanguages, over the Connect protocol or
// gRPC-Web, and shows each reply or error (code, message and BadRequest field violations).
// Before sending, it checks the request against the rules of the contract (the buf.validate
// annotations of proto/, read from the generated descriptors by protovalidate) and sends
// nothing while a rule is broken; each violation, the page's or the server's, shows next to
// its field (fields.ts).
import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator } from "@bufbuild/protovalidate";
import { ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { clearProblems, showProblems, type FieldProblem } from "./fields";
import { CallerService, IntroduceAllRequestSchema, IntroduceRequestSchema } from "./proto/acme/caller/v1/caller_pb";
import { GreeterService, SayHelloLanguagesRequestSchema } from "./proto/acme/greeter/v1/greeter_pb";
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

// The field violations of the server's google.rpc.BadRequest details, if any.
function serverProblems(failure: ConnectError): FieldProblem[] {
  return failure
    .findDetails(BadRequestSchema)
    .flatMap((detail) => detail.fieldViolations)
    .map(({ field, description }) => ({ field, description }));
}

function describe(failure: ConnectError): string[] {
  const lines = [`error: ${failure.code === undefined ? "unknown" : codeName(failure.code)}`];
  lines.push(`message: ${failure.rawMessage}`);
  return [...lines, ...serverProblems(failure).map(problemLine)];
}

function problemLine({ field, description }: FieldProblem): string {
  return `field ${field}: ${description}`;
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

// A comma-separated input's entries, trimmed, without empty ones.
function list(id: string): string[] {
  return element<HTMLInputElement>(id)
    .value.split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
}

function name(): string {
  return element<HTMLInputElement>("name").value;
}

function language(): string {
  return element<HTMLInputElement>("language").value;
}

async function introduce(request: MessageShape<typeof IntroduceRequestSchema>): Promise<void> {
  const caller = createClient(CallerService, transport());
  const reply = await caller.introduce(request, { timeoutMs: TIMEOUT_MS });
  show([`greeting: ${reply.message}`, `greeter: ${reply.greeterInstance}`], false);
}

async function introduceAll(request: MessageShape<typeof IntroduceAllRequestSchema>): Promise<void> {
  const caller = createClient(CallerService, transport());
  const reply = await caller.introduceAll(request, { timeoutMs: TIMEOUT_MS });
  const lines = reply.introductions.map((item) =>
    item.errorCode ? `${item.name}: ${item.errorCode} ${item.errorMessage}` : `greeting: ${item.message}`,
  );
  lines.push(`succeeded: ${reply.succeeded}, failed: ${reply.failed}`);
  show(lines, false);
}

async function languages(request: MessageShape<typeof SayHelloLanguagesRequestSchema>): Promise<void> {
  const greeter = createClient(GreeterService, transport());
  const lines: string[] = [];
  for await (const reply of greeter.sayHelloLanguages(request, { timeoutMs: TIMEOUT_MS })) {
    lines.push(`greeting (${reply.language}): ${reply.message}`);
    show(lines, false); // each message as it arrives
  }
  lines.push(`stream ended: ${lines.length} messages`);
  show(lines, false);
}

// Test hook: `?novalidate` in the page's address turns the page's own check off, so that a
// test sees what the server answers to a request the page would not send
// (tests/integration/test_gateway_browser.py). The server checks every request either way.
const CHECK_BEFORE_SENDING = !new URLSearchParams(window.location.search).has("novalidate");
const validator = createValidator();

// The request's violations of its rules, in protovalidate's order. A rule the validator
// cannot evaluate is the page's bug, not the user's: it goes to the console and the server,
// which checks every request, decides.
function check<Desc extends DescMessage>(schema: Desc, request: MessageShape<Desc>): FieldProblem[] {
  if (!CHECK_BEFORE_SENDING) return [];
  const result = validator.validate(schema, request);
  if (result.kind === "error") console.error(`the page could not check ${schema.typeName}: ${result.error.message}`);
  if (result.kind !== "invalid") return [];
  return result.violations.map((violation) => ({ field: pathToString(violation.field), description: violation.message }));
}

// On a click: read the form into a request, check it, and either send it or show why not.
function wire<Desc extends DescMessage>(
  id: string,
  schema: Desc,
  read: () => MessageInitShape<Desc>,
  send: (request: MessageShape<Desc>) => Promise<void>,
): void {
  const form = element<HTMLFormElement>("form");
  element<HTMLButtonElement>(id).addEventListener("click", (event) => {
    event.preventDefault();
    clearProblems(form);
    const request = create(schema, read());
    const problems = check(schema, request);
    if (problems.length > 0) {
      show(["not sent: the form is invalid", ...problems.map(problemLine)], true);
      showProblems(form, problems)[0]?.focus();
      return;
    }
    show(["calling..."], false);
    send(request).catch((error: unknown) => {
      const failure = ConnectError.from(error);
      show(describe(failure), true);
      showProblems(form, serverProblems(failure));
    });
  });
}

wire("introduce", IntroduceRequestSchema, () => ({ name: name(), language: language() }), introduce);
wire("introduce-all", IntroduceAllRequestSchema, () => ({ names: list("names"), language: language() }), introduceAll);
wire("languages-stream", SayHelloLanguagesRequestSchema, () => ({ name: name(), languages: list("languages") }), languages);
element<HTMLFormElement>("form").addEventListener("submit", (event) => event.preventDefault());
element<HTMLElement>("ready").dataset.ready = "true";
