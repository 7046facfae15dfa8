"""What the local stack will run, decided before anything starts: which services, on which
ports, and each one's environment (docs/running.md, "Run the stack locally").

- Services: every one found under services/ (acmectl.services), but a `replica_of` one
  (greeter-go) unless asked for (`--with`), minus `--without`; the edge starts last.
- Ports: each service's own default (its settings' or service.toml's), or `--base-port N`
  (N, N+1, ... in start order; 0: any free ones), or `--port NAME=PORT`.
- Wiring: each `<NAME>_TARGET` a service reads points at the services of that name (a replica
  joins its twin's: `ipv4:a,b`, balanced by the client); the edge exposes every gRPC service
  (`--expose` narrows it) in its services variable, each with its `<NAME>_TARGET`.
- Settings: `<SERVICE>__<VARIABLE>` (GREETER__LOG_LEVEL=debug) sets one service's variable;
  an exported variable goes to the one service that reads it; SHARED ones to every service;
  one that several services read is refused, as are the variables the stack sets itself.

Every refusal is a Refused (exit 2) naming the variable or flag, never a guess: one
process's METRICS_PORT given to all would have them fight for one port.
"""

from __future__ import annotations

import graphlib
import socket
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field

from acme_common import ClientSettings
from acme_devkit.ports import HOST, free_port
from acmectl.services import Service, client_prefix, variables_of

SEPARATOR = "__"  # GREETER__LOG_LEVEL: LOG_LEVEL of greeter only
# Settings the same for every process by nature (how to log, which loop, tracing), and the
# prefixes of libraries' own switches (grpc core's GRPC_VERBOSITY, OpenTelemetry's OTEL_*).
SHARED = frozenset({"LOG_LEVEL", "LOG_FORMAT", "ACCESS_LOG", "EVENT_LOOP", "TRACING_EXPORTER"})
SHARED_LIBRARY_PREFIXES = ("GRPC_", "OTEL_")
DEFAULTS = {"LOG_FORMAT": "text"}  # a terminal is read by people
CLIENT_VARIABLES = variables_of(ClientSettings)  # TARGET, TIMEOUT, ... (no prefix)


class Refused(Exception):
    """The stack cannot start as asked; the message says which variable or flag, and why."""


@dataclass(frozen=True)
class Options:
    """What the command line asks for (acmectl stack --help)."""

    with_: frozenset[str] = frozenset()  # replicas (or any service) to start as well
    without: frozenset[str] = frozenset()
    ports: Mapping[str, int] = field(default_factory=dict)  # --port NAME=PORT
    base_port: int | None = None  # --base-port: N, N+1, ... in start order; 0: free ones
    expose: frozenset[str] | None = None  # services the edge exposes; None: every one


@dataclass
class Process:
    """One service of the stack: where it listens and the environment it gets."""

    service: Service
    port: int
    env: dict[str, str] = field(default_factory=dict)  # on top of a clean environment
    variables: frozenset[str] = frozenset()  # what it reads here (the edge: + exposed ones)

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def owned(self) -> frozenset[str]:
        """The variables the stack sets for it and must know: its listening address and the
        edge's list of services."""
        service = self.service
        names = (service.host_variable, service.port_variable, service.edge_services)
        return frozenset(name for name in names if name)


@dataclass
class Plan:
    """The stack to start."""

    processes: list[Process]  # in start order: callees before callers, the edge last
    exposed: dict[str, Process]  # proto service -> the process the edge sends it to
    notes: list[str]  # what the stack left unwired, for the terminal

    def process(self, name: str) -> Process | None:
        return next((p for p in self.processes if p.name == name), None)


def make_plan(services: Sequence[Service], options: Options, environ: Mapping[str, str]) -> Plan:
    """The stack for options and the exported environ; Refused when it cannot be run."""
    by_name = {service.name: service for service in services}
    for flag, names in [
        ("--with", options.with_),
        ("--without", options.without),
        ("--port", options.ports.keys()),
        ("--expose", options.expose or ()),
    ]:
        unknown = sorted(set(names) - by_name.keys())
        if unknown:
            raise Refused(
                f"{flag}: no service {', '.join(unknown)} under services/ "
                f"(there are: {', '.join(by_name)})"
            )
    chosen = [
        s
        for s in services
        if (s.replica_of is None or s.name in options.with_) and s.name not in options.without
    ]
    edges = [s for s in chosen if s.is_edge]
    if len(edges) > 1:
        raise Refused(f"more than one edge: {', '.join(s.name for s in edges)}; --without one")
    processes = [Process(service, 0) for service in _start_order(chosen)]
    _assign_ports(processes, options)
    plan = Plan(processes, {}, [])
    providers = _providers(processes)
    for process in processes:
        process.variables = process.service.variables
        process.env = {"INSTANCE_NAME": f"{process.name}-local"}
        service = process.service
        process.env[service.host_variable] = HOST
        process.env[service.port_variable] = str(process.port)
        if service.is_edge:
            _expose(plan, process, providers, options.expose)
        else:
            _wire(plan, process, providers)
    _pass_environment(processes, environ, {service.prefix for service in services})
    _check_port_conflicts(processes)
    return plan


