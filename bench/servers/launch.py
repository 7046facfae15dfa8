"""How the harness and the profiler start each server under test, and how they know it is
ready: the exact request h2load will send must come back with grpc-status 0."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import grpc

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2
from acme_common import check_health
from bench import h2load, procs
from bench.procs import ServerProcess

SAY_HELLO = "/acme.greeter.v1.GreeterService/SayHello"
INTRODUCE = "/acme.caller.v1.CallerService/Introduce"
NAME = "Ada"
EXPECTED = f"Hello, {NAME}!"
GRACE_PERIOD = "2"  # GRPC_GRACE_PERIOD of our services: stops stay short


def say_hello_bytes() -> bytes:
    return greeter_pb2.SayHelloRequest(name=NAME).SerializeToString()


def python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def sync_server(logs: Path) -> ServerProcess:
    port = procs.free_port()
    argv = python("bench.servers.sync_server", "--port", str(port))
    return ServerProcess("sync-server", argv, logs / "sync-server.log", port=port)


def aio_server(logs: Path, loop: str = "asyncio") -> ServerProcess:
    port = procs.free_port()
    argv = python("bench.servers.aio_server", "--port", str(port), "--loop", loop)
    name = "aio-server" if loop == "asyncio" else f"aio-server-{loop}"
    return ServerProcess(name, argv, logs / f"{name}.log", port=port)


def grpclib_server(logs: Path) -> ServerProcess:
    port = procs.free_port()
    argv = python("bench.servers.grpclib_server", "--port", str(port))
    return ServerProcess("grpclib-server", argv, logs / "grpclib-server.log", port=port)


def connect_server(logs: Path) -> ServerProcess:
    port = procs.free_port()
    argv = python("bench.servers.connect_server", "--port", str(port))
    return ServerProcess("connect-server", argv, logs / "connect-server.log", port=port)


def cpp_server(binary: Path, logs: Path) -> ServerProcess:
    port = procs.free_port()
    argv = [str(binary), f"{procs.HOST}:{port}"]
    return ServerProcess("cpp-server", argv, logs / "cpp-server.log", port=port)


def production_env(name: str, token: str, port: int, log_level: str = "INFO") -> dict[str, str]:
    """Our services' settings as docker-compose.yml runs them, plus auth and metrics on and
    tracing off; JSON logs go to the process's stderr, which the harness sends to a file."""
    return {
        "GRPC_HOST": procs.HOST,
        "GRPC_PORT": str(port),
        "GRPC_GRACE_PERIOD": GRACE_PERIOD,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": log_level,
        "INSTANCE_NAME": name,
        "AUTH_TOKENS": token,
        "METRICS_PORT": str(procs.free_port()),
        "TRACING_EXPORTER": "none",
    }


def greeter(
    name: str,
    logs: Path,
    token: str,
    workers: int = 1,
    log_level: str = "INFO",
    extra_env: dict[str, str] | None = None,
) -> ServerProcess:
    port = procs.free_port()
    env = production_env(name, token, port, log_level)
    if workers > 1:
        env["GRPC_WORKERS"] = str(workers)
    env.update(extra_env or {})
    return ServerProcess(name, python("greeter"), logs / f"{name}.log", env=env, port=port)


def greeter_variant(name: str, logs: Path, token: str, *args: str) -> ServerProcess:
    """bench.servers.greeter_variant: row 3's greeter and settings with one part of the
    per-call path switched off through PerCall (args: e.g. "--validation", "off")."""
    port = procs.free_port()
    env = production_env(name, token, port)
    argv = python("bench.servers.greeter_variant", *args)
    return ServerProcess(name, argv, logs / f"{name}.log", env=env, port=port)


def greeter_go(binary: Path, name: str, logs: Path, token: str) -> ServerProcess:
    """services/greeter-go (built by bench.toolchain.go_server) with the settings of greeter():
    the same environment variables, the same production stack (JSON access log at INFO, auth,
    metrics; its grpc_code labels are grpc-go's names: see GO_CODE_NAMES)."""
    port = procs.free_port()
    env = production_env(name, token, port)
    return ServerProcess(name, [str(binary)], logs / f"{name}.log", env=env, port=port)


def caller(name: str, logs: Path, token: str, greeter_address: str) -> ServerProcess:
    port = procs.free_port()
    env = production_env(name, token, port)
    env.update({"GREETER_TARGET": greeter_address, "GREETER_AUTH_TOKEN": token})
    return ServerProcess(name, python("caller"), logs / f"{name}.log", env=env, port=port)


