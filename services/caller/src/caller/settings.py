"""Caller's configuration: its own server settings, and how it reaches Greeter."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from acme_common import ClientSettings, Port, ServerSettings


class CallerSettings(ServerSettings):
    """Caller's configuration, from environment variables (docs/configuration.md)."""

    grpc_port: Port = Field(default=50052, description="gRPC port.")
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
