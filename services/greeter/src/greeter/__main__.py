"""Entry point: `greeter` or `python -m greeter`; configured by environment variables."""

from __future__ import annotations

from pydantic import Field

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import workers
from acme_common.logs import configure_logging
from acme_common.server import Service, serve
from acme_common.settings import ServerSettings, load_settings
from acme_common.tracing import configure_tracing
from greeter.service import GreeterService


class GreeterSettings(ServerSettings):
    """Greeter's configuration (ServerSettings plus its own limits)."""

    grpc_port: int = Field(default=50051, ge=0, le=65535, description="gRPC port.")
    greeter_max_stream_names: int = Field(
        default=10_000, ge=1, description="Most names one streaming call may send."
    )


def build_service(settings: GreeterSettings) -> Service:
    servicer = GreeterService(settings.instance_name, settings.greeter_max_stream_names)
    return Service.of(
        greeter_pb2.DESCRIPTOR.services_by_name["GreeterService"],
        servicer,
        greeter_pb2_grpc.add_GreeterServiceServicer_to_server,
    )


async def run(settings: GreeterSettings) -> None:
    tracer_provider = configure_tracing(settings.tracing_exporter, "greeter")
    await serve(settings, [build_service(settings)], tracer_provider)


def main() -> None:
    settings = load_settings(GreeterSettings)
    configure_logging(settings.log_level, settings.log_format)
    workers.run(settings, lambda: run(settings))


if __name__ == "__main__":
    main()
