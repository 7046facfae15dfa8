"""Greeter's configuration: what every service reads (ServerSettings) plus its own limits."""

from __future__ import annotations

from pydantic import Field

from acme_common import Port, ServerSettings


class GreeterSettings(ServerSettings):
    """Greeter's configuration, from environment variables (docs/configuration.md)."""

    grpc_port: Port = Field(default=50051, description="gRPC port.")
    greeter_max_stream_names: int = Field(
        default=10_000, ge=1, description="Most names one streaming call may send."
    )
