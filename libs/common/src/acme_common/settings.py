"""Configuration from environment variables, validated once at start."""

from __future__ import annotations

import socket
import sys
from typing import Literal, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class ServerSettings(BaseSettings):
    """What every service reads from its environment; services subclass it to add their own."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    grpc_host: str = Field(default="0.0.0.0", description="Address the gRPC server binds to.")  # noqa: S104 - containers need it
    grpc_port: int = Field(default=50051, ge=0, le=65535, description="gRPC port (0 = any free).")
    grpc_grace_period: float = Field(
        default=10.0, ge=0, le=300, description="Seconds in-flight RPCs get to finish on SIGTERM."
    )
    grpc_max_concurrent_rpcs: int | None = Field(
        default=None, ge=1, description="Cap on concurrent RPCs; more get RESOURCE_EXHAUSTED."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level that is logged."
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object per line; text: human-readable."
    )
    instance_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="Name of this replica in replies and logs (default: host name).",
    )


def load_settings(settings_type: type[SettingsT]) -> SettingsT:
    """Read settings_type from the environment; exit 2 naming each bad variable otherwise."""
    try:
        return settings_type()
    except ValidationError as error:
        lines = [f"invalid configuration for {settings_type.__name__}:"]
        for problem in error.errors():
            variable = "_".join(str(part) for part in problem["loc"]).upper()
            lines.append(f"  {variable}: {problem['msg']} (got {problem.get('input')!r})")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
