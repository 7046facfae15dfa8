"""`acmectl stack` (`nox -s up`) on the repository's services, whichever they are: every one
found under services/ serves, directly and through the edge; a setting given by a service's
prefix reaches that service only; Ctrl-C stops all of them cleanly; and what would have two
processes on one port, or a port already taken, is refused with exit 2 naming the variable.
(tests/scaffold/test_stack_scaffolded.py: the same for a service just scaffolded;
tests/tools/test_stack_plan.py: the decisions, on made-up services.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path

import grpc
import pytest

from acme_devkit.external import not_run
from acmectl.reflection import Reflection, invoke, parse_requests
from acmectl.services import Service, discover
from acmectl.stack import post_json as post
from tests.processes import HOST, free_port
from tests.tools import stack_process

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ACMECTL = [sys.executable, "-m", "acmectl"]
SERVICES = discover(ROOT)
STARTED = [service for service in SERVICES if service.replica_of is None]
GRPC = [service for service in STARTED if not service.is_edge]
EDGE = next(service for service in STARTED if service.is_edge)
CALL_TIMEOUT = 10.0
# Answers that a call did not reach a service's own code.
NOT_REACHED = {"unavailable", "unimplemented", "not_found"}


def environment(**settings: str) -> dict[str, str]:
    return {**os.environ, "LOG_FORMAT": "text", **settings}


def first_method(address: str, proto_service: str) -> str:
    """`<service>/<method>` of its first method, described by the server itself."""
    with grpc.insecure_channel(address) as channel:
        service = Reflection(channel, CALL_TIMEOUT).service(proto_service)
    return f"{proto_service}/{service.methods[0].name}"


def call_directly(address: str, method: str) -> None:
    """method with `{}`; it must reach the service's code (any answer of its own)."""
    with grpc.insecure_channel(address) as channel:
        descriptor = Reflection(channel, CALL_TIMEOUT).method(method)
        requests = parse_requests(descriptor, ["{}"] if not descriptor.client_streaming else [])
        try:
            list(invoke(channel, descriptor, requests, CALL_TIMEOUT))
            code = "ok"
        except grpc.RpcError as error:
            code = error.code().name.lower()
    assert code not in NOT_REACHED, f"{method} at {address}: {code}"


def post_json(edge: str, method: str, body: str) -> tuple[int, dict[str, object]]:
    """method through the edge as JSON over HTTP/1.1, as curl sends it."""
    status, answer = post(f"http://{edge}/{method}", body)
    return status, json.loads(answer)


def served_once_more(stack: stack_process.Stack, pattern: str, before: int) -> None:
    """Until the stack's output has more than `before` lines matching pattern."""
    deadline = time.monotonic() + 10.0
    while len(re.findall(pattern, stack.text(), re.MULTILINE)) <= before:
        if time.monotonic() > deadline:
            pytest.fail(f"no new line matching {pattern!r}:\n{stack.text()[-6000:]}")
        time.sleep(0.1)


def count(stack: stack_process.Stack, pattern: str) -> int:
    return len(re.findall(pattern, stack.text(), re.MULTILINE))


def access_line(method: str, instance: str) -> str:
    """An access-log line (text format, Python's or Go's) of method served by instance."""
    return rf"method=/{re.escape(method)} .*instance={re.escape(instance)}( |$)"


