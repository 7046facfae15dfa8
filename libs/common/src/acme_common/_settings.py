"""Configuration from environment variables, validated once at start."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Annotated, Literal, Self, TypeVar

import grpc
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from acme_common._event_loop import EventLoop
from acme_common._tls import pem

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

# Message compression (gRPC's grpc-encoding): gzip and deflate are what grpc core implements.
Compression = Literal["none", "gzip", "deflate"]
COMPRESSION_ALGORITHMS = {
    "none": grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}


def _split_tokens(value: object) -> object:
    """`a,b` -> ("a", "b"): secrets are comma-separated in the environment."""
    if isinstance(value, str):
        return tuple(token.strip() for token in value.split(",") if token.strip())
    return value


def _none_when_off(value: object) -> object:
    """ "" and 0 switch an optional port off (an overlay can blank a ConfigMap key)."""
    return None if value in ("", "0", 0) else value


def _existing_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"file {path} does not exist")
    return path


def _visible_ascii(token: SecretStr) -> SecretStr:
    """A bearer token grpc can send: 1+ visible ASCII characters (RFC 6750 b64token is a
    subset; a newline or a non-ASCII letter would fail every call as illegal metadata)."""
    value = token.get_secret_value()
    if not value or not all("!" <= character <= "~" for character in value):
        raise ValueError("must be visible ASCII characters (no spaces, newlines or accents)")
    return token


# The types of settings fields that services share (use them in a service's own settings).
Port = Annotated[int, Field(ge=0, le=65535)]  # a TCP port; 0 = any free one where allowed
PemFile = Annotated[Path, AfterValidator(_existing_file)]  # a PEM file that must exist
Tokens = Annotated[tuple[SecretStr, ...], NoDecode, BeforeValidator(_split_tokens)]
BearerToken = Annotated[SecretStr, AfterValidator(_visible_ascii)]  # a token to present
# What every listener of the product (gRPC server, HTTP edge) shares; each names its own.
BindHost = Annotated[str, Field(min_length=1, description="Address the server binds to.")]
GracePeriod = Annotated[
    float,
    Field(ge=0, le=300, description="Seconds in-flight calls get to finish after SIGTERM/SIGINT."),
]
DrainDelay = Annotated[
    float,
    Field(
        ge=0,
        le=60,
        description="Seconds between SIGTERM (health turns NOT_SERVING) and refusing new "
        "calls, so load balancers and clients' health checks move traffic away first.",
    ),
]


class ProcessSettings(BaseSettings):
    """What every process of the product reads, gRPC server or not (the gateway): logging,
    its name, bearer tokens, metrics and tracing."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level that is logged."
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object per line; text: human-readable."
    )
    access_log: Literal["all", "errors", "off"] = Field(
        default="all",
        description="Which RPCs get an access-log line: all, errors (status not OK), or off.",
    )
    instance_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="Name of this replica in replies and logs (default: host name).",
    )
    auth_tokens: Tokens = Field(
        default=(),
        description="Comma-separated bearer tokens accepted; empty = authentication off.",
    )
    metrics_port: Port = Field(
        default=0, description="Port of the Prometheus /metrics endpoint; 0 = off."
    )
    tracing_exporter: Literal["none", "console", "otlp"] = Field(
        default="none", description="OpenTelemetry span exporter; otlp reads OTEL_EXPORTER_OTLP_*."
    )
    # uvloop by default: it costs fewer instructions per call (bench/README.md, "Event loop");
    # the whole test suite runs on both (nox -s tests_other_loop).
    event_loop: EventLoop = Field(
        default="uvloop",
        description="Event loop the process runs on: uvloop (libuv) or asyncio (the standard "
        "library's).",
    )


