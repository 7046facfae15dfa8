"""The gateway's configuration: what every process reads (ProcessSettings), its HTTP listener,
CORS, limits, which gRPC services it exposes, and how it reaches each of them."""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import BeforeValidator, Field, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from acme_common import (
    BindHost,
    ClientSettings,
    DrainDelay,
    GracePeriod,
    Port,
    ProcessSettings,
)


def _split_list(value: object) -> object:
    """`a, b` -> ("a", "b"): lists are comma-separated in the environment."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_list)]

# A service's full proto name, <package>.<Service>, its package of lower-case segments
# (acme.caller.v1, connectrpc.conformance.v1; buf's PACKAGE_LOWER_SNAKE_CASE).
_SERVICE_NAME = re.compile(r"((?:[a-z][a-z0-9_]*\.)+)[A-Z][A-Za-z0-9]*")
# A package's version segment (buf's PACKAGE_VERSION_SUFFIX): v1, v2beta1, v1alpha, v1p1beta1.
_VERSION = re.compile(r"v[0-9]+(?:(?:p[0-9]+)?(?:alpha|beta)[0-9]*)?")
# An origin as browsers send it (RFC 6454): scheme://host[:port], nothing after it.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")


class GatewaySettings(ProcessSettings):
    """The gateway's configuration, from environment variables (docs/configuration.md)."""

    gateway_host: BindHost = "0.0.0.0"  # noqa: S104 - containers need it
    gateway_port: Port = Field(default=8080, description="HTTP port (HTTP/1.1 and h2c).")
    gateway_grace_period: GracePeriod = 10.0
    gateway_drain_delay: DrainDelay = 0.0  # /healthz answers 503 during it
    gateway_services: CommaList = Field(
        default=("acme.caller.v1.CallerService",),
        min_length=1,
        description="gRPC services exposed, by full name (acme.<name>.v1.<Name>Service, "
        "<package>.<Service>); each is reached through the variables of its prefix, the last "
        "package segment that is not a version: <NAME>_TARGET, <NAME>_TIMEOUT, "
        "<NAME>_AUTH_TOKEN, <NAME>_TLS_*.",
    )
    gateway_cors_origins: CommaList = Field(
        default=(),
        description="Origins (scheme://host[:port]) whose pages may call the gateway; `*` = "
        "any. Empty: only the gateway's own page (same origin).",
    )
    gateway_max_request_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=4 * 1024 * 1024,
        description="Largest request message accepted (after decompression); larger ones are "
        "answered resource_exhausted.",
    )
    gateway_body_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a request body may take to arrive, counted from the request until "
        "the response starts; a slower client's call ends and its connection or stream is "
        "freed.",
    )
    gateway_pass_authorization: bool = Field(
        default=False,
        description="Forward the client's `authorization` header to the services (they check "
        "it); the services' own <NAME>_AUTH_TOKEN must then be unset.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        prefixes: dict[str, str] = {}
        for name in self.gateway_services:
            prefix = _prefix(name)
            if prefix is None:
                raise ValueError(
                    f"GATEWAY_SERVICES: {name[:80]!r} is not a service name "
                    "like acme.caller.v1.CallerService"
                )
            if prefix in prefixes and prefixes[prefix] != name:
                # Both would read the same <NAME>_TARGET: one of them would reach the other.
                raise ValueError(
                    f"GATEWAY_SERVICES: {prefixes[prefix]} and {name[:80]} would both be "
                    f"configured by {prefix}TARGET, ...; expose only one of them"
                )
            prefixes[prefix] = name
        for origin in self.gateway_cors_origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"GATEWAY_CORS_ORIGINS: {origin[:80]!r} is not an origin "
                    "like https://app.example.com"
                )
        return self


def _prefix(service: str) -> str | None:
    match = _SERVICE_NAME.fullmatch(service)
    if match is None:
        return None
    segments = [s for s in match.group(1).split(".") if s and not _VERSION.fullmatch(s)]
    return f"{segments[-1].upper()}_" if segments else None


def env_prefix(service: str) -> str:
    """The prefix of a service's client settings: its package's last segment that is not a
    version, upper-case: `acme.caller.v1.CallerService` -> `CALLER_`,
    `connectrpc.conformance.v1.ConformanceService` -> `CONFORMANCE_`."""
    prefix = _prefix(service)
    if prefix is None:
        raise ValueError(f"not a service name: {service!r}")
    return prefix


class CallerClientSettings(ClientSettings):
    """How the gateway reaches Caller: CALLER_TARGET, CALLER_TIMEOUT, CALLER_AUTH_TOKEN, ..."""

    model_config = SettingsConfigDict(env_prefix="CALLER_", frozen=True, extra="ignore")

    target: str = Field(
        default="127.0.0.1:50052",
        min_length=1,
        description="gRPC target of Caller, e.g. `dns:///caller:50052` for every replica.",
    )


def client_settings_type(service: str) -> type[ClientSettings]:
    """The settings class read for an exposed service: CallerClientSettings for Caller, else
    a ClientSettings with that service's prefix (its <NAME>_TARGET is then required)."""
    prefix = env_prefix(service)
    if prefix == CallerClientSettings.model_config.get("env_prefix"):
        return CallerClientSettings
    config = SettingsConfigDict(env_prefix=prefix, frozen=True, extra="ignore")
    return type(
        f"{prefix.title().replace('_', '')}ClientSettings",
        (ClientSettings,),
        {"model_config": config},
    )
