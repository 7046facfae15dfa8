"""The Go greeter as a real process, what is its own: its log lines from start to stop, and a
bad setting (exit 2 naming the variable, as pydantic says it). What it shares with every
Greeter (replies, statuses, details, health, reflection, metrics, access log, drain) is held
by the contract tests, tests/contracts/greeter."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_devkit.environment import clean_environment
from acme_devkit.ports import HOST, free_port
from acme_devkit.processes import ServiceProcess
from tests.implementations import Builds, implementations

pytestmark = pytest.mark.integration

MODULE = Path(__file__).resolve().parent.parent  # services/greeter-go
GREETER = "acme.greeter.v1.GreeterService"


@pytest.fixture(scope="session")
def greeter_go_binary(implementation_builds: Builds) -> Path:
    """The session's build of services/greeter-go (the contract tests share it); skipped
    loudly without Go (ACME_REQUIRE_GO_TOOLS=1: fails)."""
    (greeter_go,) = [i for i in implementations(GREETER) if i.directory == MODULE]
    return Path(implementation_builds.command(greeter_go)[0])


@pytest.fixture
def greeter_go(greeter_go_binary: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    port = free_port()
    env = {"GRPC_HOST": HOST, "GRPC_PORT": str(port), "INSTANCE_NAME": "go-1"}
    process = ServiceProcess(
        "greeter-go", [str(greeter_go_binary)], tmp_path / "greeter-go.log", env, port
    )
    process.start().wait_ready()
    yield process
    process.stop()


async def test_logs_from_start_to_stop(greeter_go: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(greeter_go.address) as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        reply = await stub.SayHello(greeter_pb2.SayHelloRequest(name="Ada"), timeout=5)
        assert reply.served_by == "go-1"

    assert greeter_go.stop() == 0
    messages = [(r["logger"], r["message"]) for r in greeter_go.log_records()]
    assert messages == [
        ("acme.server", "serving"),
        ("acme.access", "rpc"),
        ("acme.server", "draining"),
        ("acme.server", "stopped"),
    ]


def test_a_bad_setting_exits_2_naming_the_variable(greeter_go_binary: Path) -> None:
    result = subprocess.run(
        [str(greeter_go_binary)],
        env=clean_environment({"GRPC_PORT": "70000", "AUTH_TOKENS": "x", "TLS_KEY_FILE": "/no"}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "invalid configuration for GreeterSettings:",
        "  GRPC_PORT: Input should be less than or equal to 65535 (got '70000')",
        "  TLS_KEY_FILE: file /no does not exist",
    ]


def test_probe_is_the_images_health_check(
    greeter_go: ServiceProcess, greeter_go_binary: Path
) -> None:
    """`greeter-go probe` (the Dockerfile's HEALTHCHECK): 0 while the server at GRPC_PORT is
    SERVING, 1 where none answers."""
    env = clean_environment() | {"GRPC_PORT": greeter_go.address.rsplit(":", 1)[1]}
    serving = subprocess.run([greeter_go_binary, "probe"], env=env, capture_output=True, timeout=10)
    assert serving.returncode == 0, serving.stderr
    env["GRPC_PORT"] = str(free_port())
    refused = subprocess.run([greeter_go_binary, "probe"], env=env, capture_output=True, timeout=10)
    assert refused.returncode == 1, refused.stderr
