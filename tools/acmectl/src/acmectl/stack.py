"""The local stack without Docker: greeter, caller and the HTTP gateway as child processes on
loopback."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import urllib.request

import grpc

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme_devkit.processes import ServiceError, ServiceProcess


def child(module: str, port: int, env: dict[str, str] | None = None) -> ServiceProcess:
    """A service of the stack (acme_devkit): its output on this terminal, and the settings
    exported in this shell passed on (the stack is configured that way), except the address."""
    return ServiceProcess.python_module(
        module,
        None,
        {
            "GRPC_HOST": "127.0.0.1",
            "GRPC_PORT": str(port),
            "INSTANCE_NAME": f"{module}-local",
            "LOG_FORMAT": os.environ.get("LOG_FORMAT", "text"),
            **(env or {}),
        },
        clean=False,
    )


def gateway_child(port: int, caller: str, greeter: str) -> ServiceProcess:
    """The gateway of the stack, exposing Caller and Greeter (for the page's stream)."""
    return ServiceProcess.gateway(
        None,
        {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_SERVICES": "acme.caller.v1.CallerService,acme.greeter.v1.GreeterService",
            "CALLER_TARGET": caller,
            "GREETER_TARGET": greeter,
            "INSTANCE_NAME": "gateway-local",
            "LOG_FORMAT": os.environ.get("LOG_FORMAT", "text"),
        },
        clean=False,
    )


def introduce_over_http(gateway: str, name: str) -> dict[str, str]:
    """Caller.Introduce through the gateway as JSON over HTTP/1.1, as curl sends it."""
    request = urllib.request.Request(
        f"http://{gateway}/acme.caller.v1.CallerService/Introduce",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        reply: dict[str, str] = json.load(response)
    return reply


def stop(service: ServiceProcess, interrupted: bool) -> int | None:
    """SIGTERM (unless Ctrl-C already reached it) and wait for the drain; the exit code."""
    if interrupted:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return service.process.wait(timeout=2)
        # the interrupt came from elsewhere than the terminal: terminate below
    return service.stop(timeout=30)


def run_stack(args: argparse.Namespace) -> None:
    greeter = child("greeter", args.greeter_port)
    caller = child("caller", args.caller_port, {"GREETER_TARGET": f"127.0.0.1:{args.greeter_port}"})
    gateway = gateway_child(args.gateway_port, caller.address, greeter.address)
    children = [greeter, caller, gateway]
    interrupted = False
    # Ctrl-C reaches the whole process group, so the children drain on their own SIGINT; the
    # handlers are set explicitly because a shell starts background jobs with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        for service in children:
            try:
                probe = gateway.http_health if service is gateway else None
                service.start().wait_ready(probe, timeout=30)
            except ServiceError as error:
                raise SystemExit(str(error)) from None
        with grpc.insecure_channel(caller.address) as channel:
            reply = caller_pb2_grpc.CallerServiceStub(channel).Introduce(
                caller_pb2.IntroduceRequest(name=args.name), timeout=5
            )
        over_http = introduce_over_http(gateway.address, args.name)
        print(
            f"\ndemo call through caller ({caller.address}) -> greeter ({greeter.address}):\n"
            f"  {reply.message}  (greeter instance: {reply.greeter_instance})\n"
            f"the same through the gateway ({gateway.address}), JSON over HTTP/1.1:\n"
            f"  {over_http['message']}\n\n"
            f"stack is up. try: acmectl --caller {caller.address} introduce Grace\n"
            f"web page: http://{gateway.address}/\n"
            f"curl: curl -H 'Content-Type: application/json' -d '{{\"name\": \"Ada\"}}' "
            f"http://{gateway.address}/acme.caller.v1.CallerService/Introduce\n"
            "press Ctrl-C to stop\n",
            flush=True,
        )
        if args.exit_after_demo:
            return
        signal.pause()
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