def gateway(name: str, logs: Path, token: str, greeter: str, caller: str) -> ServerProcess:
    """The HTTP edge (services/gateway) exposing GreeterService and CallerService at the
    addresses given, with the production settings of our services: it checks the token and
    sends it on to both."""
    port = procs.free_port()
    env = production_env(name, token, port)
    del env["GRPC_PORT"], env["GRPC_HOST"], env["GRPC_GRACE_PERIOD"]
    env.update(
        {
            "GATEWAY_HOST": procs.HOST,
            "GATEWAY_PORT": str(port),
            "GATEWAY_GRACE_PERIOD": GRACE_PERIOD,
            "GATEWAY_SERVICES": "acme.greeter.v1.GreeterService,acme.caller.v1.CallerService",
            "GREETER_TARGET": greeter,
            "GREETER_AUTH_TOKEN": token,
            "CALLER_TARGET": caller,
            "CALLER_AUTH_TOKEN": token,
        }
    )
    return ServerProcess(name, python("gateway"), logs / f"{name}.log", env=env, port=port)


# grpc_server_handled_total's grpc_code of greeter-go (go-grpc-middleware's Prometheus provider:
# codes.Code.String()) -> the name the Python services use (services/greeter-go/README.md).
GO_CODE_NAMES = {
    "OK": "OK",
    "Canceled": "CANCELLED",
    "Unknown": "UNKNOWN",
    "InvalidArgument": "INVALID_ARGUMENT",
    "DeadlineExceeded": "DEADLINE_EXCEEDED",
    "NotFound": "NOT_FOUND",
    "AlreadyExists": "ALREADY_EXISTS",
    "PermissionDenied": "PERMISSION_DENIED",
    "ResourceExhausted": "RESOURCE_EXHAUSTED",
    "FailedPrecondition": "FAILED_PRECONDITION",
    "Aborted": "ABORTED",
    "OutOfRange": "OUT_OF_RANGE",
    "Unimplemented": "UNIMPLEMENTED",
    "Internal": "INTERNAL",
    "Unavailable": "UNAVAILABLE",
    "DataLoss": "DATA_LOSS",
    "Unauthenticated": "UNAUTHENTICATED",
}


def metrics_port(server: ServerProcess) -> int | None:
    value = server.env.get("METRICS_PORT")
    return int(value) if value else None


# ----------------------------------------------------------------------------- readiness
def say_hello_problem(server: ServerProcess, token: str | None) -> str | None:
    """None when the h2load request (same bytes, same headers) gets grpc-status 0 and the
    expected greeting; else what went wrong."""
    try:
        reply = h2load.sanity_call(server.address, SAY_HELLO, say_hello_bytes(), token)
    except grpc.RpcError as error:
        return f"SayHello: {error.code().name}: {error.details()}"
    message = greeter_pb2.SayHelloResponse.FromString(reply).message
    return None if message == EXPECTED else f"SayHello answered {message!r}"


def introduce_problem(server: ServerProcess, token: str) -> str | None:
    metadata: tuple[tuple[str, str | bytes], ...] = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(server.address, options=[("grpc.enable_http_proxy", 0)]) as ch:
        stub = caller_pb2_grpc.CallerServiceStub(ch)
        try:
            reply = stub.Introduce(
                caller_pb2.IntroduceRequest(name=NAME), metadata=metadata, timeout=5.0
            )
        except grpc.RpcError as error:
            return f"Introduce: {error.code().name}: {error.details()}"
    return None if reply.message == EXPECTED else f"Introduce answered {reply.message!r}"


def health_problem(server: ServerProcess) -> str | None:
    status = check_health(server.address, "", timeout=1.0)
    return None if status == "SERVING" else f"health: {status}"


def wait_for_workers(server: ServerProcess, workers: int, timeout: float = 15.0) -> int:
    """How many worker processes serve: 0 when the server (already answering) runs as one
    process, i.e. without a supervisor; with one, waits until `workers` of them logged
    "serving" (or timeout) so that every worker's socket is in the SO_REUSEPORT group."""
    started = time.monotonic()
    children = 0
    while time.monotonic() - started < timeout:
        children = len(procs.descendants(server.pid)) - 1
        if children == 0 and time.monotonic() - started > 2.0:
            return 0
        if children >= workers and server.log_count('"serving"') >= workers:
            return children
        time.sleep(0.2)
    return children
