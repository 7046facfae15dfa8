"""Entry point: `caller` or `python -m caller`; configured by environment variables."""

from __future__ import annotations

import grpc
from opentelemetry.sdk.trace import TracerProvider
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import workers
from acme_common.channels import create_channel
from acme_common.logs import configure_logging
from acme_common.server import Service, serve
from acme_common.settings import ClientSettings, ServerSettings, load_settings
from acme_common.tracing import client_interceptors, configure_tracing
from caller.service import CallerService

GREETER_SERVICE = greeter_pb2.DESCRIPTOR.services_by_name["GreeterService"]


class CallerSettings(ServerSettings):
    """Caller's own configuration (ServerSettings plus its limits)."""

    grpc_port: int = Field(default=50052, ge=0, le=65535, description="gRPC port.")
    caller_max_names: int = Field(
        default=100, ge=1, description="Most names one IntroduceAll takes."
    )
    caller_fanout_concurrency: int = Field(
        default=16, ge=1, description="Most Greeter calls one IntroduceAll runs at once."
    )


class GreeterClientSettings(ClientSettings):
    """How Caller reaches Greeter: GREETER_TARGET, GREETER_TIMEOUT, GREETER_AUTH_TOKEN, ..."""

    model_config = SettingsConfigDict(env_prefix="GREETER_", frozen=True, extra="ignore")

    target: str = Field(
        default="127.0.0.1:50051",
        min_length=1,
        description="gRPC target of Greeter, e.g. `dns:///greeter:50051` for every replica.",
    )


def greeter_channel(
    greeter: GreeterClientSettings, tracer_provider: TracerProvider | None
) -> grpc.aio.Channel:
    """The one long-lived channel to Greeter (round_robin, retries, TLS, token, tracing)."""
    return create_channel(
        greeter,
        retry_services=[GREETER_SERVICE.full_name],
        interceptors=client_interceptors(tracer_provider),
    )


def build_service(
    settings: CallerSettings, greeter: GreeterClientSettings, channel: grpc.aio.Channel
) -> Service:
    servicer = CallerService(
        greeter_pb2_grpc.GreeterServiceStub(channel),
        default_timeout=greeter.timeout,
        max_names=settings.caller_max_names,
        fanout_concurrency=settings.caller_fanout_concurrency,
    )
    return Service.of(
        caller_pb2.DESCRIPTOR.services_by_name["CallerService"],
        servicer,
        caller_pb2_grpc.add_CallerServiceServicer_to_server,
    )


async def run(settings: CallerSettings, greeter: GreeterClientSettings) -> None:
    tracer_provider = configure_tracing(settings.tracing_exporter, "caller")
    async with greeter_channel(greeter, tracer_provider) as channel:
        await serve(settings, [build_service(settings, greeter, channel)], tracer_provider)


def main() -> None:
    settings = load_settings(CallerSettings)
    greeter = load_settings(GreeterClientSettings)
    configure_logging(settings.log_level, settings.log_format)
    workers.run(settings, lambda: run(settings, greeter))


if __name__ == "__main__":
    main()