def _start_order(services: Sequence[Service]) -> list[Service]:
    """Callees before their callers (by the prefixes they call), name order otherwise, the
    edge last; a cycle keeps name order (each retries its calls until the other is up)."""
    grpc = [service for service in services if not service.is_edge]
    graph = graphlib.TopologicalSorter[str]()
    for service in grpc:
        callees = [s.name for s in grpc if s is not service and set(service.clients) & s.reached_by]
        graph.add(service.name, *callees)
    try:
        graph.prepare()
    except graphlib.CycleError:
        return [*grpc, *(service for service in services if service.is_edge)]
    order: list[str] = []
    while graph.is_active():
        ready = sorted(graph.get_ready())
        order.extend(ready)
        graph.done(*ready)
    by_name = {service.name: service for service in grpc}
    return [by_name[name] for name in order] + [s for s in services if s.is_edge]


def _assign_ports(processes: Sequence[Process], options: Options) -> None:
    """--port, else --base-port's sequence, else each default (a replica, whose default is
    its twin's, on the next port no other service of the stack has)."""
    if options.base_port is not None:
        for offset, process in enumerate(processes):
            process.port = free_port() if options.base_port == 0 else options.base_port + offset
    else:
        for process in processes:
            process.port = process.service.default_port
        taken = {p.port for p in processes if p.service.replica_of is None}
        for process in processes:
            if process.service.replica_of is not None:
                while process.port in taken:
                    process.port += 1
                taken.add(process.port)
    for process in processes:
        process.port = options.ports.get(process.name, process.port)
    by_port: dict[int, list[Process]] = {}
    for process in processes:
        by_port.setdefault(process.port, []).append(process)
    for port, sharing in sorted(by_port.items()):
        if len(sharing) > 1:
            names = ", ".join(f"{p.name} ({p.service.port_variable})" for p in sharing)
            raise Refused(
                f"port {port} is asked of {names}: give each its own "
                f"(--port {sharing[-1].name}=N, or --base-port N)"
            )


def _providers(processes: Iterable[Process]) -> dict[str, list[Process]]:
    """Client prefix (GREETER_) -> the processes it reaches: the service of that name or
    contract first, then its replicas."""
    providers: dict[str, list[Process]] = {}
    ordered = sorted(
        (p for p in processes if not p.service.is_edge),
        key=lambda p: (p.service.replica_of is not None, p.name),
    )
    for process in ordered:
        for prefix in sorted(process.service.reached_by):
            providers.setdefault(prefix, []).append(process)
    return providers


def _target(processes: Sequence[Process]) -> str:
    """A gRPC target for one or more loopback servers (the client balances over a list)."""
    if len(processes) == 1:
        return processes[0].address
    return "ipv4:" + ",".join(process.address for process in processes)


def _wire(plan: Plan, process: Process, providers: Mapping[str, list[Process]]) -> None:
    for prefix in process.service.clients:
        reached = [p for p in providers.get(prefix, []) if p is not process]
        if reached:
            process.env[f"{prefix}TARGET"] = _target(reached)
        else:
            plan.notes.append(
                f"{process.name} reads {prefix}TARGET: no service of the stack answers to it "
                f"(set {process.service.prefix}{SEPARATOR}{prefix}TARGET=host:port)"
            )


def _expose(
    plan: Plan,
    edge: Process,
    providers: Mapping[str, list[Process]],
    expose: frozenset[str] | None,
) -> None:
    """The edge's services variable and each exposed service's <NAME>_TARGET."""
    by_prefix: dict[str, str] = {}
    for prefix, reached in providers.items():
        primary = reached[0]
        if expose is not None and primary.name not in expose:
            continue
        for proto_service in primary.service.implements:
            if client_prefix(proto_service) != prefix or proto_service in plan.exposed:
                continue
            if prefix in by_prefix:  # the gateway reaches both through one <NAME>_TARGET
                raise Refused(
                    f"{by_prefix[prefix]} and {proto_service} would both be reached through "
                    f"{prefix}TARGET at the edge; --expose only one of their services"
                )
            by_prefix[prefix] = proto_service
            plan.exposed[proto_service] = primary
            edge.env[f"{prefix}TARGET"] = _target(reached)
    if not plan.exposed:
        raise Refused(f"{edge.name} would expose no service: --expose one, --without {edge.name}")
    assert edge.service.edge_services is not None  # noqa: S101 - for mypy: is_edge
    edge.env[edge.service.edge_services] = ",".join(sorted(plan.exposed))
    edge.variables = edge.service.variables.union(
        *({prefix + name for name in CLIENT_VARIABLES} for prefix in by_prefix)
    )


