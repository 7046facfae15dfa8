"""The local stack without Docker (`nox -s up`, `acmectl stack`): every service under
services/ as a child process on loopback, wired to each other and exposed through the HTTP
edge (acmectl.plan decides how), a demo call, then serving until Ctrl-C, when each drains.

Exit codes: 0 after a clean stop, 1 when a service fails to build, start or stop cleanly,
2 when the stack is refused as asked (a port taken or asked twice, a setting it cannot place)
or a service refused its settings: the message names the variable or flag."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from shlex import quote

import grpc

from acme_devkit.processes import ServiceError, ServiceProcess
from acmectl.plan import Options, Plan, Process, Refused, check_ports_free, make_plan
from acmectl.reflection import (
    NotDescribed,
    Reflection,
    invoke,
    parse_requests,
    sample_request,
    to_json,
)
from acmectl.services import DiscoveryError, discover

ACMECTL = "uv run acmectl"  # acmectl as a plain shell finds it, from the repository
START_TIMEOUT = 60.0  # seconds one service gets to become ready (a cold start included)
BUILD_TIMEOUT = 600.0  # seconds one build may take (a cold Go build cache included)
CALL_TIMEOUT = 5.0


def options(args: argparse.Namespace) -> Options:
    return Options(
        with_=frozenset(args.with_),
        without=frozenset(args.without),
        ports=dict(args.port),
        base_port=args.base_port,
        expose=None if args.expose is None else frozenset(args.expose),
    )


def run_stack(args: argparse.Namespace, root: Path) -> int:
    """The stack of root/services as args ask; the exit code."""
    try:
        plan = make_plan(discover(root), options(args), os.environ)
        check_ports_free(plan)
    except (Refused, DiscoveryError) as refused:
        print(f"acmectl stack: refused: {refused}", file=sys.stderr)
        return 2
    for note in plan.notes:
        print(f"acmectl stack: note: {note}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="acme-stack-") as builds:
        try:
            children = [child(process, Path(builds)) for process in plan.processes]
        except KeyboardInterrupt:  # during a build: nothing runs yet
            print("acmectl stack: interrupted", file=sys.stderr)
            return 130
        if any(service is None for service in children):
            return 1
        return supervise(plan, [c for c in children if c is not None], args)


def child(process: Process, builds: Path) -> ServiceProcess | None:
    """The process of one service, built first if it says how; None when the build failed
    (its output printed)."""
    service = process.service
    binary = builds / service.name
    if service.build:
        missing = [tool for tool in service.build_tools if shutil.which(tool) is None]
        if missing:
            print(
                f"acmectl stack: {service.name} needs {', '.join(missing)} to build: "
                f"install {service.install or 'it'}, or leave it out: --without {service.name}",
                file=sys.stderr,
            )
            return None
        print(f"acmectl stack: building {service.name} ...", flush=True)
        command = [part.format(binary=binary, python=sys.executable) for part in service.build]
        built = subprocess.run(  # noqa: S603 - the command its service.toml declares
            command, cwd=service.directory, check=False, timeout=BUILD_TIMEOUT
        )
        if built.returncode != 0:
            print(f"acmectl stack: building {service.name} failed", file=sys.stderr)
            return None
    argv = [part.format(binary=binary, python=sys.executable) for part in service.command]
    return ServiceProcess(service.name, argv, None, process.env, process.port)


def supervise(plan: Plan, children: list[ServiceProcess], args: argparse.Namespace) -> int:
    """Start children in order, demo, serve until Ctrl-C (or one exits), stop them all."""
    interrupted = False
    failed = False
    # Ctrl-C reaches the whole process group, so the children drain on their own SIGINT; the
    # handlers are set explicitly because a shell starts background jobs with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        for process, service in zip(plan.processes, children, strict=True):
            probe = service.http_health if process.service.is_edge else None
            service.start().wait_ready(probe, timeout=START_TIMEOUT)
        print(overview(plan, args), flush=True)
        while not args.exit_after_demo:
            gone = next((c for c in children if c.returncode is not None), None)
            if gone is not None:  # on its own: the stack is not what it said any more
                print(
                    f"acmectl stack: {gone.name} exited with code {gone.returncode}",
                    file=sys.stderr,
                )
                failed = True
                break
            time.sleep(0.5)
    except ServiceError as error:
        print(f"acmectl stack: {error}", file=sys.stderr)
        failed = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # The stop is under way: a second Ctrl-C, or nox passing the first one on, must not
        # cut the wait for the children's drain short (a KeyboardInterrupt traceback).
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        started = [service for service in reversed(children) if service.started]
        codes = {service.name: stop(service, interrupted) for service in started}
        print(f"stopped: {', '.join(f'{name} exit {code}' for name, code in codes.items())}")
    if interrupted:
        print("bye")
    if any(service.returncode == 2 for service in children if service.started):
        return 2  # a service refused its settings (its message, naming the variable, is above)
    return 1 if failed or any(code != 0 for code in codes.values()) else 0


def stop(service: ServiceProcess, interrupted: bool) -> int | None:
    """SIGTERM (unless Ctrl-C already reached it) and wait for the drain; the exit code."""
    if interrupted:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return service.process.wait(timeout=2)
        # the interrupt came from elsewhere than the terminal: terminate below
    return service.stop(timeout=30)


def overview(plan: Plan, args: argparse.Namespace) -> str:
    """What runs where, the demo's replies, and commands to paste (they work as printed)."""
    edge = next((p for p in plan.processes if p.service.is_edge), None)
    lines = ["", "the stack:"]
    for process in plan.processes:
        service = process.service
        if service.is_edge:
            what = f"http://{process.address}/ exposing {', '.join(sorted(plan.exposed))}"
        else:
            what = ", ".join(service.implements)
            what += f" (replica of {service.replica_of})" if service.replica_of else ""
        lines.append(f"  {process.name:<14} {process.address:<16} {what}")
    lines += demo(plan, args.demo, args.demo_request, edge)
    lines.append("try:")
    for process in plan.processes:
        if process.service.is_edge or process.service.replica_of:
            continue
        found = first_method(process)
        if found is None:
            lines.append(f"  ({process.name} serves no reflection: call it with its stubs)")
            continue
        method, request = found
        lines.append(f"  {ACMECTL} call --address {process.address} {method} {quote(request)}")
        if edge is not None and method.partition("/")[0] in plan.exposed:
            lines.append(
                f"  curl -H 'Content-Type: application/json' -d {quote(request)} "
                f"http://{edge.address}/{method}"
            )
    lines += ["docs/running.md says more; press Ctrl-C to stop", ""]
    return "\n".join(lines)


