"""gRPC's interop cases (doc/interop-test-descriptions.md in grpc/grpc) across languages:
grpc.testing.TestService hosted on the Python shared stack (grpc_service.py on acme_common's
run_service) and on the Go service stack (services/greeter-go/interop: grpc-go's own interop
server on greeter-go's server package), each with its product defaults, called by a Python
client (grpc_cases.py, written from the descriptions: grpc's Python client is not on PyPI)
and by grpc-go's own interop client (google.golang.org/grpc/interop/client, pinned by
services/greeter-go/interop/go.mod). The matrix: every case, for each client against each
server.

Every case passes at the default settings but those that send or ask for messages above
GRPC_MAX_MESSAGE_BYTES (256 KiB, the memory budget, docs/operating.md): large_unary and, from
the Python client, custom_metadata (271828-byte requests, 314159-byte replies; grpc-go's client
sends 1 byte in custom_metadata). They are refused on purpose, RESOURCE_EXHAUSTED, which the
matrix asserts; test_refused_cases_pass_with_the_limit_raised runs them against servers whose
limit is 1 MiB. Which cases are not run, and why: docs/testing.md, "gRPC interop cases".

The Go programs are built once per session (`go build`, Go's build cache makes it cheap
after the first time); without Go the cells that need it are skipped loudly
(ACME_REQUIRE_GO_TOOLS=1: fail). The protos come from Debian's grpc-proto package
(ACME_REQUIRE_GRPC_PROTO=1: fail without it).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from acme_devkit.external import not_run
from acme_devkit.ports import HOST
from acme_devkit.processes import ServiceProcess
from tests.interop import grpc_cases, grpc_testing_stubs

from .conftest import START_TIMEOUT, scrubbed_environment

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GO_MODULE = REPO / "services" / "greeter-go" / "interop"
GO_CLIENT_PACKAGE = "google.golang.org/grpc/interop/client"
BUILD_TIMEOUT = 600.0  # seconds: the first build of grpc-go's client compiles xDS and more
GO_CASE_TIMEOUT = 60.0  # seconds one run of grpc-go's client may take

LANGUAGES = ("py", "go")
CASES = tuple(grpc_cases.CASES)
# The cases each client runs with messages above the default GRPC_MAX_MESSAGE_BYTES.
REFUSED_BY_DEFAULT = {"py": {"large_unary", "custom_metadata"}, "go": {"large_unary"}}
RAISED_LIMIT = {"GRPC_MAX_MESSAGE_BYTES": str(1024 * 1024)}


@pytest.fixture(scope="session")
def stubs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The grpc.testing stubs, generated once per session."""
    try:
        return grpc_testing_stubs.generate(tmp_path_factory.mktemp("grpc-testing-stubs"))
    except grpc_testing_stubs.ProtosMissing as error:
        not_run(
            "GRPC INTEROP MATRIX",
            str(error),
            "Debian's grpc-proto (`apt-get install -y grpc-proto`)",
            "ACME_REQUIRE_GRPC_PROTO",
        )


@dataclass
class GoPrograms:
    """The Go interop server and client, built once (lazily: Python cells need neither)."""

    directory: Path
    built: dict[str, Path] = field(default_factory=dict)

    def get(self, name: str) -> Path:
        if name not in self.built:
            go = shutil.which("go")
            if go is None:
                not_run(
                    "GRPC INTEROP MATRIX (its Go cells)",
                    "`go` is not on PATH, so grpc-go's interop client and server cannot be built",
                    "Go (https://go.dev/dl/)",
                    "ACME_REQUIRE_GO_TOOLS",
                )
            target = {"interop-server": ".", "interop-client": GO_CLIENT_PACKAGE}[name]
            binary = self.directory / name
            subprocess.run(
                [go, "build", "-o", str(binary), target],
                cwd=GO_MODULE,
                check=True,
                timeout=BUILD_TIMEOUT,
            )
            self.built[name] = binary
        return self.built[name]


@pytest.fixture(scope="session")
def go_programs(tmp_path_factory: pytest.TempPathFactory) -> GoPrograms:
    return GoPrograms(tmp_path_factory.mktemp("go-interop"))


