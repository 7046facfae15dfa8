"""The services of the repository as the local stack sees them, found under services/ with no
list to keep: a Python service by its settings model (`services/<name>/src/<package>/
settings.py`: the gRPC port's default, the services it calls through its ClientSettings
prefixes, every variable it reads), another language by its `services/<name>/service.toml`
(`[deploy] port` and `variables`, or `replica_of`; `[build]` and `[run]`). The HTTP edge says
so in its service.toml (`[stack] edge`). So a scaffolded service, Python or Go, is found as it
is written, and `nox -s up` runs it with no edit.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from acme_common import ClientSettings, ProcessSettings, ServerSettings

DESCRIPTOR = "service.toml"
# A package segment that is a version (buf's PACKAGE_VERSION_SUFFIX): v1, v2beta1, v1alpha.
_VERSION = re.compile(r"v[0-9]+(?:(?:p[0-9]+)?(?:alpha|beta)[0-9]*)?")
_GRPC = {"host": "GRPC_HOST", "port": "GRPC_PORT"}  # what every gRPC server listens by


class DiscoveryError(Exception):
    """A service directory the stack cannot run as it is; the message names it and why."""


@dataclass(frozen=True)
class Service:
    """One runnable service of services/."""

    name: str  # its directory: greeter, greeter-go, order_history
    directory: Path
    language: str
    command: tuple[str, ...]  # argv; {python}: this interpreter, {binary}: the build's output
    host_variable: str  # GRPC_HOST, GATEWAY_HOST
    port_variable: str  # GRPC_PORT, GATEWAY_PORT
    default_port: int
    implements: tuple[str, ...] = ()  # the proto services it serves (full names)
    clients: tuple[str, ...] = ()  # prefixes of the services it calls: GREETER_ (GREETER_TARGET)
    variables: frozenset[str] = frozenset()  # every setting it reads, upper case
    build: tuple[str, ...] = ()  # argv run in its directory first (empty: nothing to build)
    build_tools: tuple[str, ...] = ()
    install: str = ""  # how to get the build tools
    replica_of: str | None = None  # another service it implements, started only when asked
    edge_services: str | None = None  # the edge only: the variable listing exposed services

    @property
    def prefix(self) -> str:
        """Its settings' prefix in the stack's environment: GREETER (GREETER__LOG_LEVEL)."""
        return self.name.upper().replace("-", "_")

    @property
    def is_edge(self) -> bool:
        return self.edge_services is not None

    @property
    def reached_by(self) -> frozenset[str]:
        """The client prefixes whose <PREFIX>TARGET means this service: its name's and its
        proto services' (GREETER_ for greeter, and for greeter-go, which implements it)."""
        return frozenset({f"{self.prefix}_", *(client_prefix(s) for s in self.implements)})


def client_prefix(proto_service: str) -> str:
    """The prefix of the settings that reach a proto service (the gateway's rule): its
    package's last segment that is not a version, upper case: acme.orders.v1.OrdersService ->
    ORDERS_."""
    package = proto_service.rpartition(".")[0]
    segments = [s for s in package.split(".") if s and not _VERSION.fullmatch(s)]
    return f"{(segments or [package])[-1].upper()}_"


def variables_of(settings_type: type[BaseSettings]) -> frozenset[str]:
    """The environment variables a settings class reads (pydantic-settings: prefix + field)."""
    prefix = str(settings_type.model_config.get("env_prefix") or "")
    return frozenset((prefix + name).upper() for name in settings_type.model_fields)


def discover(root: Path) -> list[Service]:
    """Every service under root/services, in name order. DiscoveryError when one cannot be
    read (a Python service not installed in this environment, a malformed service.toml)."""
    found: dict[str, Service] = {}
    replicas: dict[str, tuple[Path, dict[str, Any]]] = {}
    for directory in sorted(path for path in (root / "services").iterdir() if path.is_dir()):
        declared = _declaration(directory)
        if declared.get("language", "python") == "python":
            service = _python_service(directory, declared)
        elif "replica_of" in declared.get("deploy", {}):
            replicas[directory.name] = (directory, declared)
            continue
        else:
            service = _declared_service(directory, declared)
        if service is not None:
            found[service.name] = service
    for name, (directory, declared) in replicas.items():
        twin = found.get(str(declared["deploy"]["replica_of"]))
        if twin is None or twin.is_edge:
            raise DiscoveryError(f"services/{name}/{DESCRIPTOR}: replica_of names no service")
        found[name] = replace(
            twin,
            name=name,
            directory=directory,
            language=str(declared["language"]),
            replica_of=twin.name,
            **_run(directory, declared),
        )
    return [found[name] for name in sorted(found)]


