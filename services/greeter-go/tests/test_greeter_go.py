"""The Go greeter as a real process on a loopback port, called with the Python stubs: a
greeting, an INVALID_ARGUMENT with its BadRequest violation, health SERVING, the access-log
line, a bad setting (exit 2 naming the variable) and a drain that exits 0. The contract tests
that hold it to everything the Python greeter does are issue #20's point 3."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import FieldViolation, field_violations, status_details
from acme_devkit.environment import clean_environment
from acme_devkit.ports import HOST, free_port
from acme_devkit.processes import ServiceProcess

pytestmark = pytest.mark.integration

MODULE = Path(__file__).resolve().parent.parent  # services/greeter-go


@pytest.fixture(scope="session")
def greeter_go_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`go build -o` into this session's temporary directory (Go's build cache makes a
    rebuild cheap); skipped loudly without Go (ACME_REQUIRE_GO_TOOLS=1: fails)."""
    go = shutil.which("go")
    if go is None:
        message = "NOT RUN: `go` is not on PATH, so the Go greeter cannot be built"
        if os.environ.get("ACME_REQUIRE_GO_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    binary = tmp_path_factory.mktemp("greeter-go") / "greeter-go"
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=MODULE, check=True, timeout=600)
    return binary


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


async def test_greets_and_refuses_as_the_python_greeter(greeter_go: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(greeter_go.address) as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        reply = await stub.SayHello(
            greeter_pb2.SayHelloRequest(name="  Ada ", language="FR"),
            metadata=(("x-request-id", "test-42"),),
            timeout=5,
        )
        assert (reply.message, reply.served_by) == ("Bonjour, Ada !", "go-1")

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SayHello(greeter_pb2.SayHelloRequest(name="Ada", language="xx"), timeout=5)
        expected = "unsupported 'xx'; supported: de, en, es, fr, it, pt"
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == f"language: {expected}"
        violations = field_violations(status_details(refused.value))
        assert violations == [FieldViolation("language", expected)]

        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "acme.greeter.v1.GreeterService"):
            request = health_pb2.HealthCheckRequest(service=service)
            answer = await health.Check(request, timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING

    assert greeter_go.stop() == 0
    records = greeter_go.log_records()
    serving = next(r for r in records if r["message"] == "serving")
    assert serving["address"] == greeter_go.address
    assert serving["logger"] == "acme.server"
    lines = [r for r in records if r["message"] == "rpc" and r["method"].endswith("/SayHello")]
    assert [(r["code"], r["level"], r["logger"]) for r in lines] == [
        ("OK", "INFO", "acme.access"),
        ("INVALID_ARGUMENT", "INFO", "acme.access"),
    ]
    assert lines[0]["request_id"] == "test-42"
    assert lines[0]["instance"] == "go-1"
    assert lines[0]["peer"].startswith("ipv4:127.0.0.1:")
    assert isinstance(lines[0]["duration_ms"], float)
    assert [r["message"] for r in records][-2:] == ["draining", "stopped"]


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