def demo(plan: Plan, method: str, request: str, edge: Process | None) -> list[str]:
    """The demo call (--demo, when the stack serves it) made directly and, when exposed,
    through the edge as JSON."""
    service_name = method.rpartition("/")[0]
    served = [p for p in plan.processes if service_name in p.service.implements]
    if not method or not served:
        return []
    process = served[0]
    lines = [f"demo: {ACMECTL} call --address {process.address} {method} {quote(request)}"]
    try:
        with grpc.insecure_channel(process.address) as channel:
            descriptor = Reflection(channel, CALL_TIMEOUT).method(method)
            messages = parse_requests(descriptor, [request])
            replies = invoke(channel, descriptor, messages, CALL_TIMEOUT)
            lines += [f"  {to_json(reply)}" for reply in replies]
    except (grpc.RpcError, NotDescribed, ValueError) as error:
        lines.append(f"  failed: {describe(error)}")
    if edge is not None and service_name in plan.exposed:
        lines.append(f"the same through {edge.name}, JSON over HTTP/1.1:")
        lines.append(f"  {over_http(edge, method, request)}")
    return lines


def first_method(process: Process) -> tuple[str, str] | None:
    """`<service>/<method>` of the first method process describes through reflection (so
    the hint is right for a service in any language) and a sample request for it; None
    without reflection."""
    try:
        with grpc.insecure_channel(process.address) as channel:
            reflection = Reflection(channel, CALL_TIMEOUT)
            service = reflection.service(reflection.services()[0])
    except (grpc.RpcError, NotDescribed, IndexError):
        return None
    method = next(iter(service.methods), None)
    if method is None:
        return None
    return f"{service.full_name}/{method.name}", sample_request(method)


def post_json(url: str, body: str) -> tuple[int, bytes]:
    """POST body as JSON over HTTP/1.1, as curl sends it (no proxy): the status and the
    answer's body. OSError when there is no answer."""
    request = urllib.request.Request(  # noqa: S310 - the stack's own http:// URLs
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=CALL_TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def over_http(edge: Process, method: str, request: str) -> str:
    """method through the edge as JSON over HTTP/1.1: the reply's body, on one line."""
    try:
        _, body = post_json(f"http://{edge.address}/{method}", request)
    except OSError as error:
        return f"failed: {error}"
    try:
        return json.dumps(json.loads(body))[:300]
    except ValueError:
        return body.decode(errors="replace")[:300]


def describe(error: BaseException) -> str:
    """An RPC failure as `CODE: details`, anything else as its message."""
    if isinstance(error, grpc.RpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error)