class ServerSettings(ProcessSettings):
    """What every gRPC service reads from its environment; services subclass it to add their
    own."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    grpc_host: BindHost = "0.0.0.0"  # noqa: S104 - containers need it
    grpc_port: Port = Field(default=50051, description="gRPC port (0 = any free).")
    grpc_grace_period: GracePeriod = 10.0
    grpc_drain_delay: DrainDelay = 0.0
    grpc_workers: int = Field(
        default=1, ge=1, le=64, description="Server processes sharing the port (SO_REUSEPORT)."
    )
    grpc_max_concurrent_rpcs: int = Field(
        default=1000,
        ge=1,
        description="Cap on the RPCs one server process runs at once; more get "
        "RESOURCE_EXHAUSTED. Part of the memory budget (docs/operating.md).",
    )
    grpc_max_concurrent_streams: int = Field(
        default=32,
        ge=1,
        description="HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: calls one connection may have "
        "open at once; clients queue the rest. Part of the memory budget.",
    )
    grpc_max_message_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest message received or sent; larger ones get RESOURCE_EXHAUSTED. "
        "Part of the memory budget: a call in flight can hold about twice this.",
    )
    grpc_keepalive_min_ping_interval: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a client must leave between keepalive pings on an idle "
        "connection; pinging more often earns strikes and, after 2, a GOAWAY "
        "ENHANCE_YOUR_CALM (too_many_pings). Keep it below every client's keepalive time.",
    )
    grpc_max_connection_age: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="Seconds after which a connection is told to go away (GOAWAY NO_ERROR, "
        "grpc adds +-10 % jitter), so clients re-resolve and spread over new replicas.",
    )
    grpc_max_connection_age_grace: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="Seconds calls on an aged connection get to finish before it is closed.",
    )
    tls_cert_file: PemFile | None = Field(default=None, description="Server certificate (PEM).")
    tls_key_file: PemFile | None = Field(default=None, description="Server private key (PEM).")
    tls_client_ca_file: PemFile | None = Field(
        default=None, description="CA (PEM) that client certificates must chain to: mTLS."
    )
    admin_port: Annotated[Port | None, BeforeValidator(_none_when_off)] = Field(
        default=None,
        description="Plaintext port for health, reflection and channelz (cluster network "
        "only); unset, empty or 0 = none.",
    )
    admin_services_on_main_port: bool = Field(
        default=True, description="Serve reflection and channelz on the main port too."
    )
    grpc_compression: Compression = Field(
        default="none",
        description="Compression of replies to clients that accept it (grpc-accept-encoding); "
        "compressed requests are accepted whatever this says.",
    )

    @model_validator(mode="after")
    def _check_combinations(self) -> Self:
        if self.grpc_workers > 1 and self.grpc_port == 0:
            raise ValueError("GRPC_WORKERS > 1 needs a fixed GRPC_PORT for the workers to share")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("TLS_CLIENT_CA_FILE (mTLS) needs TLS_CERT_FILE and TLS_KEY_FILE")
        ports = {"GRPC_PORT": self.grpc_port, "METRICS_PORT": self.metrics_port}
        ports["ADMIN_PORT"] = self.admin_port or 0
        fixed = [(name, port) for name, port in ports.items() if port]
        if len({port for _, port in fixed}) < len(fixed):
            raise ValueError(f"two ports are the same: {', '.join(f'{n}={p}' for n, p in fixed)}")
        _check_pem_files(self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file)
        return self


class ClientSettings(BaseSettings):
    """How to reach another service; subclass with `env_prefix` (e.g. GREETER_) per target."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    target: str = Field(min_length=1, description="gRPC target, e.g. dns:///greeter:50051.")
    timeout: float = Field(
        default=5.0, gt=0, le=300, description="Deadline (s) of a call when the caller set none."
    )
    auth_token: BearerToken | None = Field(
        default=None, description="Bearer token to present (visible ASCII)."
    )
    tls_ca_file: PemFile | None = Field(
        default=None, description="CA (PEM) to verify the server with; set = use TLS."
    )
    tls_cert_file: PemFile | None = Field(default=None, description="Client certificate (mTLS).")
    tls_key_file: PemFile | None = Field(default=None, description="Client private key (mTLS).")
    tls_server_name: str | None = Field(
        default=None, description="Name expected in the server certificate, if not the target's."
    )
    compression: Compression = Field(
        default="none", description="Compression of the requests this channel sends."
    )
    keepalive_time: float = Field(
        default=30.0,
        gt=0,
        le=7200,
        description="Seconds between keepalive pings on the channel's connections, idle or "
        "not, so proxies and NATs keep them; must not be below the server's "
        "GRPC_KEEPALIVE_MIN_PING_INTERVAL (10 s by default).",
    )
    keepalive_timeout: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Seconds to wait for a ping's acknowledgement before the connection is "
        "considered dead and closed (calls on it fail UNAVAILABLE and are retried).",
    )

    @model_validator(mode="after")
    def _check_tls(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE must be set together")
        if self.tls_cert_file is not None and self.tls_ca_file is None:
            raise ValueError("a client certificate (mTLS) needs TLS_CA_FILE too")
        _check_pem_files(self.tls_cert_file, self.tls_key_file, None)
        if self.tls_ca_file is not None:  # a server's own self-signed certificate may be its root
            pem.certificates(_read(self.tls_ca_file), self.tls_ca_file)
        return self


def _check_pem_files(cert: Path | None, key: Path | None, ca: Path | None) -> None:
    """ValueError naming the file unless the configured TLS files are what TLS will use: a
    certificate and its own key, a bundle of CA certificates (acme_common._tls.pem)."""
    if cert is not None and key is not None:
        pem.check_pair(_read(cert), cert, _read(key), key)
    if ca is not None:
        pem.check_ca_bundle(_read(ca), ca)


def _read(path: Path) -> bytes:
    """The file's bytes; ValueError (a settings error) when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None


def load_settings(settings_type: type[SettingsT]) -> SettingsT:
    """Read settings_type from the environment; exit 2 naming each bad variable otherwise."""
    try:
        return settings_type()
    except ValidationError as error:
        prefix = str(settings_type.model_config.get("env_prefix") or "")
        lines = [f"invalid configuration for {settings_type.__name__}:"]
        for problem in error.errors():
            loc = "_".join(str(part) for part in problem["loc"]).upper()
            variable = prefix + loc if loc else ""
            secret = any(word in variable for word in ("TOKEN", "KEY"))
            hidden = secret or problem["type"] == "missing" or not problem["loc"]
            shown = "" if hidden else f" (got {problem.get('input')!r})"
            message = problem["msg"].removeprefix("Value error, ")
            name = variable or prefix.rstrip("_")
            lines.append(f"  {name}: {message}{shown}" if name else f"  {message}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
