"""The local stack without Docker: greeter and caller as child processes on loopback."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess

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
    children = [greeter, caller]
    interrupted = False
    # Ctrl-C reaches the whole process group, so the children drain on their own SIGINT; the
    # handlers are set explicitly because a shell starts background jobs with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        for service in children:
            try:
                service.start().wait_ready(timeout=30)
            except ServiceError as error:
                raise SystemExit(str(error)) from None
        with grpc.insecure_channel(caller.address) as channel:
            reply = caller_pb2_grpc.CallerServiceStub(channel).Introduce(
                caller_pb2.IntroduceRequest(name=args.name), timeout=5
            )
        print(
            f"\ndemo call through caller ({caller.address}) -> greeter ({greeter.address}):\n"
            f"  {reply.message}  (greeter instance: {reply.greeter_instance})\n\n"
            f"stack is up. try: acmectl introduce Grace --caller {caller.address}\n"
            "press Ctrl-C to stop\n",
            flush=True,
        )
        if args.exit_after_demo:
            return
        signal.pause()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        started = [service for service in reversed(children) if service.started]
        codes = {service.name: stop(service, interrupted) for service in started}
        print(f"stopped: {', '.join(f'{name} exit {code}' for name, code in codes.items())}")
    if interrupted:
        print("bye")