def _pass_environment(
    processes: Sequence[Process], environ: Mapping[str, str], known: Set[str]
) -> None:
    """The exported settings onto each process's env: its own (GREETER__X=...) over the
    stack's wiring, shared ones to all, another read by one process to that one. known: the
    prefixes of every service under services/ (one left out of the stack ignores its own)."""
    by_prefix = {f"{process.service.prefix}{SEPARATOR}": process for process in processes}
    every_variable = frozenset().union(*(process.variables for process in processes))
    for process in processes:
        for key, value in DEFAULTS.items():
            process.env.setdefault(key, value)
    own: list[tuple[Process, str, str, str]] = []
    for key, value in sorted(environ.items()):
        upper = key.upper()
        prefixed = next((prefix for prefix in by_prefix if upper.startswith(prefix)), None)
        if prefixed is not None:
            own.append((by_prefix[prefixed], upper.removeprefix(prefixed), value, key))
            continue
        head, separator, variable = upper.partition(SEPARATOR)
        if separator and head not in known and variable in every_variable:
            raise Refused(
                f"{key[:80]}: no service {head[:40]} under services/ (prefixes: "
                f"{', '.join(sorted(known))})"
            )
        library = upper.startswith(SHARED_LIBRARY_PREFIXES) and upper not in every_variable
        if upper in SHARED or library:
            for process in processes:
                process.env[upper] = value
            continue
        readers = [process for process in processes if upper in process.variables]
        if not readers:
            continue
        owners = [process for process in readers if upper in process.owned() | _wired(process)]
        if owners:
            raise Refused(f"{key}: {_set_by_the_stack(owners[0], upper)}")
        if len(readers) > 1:
            raise Refused(_ambiguous(key, value, readers))
        readers[0].env[upper] = value
    for process, variable, value, key in own:  # over the wiring, after every shared one
        readable = variable in process.variables or variable.startswith(SHARED_LIBRARY_PREFIXES)
        if not readable:
            raise Refused(f"{key}: {process.name} reads no {variable[:80]} (docs/configuration.md)")
        if variable in process.owned():
            raise Refused(f"{key}: {_set_by_the_stack(process, variable)}")
        process.env[variable] = value


def _wired(process: Process) -> frozenset[str]:
    """The <NAME>_TARGET variables the stack set for process."""
    return frozenset(name for name in process.env if name.endswith("_TARGET"))


def _set_by_the_stack(process: Process, variable: str) -> str:
    service = process.service
    if variable in (service.host_variable, service.port_variable):
        how = f"move it with --port {process.name}=N or --base-port N"
    elif variable == service.edge_services:
        how = "choose the services with --expose NAME,..."
    else:
        how = f"to point {process.name} elsewhere: {service.prefix}{SEPARATOR}{variable}=host:port"
    return f"set by the stack for {process.name} ({process.env.get(variable, '')}); {how}"


def _ambiguous(key: str, value: str, readers: Sequence[Process]) -> str:
    """Why an exported variable that several processes read is not given to all of them."""
    names = ", ".join(process.name for process in readers)
    example = f"{readers[0].service.prefix}{SEPARATOR}{key.upper()}="
    if key.upper().endswith("_PORT"):
        return (
            f"{key}={value[:20]} is read by {names}: they would all listen on one port. "
            f"Give it to one service by its prefix: {example}{value[:20]}"
        )
    return (
        f"{key} is read by {names}: the stack does not give one value to all of them (only "
        f"{', '.join(sorted(SHARED))}). Give it to one service by its prefix: {example}..."
    )


def _ports_asked(process: Process) -> list[tuple[str, int]]:
    """(variable, port) of every port process will listen on: its own and any *_PORT set."""
    asked = [(process.service.port_variable, process.port)]
    for variable, value in process.env.items():
        own = variable == process.service.port_variable
        if variable.endswith("_PORT") and not own and value.strip().isdigit() and int(value):
            asked.append((variable, int(value)))
    return asked


def _check_port_conflicts(processes: Sequence[Process]) -> None:
    seen: dict[int, tuple[Process, str]] = {}
    for process in processes:
        for variable, port in _ports_asked(process):
            if port in seen:
                other, other_variable = seen[port]
                raise Refused(
                    f"port {port} is asked twice: {_where(other, other_variable)} and "
                    f"{_where(process, variable)}; give each its own"
                )
            seen[port] = (process, variable)


def _where(process: Process, variable: str) -> str:
    if variable == process.service.port_variable:
        return f"{variable} of {process.name} (--port {process.name}=N)"
    return f"{variable} of {process.name} ({process.service.prefix}{SEPARATOR}{variable})"


def check_ports_free(plan: Plan) -> None:
    """Refused when a port of the plan is taken on this machine now (by another program, or
    a stack still running)."""
    for process in plan.processes:
        for variable, port in _ports_asked(process):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                # SO_REUSEADDR: a closed predecessor's TIME_WAIT connections are no conflict.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((HOST, port))
                except OSError as error:
                    raise Refused(
                        f"port {port} is taken ({error.strerror}): {_where(process, variable)}"
                    ) from None
