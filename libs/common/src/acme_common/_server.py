"""Server bootstrap: a grpc.aio server with health, reflection, the per-call path of every
method (_call/handlers.py) and graceful shutdown on SIGTERM/SIGINT. A service's entry
point hands it its servicers."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from acme_common._admin import AdminServer, add_introspection
from acme_common._call import validation
from acme_common._call.handlers import EVERY_PART, CallHandlers, PerCall, Registrar
from acme_common._event_loop import running_loop_name
from acme_common._health import HealthServicer
from acme_common._listen import cannot_listen
from acme_common._metrics import serve_metrics
from acme_common._settings import ServerSettings
from acme_common._tls.credentials import server_credentials
from acme_common._tracing import server_interceptors
from acme_common._workers import worker_index

log = logging.getLogger("acme.server")

ServicerT = TypeVar("ServicerT")


@dataclass(frozen=True)
class Service:
    """One gRPC service to host: its full proto name and how to add its servicer to a server."""

    name: str
    add_to_server: Callable[[grpc.aio.Server], None]

    @classmethod
    def of(
        cls,
        descriptor: ServiceDescriptor,
        servicer: ServicerT,
        add: Callable[[ServicerT, grpc.aio.Server], None],
    ) -> Service:
        """Describe a generated service: `Service.of(DESCRIPTOR.services_by_name[...], impl,
        add_XServicer_to_server)`."""
        return cls(descriptor.full_name, lambda server: add(servicer, server))


class ServiceHost:
    """A started-and-stopped grpc.aio server hosting services plus health and reflection."""

    def __init__(
        self,
        settings: ServerSettings,
        services: Sequence[Service],
        tracer_provider: TracerProvider | None = None,
        *,
        per_call: PerCall = EVERY_PART,
    ) -> None:
        """per_call: which parts of the per-call path run (all of them unless a bench variant
        switches one off)."""
        self.settings = settings
        self.services = services
        self.health = HealthServicer()
        self.forcing_stop = False  # the grace period is over: grpc cancels what still runs
        self.call_handlers: CallHandlers | None = None
        self.validating = per_call.wrapped and per_call.validation
        if per_call.wrapped:
            self.call_handlers = CallHandlers(
                settings,
                tracing=tracer_provider is not None,
                shutting_down=lambda: self.forcing_stop,
                metrics=per_call.metrics,
                validation=per_call.validation,
            )
        # No interceptor of ours: with none, grpc looks handlers up synchronously (see
        # _call/handlers.py); tracing's interceptor is the only one, when it is on.
        self.server = grpc.aio.server(
            interceptors=server_interceptors(tracer_provider),
            options=server_options(settings),
            maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        )
        self.port = 0
        self.admin: AdminServer | None = None
        self.admin_port: int | None = None

    async def start(self) -> int:
        """Bind, start serving and mark every service SERVING; returns the bound port."""
        names = [service.name for service in self.services]
        handlers = self.call_handlers
        registrar = self.server if handlers is None else Registrar(handlers)
        for service in self.services:
            service.add_to_server(registrar)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, registrar)
        if self.settings.admin_services_on_main_port:
            add_introspection(registrar, names)
        if handlers is not None:
            self.server.add_generic_rpc_handlers((handlers,))
        if self.validating:
            validation.prepare(names)
        address = f"{self.settings.grpc_host}:{self.settings.grpc_port}"
        credentials = server_credentials(self.settings)
        # One admin server per process group: with GRPC_WORKERS the first worker serves it (a
        # second could not bind it, and health follows the same drain in every worker).
        if self.settings.admin_port is not None and worker_index() in (None, 0):
            self.admin = AdminServer(
                self.health, names, admin_options(self.settings),
                self.settings.grpc_max_concurrent_rpcs,
            )  # fmt: skip
            # Bound before the main port: a taken ADMIN_PORT stops the start before serving.
            self.admin_port = self.admin.bind(self.settings.grpc_host, self.settings.admin_port)
        try:
            if credentials is None:
                self.port = self.server.add_insecure_port(address)
            else:
                self.port = self.server.add_secure_port(address, credentials)
        except RuntimeError as error:
            cannot_listen("GRPC_PORT", address, error)
        await self.server.start()
        for name in ["", *names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.admin is not None:  # after SERVING: probes see a ready server
            await self.admin.start()
        log.info(
            "serving",
            extra={
                "address": f"{self.settings.grpc_host}:{self.port}",
                "services": names,
                "tls": credentials is not None,
                "mtls": self.settings.tls_client_ca_file is not None,
                "auth": bool(self.settings.auth_tokens),
                "admin_port": self.admin_port,
                "event_loop": running_loop_name(),
            },
        )
        return self.port

    async def stop(self) -> None:
        """Report NOT_SERVING, keep serving for the drain delay while clients' health checks
        move traffic away, then refuse new RPCs, end open health watches and give in-flight
        RPCs the grace period; what still runs after it is cancelled (recorded UNAVAILABLE,
        what its client sees)."""
        grace = self.settings.grpc_grace_period
        delay = self.settings.grpc_drain_delay
        log.info("draining", extra={"drain_delay_seconds": delay, "grace_seconds": grace})
        await self.health.enter_graceful_shutdown()
        if delay:
            await asyncio.sleep(delay)
        # A second stop() with no grace cancels every call (grpc.aio's shutdown): the flag is
        # set just before, so the calls it cuts are told from calls their clients cancelled.
        graceful = asyncio.ensure_future(self.server.stop(grace + _LONGER_THAN_ANY_GRACE))
        await asyncio.sleep(0)  # stop() has begun: new calls are refused from here on
        await self.health.end_watches()
        if await self.server.wait_for_termination(timeout=grace):  # True: the grace ran out
            self.forcing_stop = True
            await self.server.stop(0)
        await graceful
        if self.admin is not None:  # last: its health said NOT_SERVING through the drain
            await self.admin.stop()
        log.info("stopped")


def server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """The grpc core options of every server. grpc silently ignores a name it does not know,
    so each of these has a test over real sockets that shows its effect (the README's
    Operating section lists them: test_keepalive.py, test_floods.py, ...)."""
    return [
        ("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
        ("grpc.max_send_message_length", settings.grpc_max_message_bytes),
        ("grpc.so_reuseport", 1 if settings.grpc_workers > 1 else 0),
        # Keepalive pings from idle clients (channels.py pings every 30 s by default) are
        # welcome down to this interval; faster ones earn strikes, then GOAWAY too_many_pings.
        ("grpc.keepalive_permit_without_calls", 1),
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            _milliseconds(settings.grpc_keepalive_min_ping_interval),
        ),
        ("grpc.http2.max_ping_strikes", 2),
        # Recycle connections now and then so clients re-resolve DNS and spread over new replicas.
        ("grpc.max_connection_age_ms", _milliseconds(settings.grpc_max_connection_age)),
        ("grpc.max_connection_age_grace_ms", _milliseconds(settings.grpc_max_connection_age_grace)),
        # The memory budget (docs/operating.md). Calls that reached grpc core but not yet the
        # asyncio loop wait in a queue that grpc bounds (grpc.server.max_pending_requests, 1000,
        # left at its default: raised tenfold, one connection resetting streams quintupled a
        # greeter's memory, bench/README.md "Memory under floods"). A connection may have this many
        # calls open; a client queues the rest itself, so a burst from a few clients never overflows
        # that queue (whose excess grpc answers CANCELLED).
        ("grpc.max_concurrent_streams", settings.grpc_max_concurrent_streams),
        # Off: it also counts streams the server has not freed yet, so it refused a third of
        # a well-behaved client's 2,000-call burst (REFUSED_STREAM -> UNAVAILABLE), while the
        # pending-queue bound already holds a rapid reset flood (bench/README.md, "Memory
        # under floods").
        ("grpc.http.overload_protection", 0),
        # GRPC_COMPRESSION as a compression *level*: grpc core then picks, per call, an
        # algorithm the client accepts (grpc-accept-encoding), the named one first; a default
        # *algorithm* (grpc.aio.server(compression=...)) was used even for clients that accept
        # only identity (measured with grpcio 1.85).
        ("grpc.default_compression_level", _COMPRESSION_LEVELS[settings.grpc_compression]),
    ]


def admin_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """The main server's options for the admin server, which binds its port alone."""
    options = [option for option in server_options(settings) if option[0] != "grpc.so_reuseport"]
    return [*options, ("grpc.so_reuseport", 0)]


_LONGER_THAN_ANY_GRACE = 3600.0  # seconds; stop() ends the grace period itself
# grpc_compression_level (grpc/compression_types.h) that prefers each algorithm, measured:
# LOW picks gzip, HIGH deflate, among the ones the client accepts.
_COMPRESSION_LEVELS = {"none": 0, "gzip": 1, "deflate": 3}


def _milliseconds(seconds: float) -> int:
    return round(seconds * 1000)


async def serve(
    settings: ServerSettings,
    services: Sequence[Service],
    tracer_provider: TracerProvider | None = None,
    *,
    per_call: PerCall = EVERY_PART,
) -> None:
    """Host services until SIGTERM or SIGINT, then shut down gracefully."""
    try:
        serve_metrics(settings.metrics_port, settings.grpc_host)
    except OSError as error:
        cannot_listen("METRICS_PORT", f"{settings.grpc_host}:{settings.metrics_port}", error)
    host = ServiceHost(settings, services, tracer_provider, per_call=per_call)
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    await host.start()
    await stop_requested.wait()
    await host.stop()