def _declaration(directory: Path) -> dict[str, Any]:
    path = directory / DESCRIPTOR
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise DiscoveryError(f"{path}: {error}") from None


def _run(directory: Path, declared: dict[str, Any]) -> dict[str, Any]:
    """command and build from a service.toml's [run] and [build]."""
    try:
        build = declared.get("build", {})
        return {
            "command": tuple(str(part) for part in declared["run"]["command"]),
            "build": tuple(str(part) for part in build.get("command", ())),
            "build_tools": tuple(str(tool) for tool in build.get("tools", ())),
            "install": str(build.get("install", "")),
        }
    except (KeyError, TypeError) as error:
        raise DiscoveryError(f"{directory / DESCRIPTOR}: no [run] command ({error!r})") from None


def _python_service(directory: Path, declared: dict[str, Any]) -> Service | None:
    """A Python service from its settings model: a ServerSettings subclass (a gRPC server), or
    a ProcessSettings one declared as the edge. None for a directory without settings.py."""
    settings_files = sorted(directory.glob("src/*/settings.py"))
    if not settings_files:
        return None
    package = settings_files[0].parent.name
    try:
        module = importlib.import_module(f"{package}.settings")
    except ImportError as error:
        raise DiscoveryError(
            f"services/{directory.name}: cannot import {package}.settings ({error}); "
            "is it installed in this environment? (`uv sync`; `nox -s up` syncs)"
        ) from None
    own = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and value.__module__ == module.__name__
    ]
    servers = [t for t in own if issubclass(t, ServerSettings)]
    processes: list[type[ProcessSettings]] = [*servers]
    processes = processes or [t for t in own if issubclass(t, ProcessSettings)]
    clients = [t for t in own if issubclass(t, ClientSettings)]
    if len(processes) != 1:
        raise DiscoveryError(
            f"services/{directory.name}: {package}.settings defines {len(processes)} server "
            "settings classes (ServerSettings or ProcessSettings subclasses); expected one"
        )
    [settings_type] = processes
    variables = variables_of(settings_type).union(*(variables_of(c) for c in clients))
    edge = declared.get("stack", {}).get("edge")
    if servers:
        listen, services_variable = _GRPC, None
        camel = "".join(part[:1].upper() + part[1:] for part in package.split("_"))
        implements = declared.get("implements") or [f"acme.{package}.v1.{camel}Service"]
    elif isinstance(edge, dict) and {"host", "port", "services"} <= edge.keys():
        listen, services_variable, implements = edge, str(edge["services"]), []
    else:
        raise DiscoveryError(
            f"services/{directory.name}: not a gRPC server (no ServerSettings) and not declared "
            f"the edge ([stack] edge = {{ host, port, services }} in {DESCRIPTOR})"
        )
    port_field = settings_type.model_fields.get(str(listen["port"]).lower())
    if port_field is None or not isinstance(port_field.default, int):
        raise DiscoveryError(f"services/{directory.name}: no default for {listen['port']}")
    run = (
        _run(directory, declared) if "run" in declared else {"command": ("{python}", "-m", package)}
    )
    return Service(
        name=directory.name,
        directory=directory,
        language="python",
        host_variable=str(listen["host"]),
        port_variable=str(listen["port"]),
        default_port=port_field.default,
        implements=tuple(str(name) for name in implements),
        clients=tuple(sorted({str(c.model_config.get("env_prefix")) for c in clients})),
        variables=variables,
        edge_services=services_variable,
        **run,
    )


def _declared_service(directory: Path, declared: dict[str, Any]) -> Service:
    """A service in another language from its service.toml: `[deploy] port` (GRPC_PORT's
    default) and `variables` (what it reads besides the shared ServerSettings, whose
    `<NAME>_TARGET` ones are the services it calls)."""
    deploy = declared.get("deploy", {})
    if not isinstance(deploy.get("port"), int):
        raise DiscoveryError(
            f"services/{directory.name}/{DESCRIPTOR}: [deploy] needs port or replica_of"
        )
    own = frozenset(str(variable).upper() for variable in deploy.get("variables", []))
    return Service(
        name=directory.name,
        directory=directory,
        language=str(declared["language"]),
        host_variable=_GRPC["host"],
        port_variable=_GRPC["port"],
        default_port=deploy["port"],
        implements=tuple(str(name) for name in declared.get("implements", [])),
        clients=tuple(sorted(v.removesuffix("TARGET") for v in own if v.endswith("_TARGET"))),
        variables=variables_of(ServerSettings) | own,
        **_run(directory, declared),
    )
