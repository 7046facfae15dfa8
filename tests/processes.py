"""The real services as OS processes on loopback ports: fixtures and helpers of every suite
that calls them (tests/integration, tests/interop, services/<name>/tests), registered for the
whole repository by the root conftest.py (pytest_plugins).

`ServiceProcess` starts `python -m <service>` with its configuration in environment variables,
captures its stderr (the JSON log) in a file, waits for grpc.health.v1 to report SERVING and
stops it with a signal. The greeter+caller pair is shared by the whole session; tests that stop,
kill or misconfigure a process get their own through the `services` factory.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from acme.caller.v1 import caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_devkit import processes
from acme_devkit.ports import HOST as HOST  # re-exported for the tests
from acme_devkit.ports import free_port as free_port
from tests.implementations import Builds

GREETER_INSTANCE = "greeter-it-1"
CALLER_INSTANCE = "caller-it-1"
GATEWAY_INSTANCE = "gateway-it-1"
GREETER_SERVICE = "acme.greeter.v1.GreeterService"
CALLER_SERVICE = "acme.caller.v1.CallerService"

START_TIMEOUT = 20.0  # seconds a process gets to report SERVING
STOP_TIMEOUT = 20.0  # seconds a process gets to exit after a signal
RPC_TIMEOUT = 5.0  # client deadline of every RPC that is expected to succeed

# Options of every client channel the tests open: never route loopback through a proxy.
# grpc.aio.EOF marks the end of a stream read with read(); grpc-stubs does not declare it.
EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]

CHANNEL_OPTIONS: list[tuple[str, Any]] = [("grpc.enable_http_proxy", 0)]


class ServiceProcess(processes.ServiceProcess):
    """One service run as `python -m <module>` (acme_devkit's ServiceProcess, with a clean
    environment) with stderr captured to log_path; failures fail the test."""

    def __init__(self, module: str, log_path: Path, env: Mapping[str, str] | None = None) -> None:
        port = free_port()
        settings = {
            "GRPC_HOST": HOST,
            "GRPC_PORT": str(port),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            **(env or {}),
        }
        super().__init__(module, [sys.executable, "-m", module], log_path, settings, port)
        self.module = module

    def log_messages(self) -> list[str]:
        return [str(record.get("message")) for record in self.log_records()]

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> ServiceProcess:
        """Block until grpc.health.v1 reports the whole server SERVING; fail with the log if the
        process exits first or does not get there within timeout seconds."""
        try:
            self.wait_ready(timeout=timeout)
        except processes.ServiceError as error:
            pytest.fail(str(error))
        return self

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """The exit code; the process is killed and the test failed after timeout seconds."""
        try:
            return super().wait_exit(timeout)
        except processes.ServiceError as error:
            pytest.fail(str(error))

    async def wait_exit_async(self, within: float = STOP_TIMEOUT) -> int:
        """wait_exit without blocking the event loop (for tests with calls in flight)."""
        deadline = time.monotonic() + within
        while (code := self.process.poll()) is None:
            if time.monotonic() >= deadline:
                self.kill()
                pytest.fail(
                    f"{self.module} did not exit within {within:.0f} s; stderr:\n{self.log_text()}"
                )
            await asyncio.sleep(0.05)
        return code

    def terminate(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send signum and wait for the exit code."""
        self.send_signal(signum)
        return self.wait_exit(timeout)

    async def wait_for_log(self, message: str, within: float = 10.0) -> dict[str, Any]:
        """The first log record with this message, waiting up to `within` seconds for it."""
        return await self.wait_for_record(within, message=message)

    async def wait_for_record(self, within: float = 10.0, **fields: object) -> dict[str, Any]:
        """The first log record having all these field values, waiting up to `within` s."""
        deadline = time.monotonic() + within
        while True:
            for record in self.log_records():
                if all(record.get(key) == value for key, value in fields.items()):
                    return record
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"{self.module} logged no record with {fields} within {within:.0f} s; "
                    f"stderr:\n{self.log_text()}"
                )
            await asyncio.sleep(0.05)


class GatewayProcess(ServiceProcess):
    """The HTTP gateway as `python -m gateway` on a free loopback port (GATEWAY_HOST/PORT),
    ready when its /healthz answers 200."""

    def __init__(self, log_path: Path, env: Mapping[str, str] | None = None) -> None:
        port = free_port()
        settings = {
            "GATEWAY_HOST": HOST,
            "GATEWAY_PORT": str(port),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            **(env or {}),
        }
        processes.ServiceProcess.__init__(
            self, "gateway", [sys.executable, "-m", "gateway"], log_path, settings, port
        )
        self.module = "gateway"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> GatewayProcess:
        try:
            self.wait_ready(self.http_health, timeout=timeout)
        except processes.ServiceError as error:
            pytest.fail(str(error))
        return self


