"""`gateway.asgi:app`, the ASGI application Envoy runs (pyvoy imports it in the Python it
embeds, in the process gateway.server starts). It reads the settings from the environment the
supervisor has validated; at lifespan startup, on pyvoy's event loop (the loop grpc.aio binds
its channels to), it opens one channel per exposed service, builds the application and serves
the metrics; at lifespan shutdown it closes the channels."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import grpc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from acme_common import (
    checker_for,
    client_interceptors,
    configure_logging,
    configure_tracing,
    create_channel,
    load_settings,
    serve_metrics,
)
from gateway.app import create_app
from gateway.forwarding import Forwarder, ServiceApplication, find_service
from gateway.observation import (
    Authentication,
    EdgeObservation,
    MessageCount,
    client_disconnected,
)
from gateway.settings import GatewaySettings, client_settings_type

log = logging.getLogger("acme.gateway")

DISCONNECT_POLL = 0.25  # seconds between two looks for a disconnect once the body is read


class Receiver:
    """pyvoy's receive() as ASGI specifies it. pyvoy answers every receive() after the end of
    the body at once with an empty `http.request` (until the stream ends: `http.disconnect`),
    where the specification says it blocks until the disconnect; connectrpc's watch for a
    disconnect would spin on it for the whole call. Here such a receive() asks again every
    DISCONNECT_POLL seconds. pyvoy also sets the result of a receive() future the application
    has cancelled (a deadline, the end of that watch), which asyncio logs as an ERROR
    (InvalidStateError): the future is shielded from the cancellation."""

    __slots__ = ("_done", "_receive")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._done = False

    async def __call__(self) -> Message:
        message = await asyncio.shield(self._receive())
        while self._done and message["type"] == "http.request":
            await asyncio.sleep(DISCONNECT_POLL)
            message = await asyncio.shield(self._receive())
        if not message.get("more_body", False):
            self._done = True
        return message


def accept_shutdown_timeout(loop: asyncio.AbstractEventLoop) -> None:
    """Let loop.shutdown_default_executor take the `timeout` pyvoy 1.3 passes when it ends its
    loop; asyncio's takes it from Python 3.12 on (uvloop's already does). Without it, Python
    3.11's asyncio loop (EVENT_LOOP=asyncio) panics pyvoy's thread at every stop: a Rust
    backtrace on stderr after `Application shutdown complete`."""
    if "timeout" in inspect.signature(loop.shutdown_default_executor).parameters:
        return
    shutdown = loop.shutdown_default_executor

    async def shutdown_default_executor(_timeout: float | None = None) -> None:
        await shutdown()  # before 3.12, asyncio waits for the executor's threads without one

    loop.shutdown_default_executor = shutdown_default_executor  # type: ignore[method-assign]


class Gateway:
    """The application of create_app(), built at lifespan startup. An exception that escapes
    it is logged here as JSON (pyvoy would print it as plain text)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        self.channels: list[grpc.aio.Channel] = []
        self.tracer_provider: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if self.app is None:
            raise RuntimeError("the application serves once its lifespan has started")
        try:
            await self.app(scope, Receiver(receive), send)
        except asyncio.CancelledError:
            # A call still running when the grace period ends: closing its channel cancelled
            # it (its access-log line says CANCELLED); pyvoy would print a traceback.
            return
        except Exception as error:
            if client_disconnected(error):
                # The client cancelled mid-answer: nothing is left to say to it (its
                # access-log line says CANCELLED). pyvoy raises the same instance each time,
                # whose traceback would grow by every raise and keep each call's frames.
                error.__traceback__ = error.__context__ = error.__cause__ = None
                return
            log.exception("unhandled error", extra={"path": scope.get("path", "")[:200]})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        accept_shutdown_timeout(asyncio.get_running_loop())
        try:
            self.start()
        except OSError as error:  # the metrics port is taken
            log.error("cannot start", extra={"error": str(error)})
            await send({"type": "lifespan.startup.failed", "message": str(error)})
            return
        except Exception as error:
            log.exception("cannot start")
            await send({"type": "lifespan.startup.failed", "message": str(error)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        for channel in self.channels:
            await channel.close(None)
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        for handler in logging.getLogger().handlers:
            handler.flush()  # Envoy exits without Python's logging.shutdown()
        await send({"type": "lifespan.shutdown.complete"})

    def start(self) -> None:
        settings = load_settings(GatewaySettings)
        configure_logging(settings.log_level, settings.log_format)
        self.tracer_provider = configure_tracing(settings.tracing_exporter, "gateway")
        observation = EdgeObservation(
            instance=settings.instance_name,
            which=settings.access_log,
            tracing=self.tracer_provider is not None,
        )
        interceptors: list[object] = [observation]
        checker = checker_for(settings.auth_tokens)
        if checker is not None:
            interceptors.append(Authentication(checker))
        # A message interceptor: after the metadata ones, so refused calls read no message.
        interceptors.append(MessageCount(observation))
        services = []
        for name in settings.gateway_services:
            client = load_settings(client_settings_type(name))
            # No retry policy here: the services retry their own calls (caller retries
            # greeter), and retrying at two layers multiplies the attempts (4 x 4 greeter
            # calls per browser call). grpc's transparent retries (a call that never left)
            # stay on.
            channel = create_channel(
                client,
                retry_services=[],
                interceptors=client_interceptors(self.tracer_provider),
            )
            self.channels.append(channel)
            forwarder = Forwarder(
                find_service(name),
                channel,
                client.timeout,
                pass_authorization=settings.gateway_pass_authorization,
            )
            services.append(
                ServiceApplication(
                    forwarder,
                    interceptors=interceptors,
                    read_max_bytes=settings.gateway_max_request_bytes,
                )
            )
        self.app = create_app(
            services,
            settings.gateway_cors_origins,
        )

        serve_metrics(settings.metrics_port, settings.gateway_host)


app = Gateway()