@dataclass
class Servers:
    """TestService servers by (language, limit raised), started on first use, stopped at the
    end of the module (exit code 0 and no ERROR line in the log asserted)."""

    stubs: Path
    go: GoPrograms
    logs: Path
    running: dict[tuple[str, bool], ServiceProcess] = field(default_factory=dict)

    def address(self, language: str, raised: bool) -> str:
        key = (language, raised)
        if key not in self.running:
            env = {"LOG_FORMAT": "json", **(RAISED_LIMIT if raised else {})}
            name = f"interop-{language}{'-raised' if raised else ''}"
            log = self.logs / f"{name}.log"
            if language == "py":
                env[grpc_testing_stubs.STUBS_VARIABLE] = str(self.stubs)
                server = ServiceProcess.python_module(
                    "tests.interop.grpc_service", log, env, name=name
                )
            else:
                server = ServiceProcess(name, [str(self.go.get("interop-server"))], log, env)
                server.env.update({"GRPC_HOST": HOST, "GRPC_PORT": str(server.port)})
            self.running[key] = server.start().wait_ready(timeout=START_TIMEOUT)
        return self.running[key].address

    def stop(self) -> None:
        for server in self.running.values():
            code = server.stop()
            log = server.log_text()
            assert code == 0, f"{server.name} exited {code}; log:\n{log}"
            assert '"level":"ERROR"' not in log, f"{server.name} logged an ERROR:\n{log}"


@pytest.fixture(scope="module")
def servers(
    stubs_dir: Path, go_programs: GoPrograms, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    running = Servers(stubs_dir, go_programs, tmp_path_factory.mktemp("interop-servers"))
    try:
        yield running
    finally:
        running.stop()


@dataclass(frozen=True)
class Outcome:
    passed: bool
    code: grpc.StatusCode | None  # the status that failed the case, when known
    report: str


async def run_python_case(case: str, address: str, stubs: Path) -> Outcome:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await grpc_cases.CASES[case](channel, grpc_cases.Stubs.load(stubs))
        except grpc.aio.AioRpcError as error:
            return Outcome(False, error.code(), f"{error.code().name}: {error.details()}")
    return Outcome(True, None, "")


def run_go_case(case: str, address: str, client: Path) -> Outcome:
    host, port = address.rsplit(":", 1)
    result = subprocess.run(
        [str(client), f"--server_host={host}", f"--server_port={port}", f"--test_case={case}"],
        env=scrubbed_environment(),
        capture_output=True,
        text=True,
        timeout=GO_CASE_TIMEOUT,
        check=False,
    )
    report = result.stdout + result.stderr
    code = next((c for c in grpc.StatusCode if f"code = {_go_name(c)} " in report), None)
    return Outcome(result.returncode == 0, code, report)


def _go_name(code: grpc.StatusCode) -> str:
    """grpc-go's name of a code (codes.Code.String()): ResourceExhausted, ..."""
    return "".join(part.capitalize() for part in code.name.split("_")).replace("Ok", "OK")


async def run_case(
    client: str, server: str, case: str, servers: Servers, raised: bool = False
) -> Outcome:
    address = servers.address(server, raised)
    if client == "py":
        return await run_python_case(case, address, servers.stubs)
    return run_go_case(case, address, servers.go.get("interop-client"))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("server", LANGUAGES)
@pytest.mark.parametrize("client", LANGUAGES)
async def test_case_at_the_default_settings(
    client: str, server: str, case: str, servers: Servers
) -> None:
    outcome = await run_case(client, server, case, servers)
    if case in REFUSED_BY_DEFAULT[client]:
        assert not outcome.passed, f"{case} passed: is GRPC_MAX_MESSAGE_BYTES above 256 KiB?"
        assert outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED, outcome.report
    else:
        assert outcome.passed, f"{client} client -> {server} server, {case}:\n{outcome.report}"


@pytest.mark.parametrize(
    ("client", "case"),
    [(client, case) for client in LANGUAGES for case in sorted(REFUSED_BY_DEFAULT[client])],
)
@pytest.mark.parametrize("server", LANGUAGES)
async def test_refused_cases_pass_with_the_limit_raised(
    client: str, server: str, case: str, servers: Servers
) -> None:
    outcome = await run_case(client, server, case, servers, raised=True)
    assert outcome.passed, f"{client} client -> {server} server, {case}:\n{outcome.report}"