class ServiceFactory:
    """Starts processes for one test and stops the ones still running at teardown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[ServiceProcess] = []

    def start(
        self,
        module: str,
        env: Mapping[str, str] | None = None,
        *,
        wait_healthy: bool = True,
    ) -> ServiceProcess:
        log_path = self.directory / f"{module}-{len(self.started)}.stderr.log"
        service = ServiceProcess(module, log_path, env)
        self.started.append(service.start())
        if wait_healthy:
            service.wait_healthy()
        return service

    def start_greeter(self, env: Mapping[str, str] | None = None) -> ServiceProcess:
        return self.start("greeter", {"INSTANCE_NAME": "greeter-own", **(env or {})})

    def start_caller(
        self, greeter_target: str, env: Mapping[str, str] | None = None
    ) -> ServiceProcess:
        return self.start(
            "caller",
            {"INSTANCE_NAME": "caller-own", "GREETER_TARGET": greeter_target, **(env or {})},
        )

    def start_gateway(
        self, env: Mapping[str, str] | None = None, *, wait_healthy: bool = True
    ) -> GatewayProcess:
        log_path = self.directory / f"gateway-{len(self.started)}.stderr.log"
        gateway = GatewayProcess(log_path, {"INSTANCE_NAME": "gateway-own", **(env or {})})
        self.started.append(gateway.start())
        if wait_healthy:
            gateway.wait_healthy()
        return gateway

    def stop_all(self) -> None:
        """SIGTERM every process still running (unless a test signalled it already: a second
        signal could hit it after its handlers are gone); all of them must exit 0."""
        running = [service for service in self.started if service.returncode is None]
        for service in running:
            if not service.signalled:
                service.send_signal(signal.SIGTERM)
        failures: list[str] = []
        for service in running:
            try:
                code = service.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                service.kill()
                code = service.process.wait(STOP_TIMEOUT)
            if code != 0:
                failures.append(f"{service!r} exited {code}; stderr:\n{service.log_text()}")
        if failures:
            pytest.fail("\n\n".join(failures))


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Own processes for one test, SIGTERMed at teardown (exit code 0 asserted)."""
    factory = ServiceFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def implementation_builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    """The command lines of the services that declare a service.toml (tests/implementations.py),
    each built at most once per session (the contract tests and the services' own share it)."""
    return Builds(tmp_path_factory.mktemp("builds"))


ProcessT = TypeVar("ProcessT", bound=ServiceProcess)


def _shared(service: ProcessT) -> Iterator[ProcessT]:
    try:
        service.start().wait_healthy()
        yield service
    finally:
        if not service.signalled:
            service.send_signal(signal.SIGTERM)
        code = service.wait_exit()
    assert code == 0, f"{service!r} exited {code}; stderr:\n{service.log_text()}"


@pytest.fixture(scope="session")
def greeter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The session's greeter, INSTANCE_NAME=greeter-it-1."""
    directory = tmp_path_factory.mktemp("shared")
    service = ServiceProcess(
        "greeter", directory / "greeter.stderr.log", {"INSTANCE_NAME": GREETER_INSTANCE}
    )
    yield from _shared(service)


@pytest.fixture(scope="session")
def caller(
    greeter: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The session's caller, wired to the session's greeter."""
    directory = tmp_path_factory.mktemp("shared")
    service = ServiceProcess(
        "caller",
        directory / "caller.stderr.log",
        {
            "INSTANCE_NAME": CALLER_INSTANCE,
            "GREETER_TARGET": greeter.address,
            "GREETER_TIMEOUT": "5",
        },
    )
    yield from _shared(service)


@pytest.fixture(scope="session")
def gateway(
    caller: ServiceProcess, greeter: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """The session's gateway, exposing the session's caller and greeter."""
    directory = tmp_path_factory.mktemp("shared")
    service = GatewayProcess(
        directory / "gateway.stderr.log",
        {
            "INSTANCE_NAME": GATEWAY_INSTANCE,
            "GATEWAY_SERVICES": f"{CALLER_SERVICE},{GREETER_SERVICE}",
            "CALLER_TARGET": caller.address,
            "GREETER_TARGET": greeter.address,
        },
    )
    yield from _shared(service)


def open_channel(address: str) -> grpc.aio.Channel:
    """A grpc.aio client channel to address; use as `async with`."""
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)


@pytest.fixture
async def greeter_channel(greeter: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with open_channel(greeter.address) as channel:
        yield channel


@pytest.fixture
async def caller_channel(caller: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with open_channel(caller.address) as channel:
        yield channel


@pytest.fixture
def greeter_stub(
    greeter_channel: grpc.aio.Channel,
) -> greeter_pb2_grpc.GreeterServiceAsyncStub:
    return greeter_pb2_grpc.GreeterServiceStub(greeter_channel)


@pytest.fixture
def caller_stub(caller_channel: grpc.aio.Channel) -> caller_pb2_grpc.CallerServiceAsyncStub:
    return caller_pb2_grpc.CallerServiceStub(caller_channel)


SayHello = Callable[
    [greeter_pb2.SayHelloRequest, grpc.aio.ServicerContext[Any, Any]],
    Awaitable[greeter_pb2.SayHelloResponse],
]


@asynccontextmanager
async def stand_in_server(
    service: str, method: str, handler: Any, request_type: Any, response_type: Any
) -> AsyncIterator[str]:
    """An in-test grpc.aio server answering service's unary method with handler (to record
    or stall what a client sends); yields its address."""
    generic = grpc.method_handlers_generic_handler(
        service,
        {
            method: grpc.unary_unary_rpc_method_handler(
                handler,
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )
        },
    )
    server = grpc.aio.server(handlers=[generic], options=[("grpc.so_reuseport", 0)])
    port = server.add_insecure_port(f"{HOST}:0")
    await server.start()
    try:
        yield f"{HOST}:{port}"
    finally:
        await server.stop(None)


def stand_in_greeter(say_hello: SayHello) -> AbstractAsyncContextManager[str]:
    """A stand-in for Greeter's SayHello (stand_in_server); yields its address."""
    return stand_in_server(
        GREETER_SERVICE,
        "SayHello",
        say_hello,
        greeter_pb2.SayHelloRequest,
        greeter_pb2.SayHelloResponse,
    )


class BlackHole:
    """A loopback TCP listener that accepts connections and never answers a byte: a peer that
    is reachable but hangs, so only deadlines can end calls to it."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((HOST, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="black-hole", daemon=True)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._connections.append(connection)  # held open, never read nor written
            self.accepted += 1

    def __enter__(self) -> BlackHole:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for connection in self._connections:
            connection.close()
        self._listener.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    with BlackHole() as hole:
        yield hole