def test_every_service_serves_directly_and_through_the_edge(tmp_path: Path) -> None:
    # One service's own setting, by its prefix: its instance name (the others keep theirs).
    chosen = GRPC[0]
    env = environment(**{f"{chosen.prefix}__INSTANCE_NAME": "chosen-by-prefix"})
    stack = stack_process.start(ACMECTL, ["--base-port", "0"], tmp_path / "stack.log", env, ROOT)
    try:
        addresses = stack.addresses()
        assert set(addresses) == {service.name for service in STARTED}
        for service in GRPC:
            address = addresses[service.name]
            instance = "chosen-by-prefix" if service is chosen else f"{service.name}-local"
            for proto_service in service.implements:
                method = first_method(address, proto_service)
                served = access_line(method, instance)  # by this very process
                before = count(stack, served)
                call_directly(address, method)
                served_once_more(stack, served, before)
                status, reply = post_json(addresses[EDGE.name], method, "{}")
                assert reply.get("code") not in NOT_REACHED, (status, reply)
                served_once_more(stack, served, before + 1)
        overview = stack.text().partition("the stack:\n")[2]
        if "demo: " in overview:  # the stack's demo call, when it serves the method
            replies = re.findall(r"^  (\S.*)$", overview.partition("demo: ")[2], re.MULTILINE)
            assert replies[0].startswith("{"), overview  # directly
            assert replies[1].startswith("{"), overview  # through the edge
    finally:
        code = stack.interrupt()
    assert code == 0, stack.text()[-6000:]
    assert stack_process.problems(stack.text()) == []
    assert re.search(r"^stopped: .* exit 0$", stack.text(), re.MULTILINE)


REPLICAS = [service for service in SERVICES if service.replica_of is not None]


@pytest.mark.parametrize("replica", REPLICAS, ids=[service.name for service in REPLICAS])
def test_a_replica_asked_for_shares_its_twins_calls(tmp_path: Path, replica: Service) -> None:
    missing = [tool for tool in replica.build_tools if not shutil.which(tool)]
    if missing:
        not_run(f"--with {replica.name}", f"{', '.join(missing)} not on PATH", replica.install,
                "ACME_REQUIRE_GO_TOOLS")  # fmt: skip
    stack = stack_process.start(
        ACMECTL,
        ["--base-port", "0", "--with", replica.name, "--demo", ""],
        tmp_path / "stack.log",
        environment(),
        ROOT,
    )
    try:
        addresses = stack.addresses()
        assert replica.name in addresses
        twin = str(replica.replica_of)
        method = first_method(addresses[replica.name], replica.implements[0])
        instances = {f"{twin}-local", f"{replica.name}-local"}
        served: set[str] = set()
        for _ in range(50):  # the edge balances over both (round_robin): bounded attempts
            post_json(addresses[EDGE.name], method, "{}")
            text = stack.text()
            served = {name for name in instances if re.search(access_line(method, name), text)}
            if served == instances:
                break
            time.sleep(0.1)
        assert served == instances, stack.text()[-6000:]
    finally:
        code = stack.interrupt()
    assert code == 0, stack.text()[-6000:]
    assert stack_process.problems(stack.text()) == []


def test_one_port_variable_for_every_process_is_refused_naming_it() -> None:
    """METRICS_PORT=9090 nox -s up: every process would listen on it."""
    port = free_port()
    said = stack_process.refused(
        ACMECTL, ["--base-port", "0"], environment(METRICS_PORT=str(port)), ROOT
    )
    assert f"METRICS_PORT={port} is read by" in said
    prefixes = "|".join(service.prefix for service in STARTED)
    assert re.search(rf"by its prefix: ({prefixes})__METRICS_PORT={port}$", said, re.MULTILINE)


def test_two_processes_on_one_port_are_refused() -> None:
    first, second = STARTED[:2]
    port = free_port()
    said = stack_process.refused(
        ACMECTL, ["--port", f"{first.name}={port}", "--port", f"{second.name}={port}"],
        environment(), ROOT,
    )  # fmt: skip
    assert f"port {port} is asked of {first.name} ({first.port_variable})" in said
    env = environment(
        **{f"{first.prefix}__METRICS_PORT": str(port), f"{second.prefix}__METRICS_PORT": str(port)}
    )
    said = stack_process.refused(ACMECTL, ["--base-port", "0"], env, ROOT)
    assert f"port {port} is asked twice: METRICS_PORT of " in said


def test_a_port_taken_is_refused_naming_the_variable() -> None:
    service = STARTED[0]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as occupant:
        occupant.bind((HOST, 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        arguments = ["--base-port", "0", "--port", f"{service.name}={port}"]
        said = stack_process.refused(ACMECTL, arguments, environment(), ROOT)
    assert f"port {port} is taken" in said
    assert f"{service.port_variable} of {service.name}" in said
