"""Interop fixtures: the real greeter and caller, each `python -m <service>` on a free loopback
port, started once for the directory and stopped with SIGTERM (exit code 0 asserted).

This is a small copy of what tests/integration/conftest.py's ServiceProcess does: that module is
imported by pytest as `integration.conftest` (importlib mode, tests/ is not a package), so it
cannot be imported from here without sys.path tricks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from acme_common import health_probe

HOST = "127.0.0.1"
GREETER_INSTANCE = "greeter-interop-1"
START_TIMEOUT = 20.0  # seconds a process gets to report SERVING
STOP_TIMEOUT = 20.0  # seconds it gets to exit after SIGTERM


def scrubbed_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without proxies (loopback only) and service settings."""
    dropped = ("GRPC_", "LOG_", "INSTANCE_NAME", "GREETER_", "CALLER_")
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().endswith("_PROXY") and not key.upper().startswith(dropped)
    }
    return {**kept, **(extra or {})}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


class Server:
    """One service process with its stderr (the JSON log) in a file."""

    def __init__(self, module: str, log_path: Path, env: Mapping[str, str]) -> None:
        self.module = module
        self.log_path = log_path
        self.address = f"{HOST}:{free_port()}"
        environment = {
            "GRPC_HOST": HOST,
            "GRPC_PORT": self.address.rsplit(":", 1)[1],
            "LOG_FORMAT": "json",
            **env,
        }
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module],
                env=scrubbed_environment(environment),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_serving(self) -> Server:
        deadline = time.monotonic() + START_TIMEOUT
        while (status := health_probe.check(self.address, "", timeout=1.0)) != "SERVING":
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"{self.module} not SERVING ({status}); stderr:\n{self.log()}")
            time.sleep(0.1)
        return self

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"{self.module} ignored SIGTERM; stderr:\n{self.log()}")


def run_server(module: str, directory: Path, env: Mapping[str, str]) -> Iterator[Server]:
    server = Server(module, directory / f"{module}.stderr.log", env)
    try:
        yield server.wait_serving()
    finally:
        code = server.stop()
    assert code == 0, f"{module} exited {code}; stderr:\n{server.log()}"


@pytest.fixture(scope="module")
def greeter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("greeter")
    yield from run_server("greeter", directory, {"INSTANCE_NAME": GREETER_INSTANCE})


@pytest.fixture(scope="module")
def caller(greeter: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("caller")
    env = {"INSTANCE_NAME": "caller-interop-1", "GREETER_TARGET": greeter.address}
    yield from run_server("caller", directory, env)
