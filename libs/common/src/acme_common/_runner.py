"""run_service: what every service's entry point calls. It reads the settings (exit 2 naming
each bad variable), sets up logging, tracing and GRPC_WORKERS, builds the service's gRPC
wiring and serves it until SIGTERM or SIGINT, closing its client channels at the end.

    def main() -> None:
        run_service("greeter", GreeterSettings, build)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import TypeVar

import grpc
from opentelemetry.sdk.trace import TracerProvider

from acme_common._call.handlers import EVERY_PART, PerCall
from acme_common._channels import create_channel
from acme_common._logs import configure_logging
from acme_common._server import Service, serve
from acme_common._settings import ClientSettings, ServerSettings, load_settings
from acme_common._tracing import client_interceptors, configure_tracing
from acme_common._workers import run_in_workers

SettingsT = TypeVar("SettingsT", bound=ServerSettings)
ClientT = TypeVar("ClientT", bound=ClientSettings)


class Runtime:
    """What a service's build function gets besides its settings: the settings of the
    services it calls (loaded at start, see run_service's `clients`) and channels to them."""

    def __init__(
        self,
        clients: Sequence[ClientSettings] = (),
        tracer_provider: TracerProvider | None = None,
        exit_stack: AsyncExitStack | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self._clients = {type(settings): settings for settings in clients}
        self._exit_stack = exit_stack

    def client(self, settings_type: type[ClientT]) -> ClientT:
        """The loaded settings of one of the services this one calls."""
        settings = self._clients.get(settings_type)
        if not isinstance(settings, settings_type):
            raise LookupError(f"{settings_type.__name__} is not among run_service's clients")
        return settings

    def channel(
        self, settings_type: type[ClientSettings], retry_services: Sequence[str]
    ) -> grpc.aio.Channel:
        """A long-lived channel to that service (acme_common._channels.create_channel, with
        tracing when it is on), closed when the server stops."""
        channel: grpc.aio.Channel = create_channel(
            self.client(settings_type),
            retry_services=retry_services,
            interceptors=client_interceptors(self.tracer_provider),
        )
        if self._exit_stack is not None:
            self._exit_stack.push_async_callback(channel.close, None)
        return channel


Build = Callable[[SettingsT, Runtime], Service | Sequence[Service]]


def run_service(
    name: str,
    settings_type: type[SettingsT],
    build: Build[SettingsT],
    clients: Sequence[type[ClientSettings]] = (),
    *,
    per_call: PerCall = EVERY_PART,
) -> None:
    """Run a service: `name` names it in traces, settings_type is read from the environment
    (and each of `clients`, the settings of the services it calls), build(settings, runtime)
    returns its gRPC wiring; per_call: which parts of the per-call path run (all, but for bench
    variants). Returns when the server has stopped; SystemExit(2) on bad
    settings or a port it cannot listen on (GRPC_PORT, ADMIN_PORT, METRICS_PORT taken)."""
    settings = load_settings(settings_type)
    client_settings = [load_settings(client) for client in clients]
    configure_logging(settings.log_level, settings.log_format)

    async def main() -> None:
        tracer_provider = configure_tracing(settings.tracing_exporter, name)
        async with AsyncExitStack() as exit_stack:
            runtime = Runtime(client_settings, tracer_provider, exit_stack)
            built = build(settings, runtime)
            services = [built] if isinstance(built, Service) else list(built)
            await serve(settings, services, tracer_provider, per_call=per_call)

    run_in_workers(settings, main)
