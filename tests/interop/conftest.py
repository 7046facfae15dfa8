"""Interop fixtures: the real greeter and caller, each `python -m <service>` on a free loopback
port (acme_devkit's ServiceProcess), started once for the directory and stopped with SIGTERM
(exit code 0 asserted)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from acme_devkit.environment import clean_environment
from acme_devkit.processes import ServiceProcess

GREETER_INSTANCE = "greeter-interop-1"
START_TIMEOUT = 20.0  # seconds a process gets to report SERVING


Server = ServiceProcess


def scrubbed_environment() -> dict[str, str]:
    """This process's environment without anything a service reads (for the clients)."""
    return clean_environment()


def run_server(module: str, directory: Path, env: Mapping[str, str]) -> Iterator[Server]:
    server = Server.python_module(
        module, directory / f"{module}.stderr.log", {"LOG_FORMAT": "json", **env}
    )
    try:
        yield server.start().wait_ready(timeout=START_TIMEOUT)
    finally:
        code = server.stop()
    assert code == 0, f"{module} exited {code}; stderr:\n{server.log_text()}"


@pytest.fixture(scope="module")
def greeter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("greeter")
    yield from run_server("greeter", directory, {"INSTANCE_NAME": GREETER_INSTANCE})


@pytest.fixture(scope="module")
def caller(greeter: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("caller")
    env = {"INSTANCE_NAME": "caller-interop-1", "GREETER_TARGET": greeter.address}
    yield from run_server("caller", directory, env)
