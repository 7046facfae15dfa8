"""The local stack without Docker: greeter and caller as child processes on loopback."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import grpc

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme_common.health_probe import check


@dataclass
class Child:
    """One service process of the stack."""

    name: str
    module: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "GRPC_HOST": "127.0.0.1",
            "GRPC_PORT": str(self.port),
            "INSTANCE_NAME": f"{self.name}-local",
            "LOG_FORMAT": os.environ.get("LOG_FORMAT", "text"),
            **self.env,
        }
        self.process = subprocess.Popen([sys.executable, "-m", self.module], env=env)  # noqa: S603

    def wait_serving(self, timeout: float) -> None:
        """Block until the health service reports SERVING; exit if the process dies or hangs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with code {self.process.returncode}")
            if check(self.address, timeout=0.5) == "SERVING":
                return
            time.sleep(0.1)
        raise SystemExit(f"{self.name} was not SERVING on {self.address} after {timeout:.0f}s")

    def stop(self, interrupted: bool) -> int | None:
        """SIGTERM (unless Ctrl-C already reached it) and wait for the drain; the exit code."""
        if self.process is None:
            return None
        if interrupted:
            try:
                return self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass  # the interrupt came from elsewhere than the terminal: terminate below
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def run_stack(args: argparse.Namespace) -> None:
    greeter = Child("greeter", "greeter", args.greeter_port)
    caller = Child(
        "caller", "caller", args.caller_port, {"GREETER_TARGET": f"127.0.0.1:{args.greeter_port}"}
    )
    children = [greeter, caller]
    interrupted = False
    # Ctrl-C reaches the whole process group, so the children drain on their own SIGINT; the
    # handlers are set explicitly because a shell starts background jobs with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        for child in children:
            child.start()
            child.wait_serving(timeout=30)
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
        codes = {child.name: child.stop(interrupted) for child in reversed(children)}
        print(f"stopped: {', '.join(f'{name} exit {code}' for name, code in codes.items())}")
    if interrupted:
        print("bye")
