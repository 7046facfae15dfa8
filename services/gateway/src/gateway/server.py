"""Serve the gateway with hypercorn (HTTP/1.1, and HTTP/2 with prior knowledge or upgrade, on
one plaintext port) until SIGTERM/SIGINT, then drain: /healthz turns 503 at once, the
listener closes GATEWAY_DRAIN_DELAY seconds later, and requests in flight get
GATEWAY_GRACE_PERIOD seconds to finish before the process exits 0."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import cast

import grpc
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from hypercorn.typing import ASGIFramework

from acme_common import metrics
from acme_common.auth import checker_for
from acme_common.channels import create_channel
from acme_common.settings import ClientSettings
from acme_common.tracing import client_interceptors, configure_tracing
from gateway.app import Health, create_app
from gateway.forwarding import Forwarder, ServiceApplication, find_service
from gateway.observation import Authentication, Observation
from gateway.settings import GatewaySettings

log = logging.getLogger("acme.gateway")


def hypercorn_config(settings: GatewaySettings) -> Config:
    config = Config()
    config.bind = [f"{settings.gateway_host}:{settings.gateway_port}"]
    config.graceful_timeout = settings.gateway_grace_period
    config.accesslog = None  # one access-log line per RPC comes from Observation instead
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    # hypercorn's default (1,000) ends an HTTP/2 connection by GOAWAY after that many requests
    # and drops the streams still in flight on it (their answers are lost); no rotation at all.
    config.keep_alive_max_requests = sys.maxsize
    return config


async def serve(settings: GatewaySettings, clients: Sequence[tuple[str, ClientSettings]]) -> None:
    """Build the application for clients ((service full name, its client settings) pairs)
    and serve it until a stop signal; the channels are closed at the end."""
    tracer_provider = configure_tracing(settings.tracing_exporter, "gateway")
    interceptors: list[object] = [
        Observation(instance=settings.instance_name, which=settings.access_log)
    ]
    checker = checker_for(settings.auth_tokens)
    if checker is not None:
        interceptors.append(Authentication(checker))
    channels: list[grpc.aio.Channel] = []
    services = []
    for name, client in clients:
        # No retry policy here: the services retry their own calls (caller retries greeter),
        # and retrying at two layers multiplies the attempts (4 x 4 greeter calls per browser
        # call). grpc's transparent retries (a call that never left) stay on.
        channel = create_channel(
            client, retry_services=[], interceptors=client_interceptors(tracer_provider)
        )
        channels.append(channel)
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
    health = Health()
    app = create_app(
        services,
        health,
        settings.gateway_cors_origins,
        max_request_bytes=settings.gateway_max_request_bytes,
        body_timeout=settings.gateway_body_timeout,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def drain(signum: int) -> None:
        if not health.serving:
            return  # a second signal: the drain is under way already
        health.serving = False
        log.info(
            "draining",
            extra={
                "signal": signal.Signals(signum).name,
                "drain_delay": settings.gateway_drain_delay,
                "grace_period": settings.gateway_grace_period,
            },
        )
        loop.call_later(settings.gateway_drain_delay, stop.set)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, drain, signum)
    metrics.serve_metrics(settings.metrics_port, settings.gateway_host)
    log.info(
        "serving",
        extra={
            "address": f"{settings.gateway_host}:{settings.gateway_port}",
            "services": list(settings.gateway_services),
            "instance": settings.instance_name,
        },
    )
    try:
        # Starlette is an ASGI 3 application; its signature is typed more loosely than hypercorn's.
        framework = cast("ASGIFramework", app)
        await hypercorn_serve(framework, hypercorn_config(settings), shutdown_trigger=stop.wait)
    finally:
        for channel in channels:
            await channel.close(None)
        if tracer_provider is not None:
            tracer_provider.shutdown()
    log.info("stopped")
