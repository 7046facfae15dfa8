"""End-to-end fixtures: the Docker Compose stack (docker-compose.yml) that `nox -s compose`
builds and starts, reached through caller's published port and inspected with the docker CLI.

The session hands the stack over in two environment variables:

* ACME_E2E_PROJECT: the compose project name (`docker compose -p`), which labels every
  container of the stack (`com.docker.compose.project`);
* ACME_E2E_CALLER_ADDRESS: host:port of caller's port published on the host;
* ACME_E2E_GATEWAY_ADDRESS: host:port of the HTTP gateway's port published on the host;
* ACME_E2E_GREETER_ADDRESS: host:port of the greeter replica's port published on the host.

Without them (e.g. a bare `pytest`) every test here is skipped: run `nox -s compose`.
Containers are always addressed by id, never by name or by `docker compose`, so several
stacks can run side by side; only the documented commands (test_documented_commands.py) use
`docker compose`, as the docs do, under the session's project name, and run last.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from acme.caller.v1 import caller_pb2_grpc

PROJECT_VARIABLE = "ACME_E2E_PROJECT"
ADDRESS_VARIABLE = "ACME_E2E_CALLER_ADDRESS"
GATEWAY_VARIABLE = "ACME_E2E_GATEWAY_ADDRESS"
GREETER_VARIABLE = "ACME_E2E_GREETER_ADDRESS"
HERE = Path(__file__).resolve().parent
LAST_MODULE = "test_documented_commands.py"  # its commands end with `docker compose down`

RPC_TIMEOUT = 10.0  # client deadline of every call that is expected to succeed
DOCKER_TIMEOUT = 60.0  # seconds one docker CLI command may take
HEALTHY_TIMEOUT = 60.0  # seconds a (re)started container gets to report healthy

# Never route the loopback connection to caller through an HTTP proxy from the environment.
CHANNEL_OPTIONS: list[tuple[str, Any]] = [("grpc.enable_http_proxy", 0)]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: runs against the Docker Compose stack started by `nox -s compose`"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The documented commands after every other test of the stack (a stable sort), as the
    last of them stop it. (pluggy passes only the arguments named here.)"""
    items.sort(key=lambda item: item.path.name == LAST_MODULE and item.path.parent == HERE)


def docker(*args: str, timeout: float = DOCKER_TIMEOUT) -> str:
    """stdout of `docker ARGS...`; fails the test (with docker's stderr) on a non-zero exit."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"`docker {' '.join(args)}` exited {result.returncode}: {result.stderr.strip()}"
        )
    return result.stdout


@dataclass(frozen=True)
class Container:
    """One container of the stack, by its full id."""

    id: str

    @property
    def hostname(self) -> str:
        """The container's host name (its short id): the services' default INSTANCE_NAME."""
        return self.id[:12]

    @property
    def service(self) -> str:
        """Its compose service: `greeter` (Python) or `greeter-go` for a greeter replica."""
        return docker(
            "inspect", "--format", '{{index .Config.Labels "com.docker.compose.service"}}', self.id
        ).strip()

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(
            docker("inspect", "--format", "{{json .State}}", self.id)
        )
        return state

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log records the service wrote (stderr), in order; other lines are skipped."""
        result = subprocess.run(
            ["docker", "logs", self.id],
            capture_output=True,
            text=True,
            timeout=DOCKER_TIMEOUT,
            check=False,
        )
        records: list[dict[str, Any]] = []
        for line in (result.stdout + result.stderr).splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def wait_healthy(self, timeout: float = HEALTHY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < deadline:
            state = self.state()
            status = str(state.get("Health", {}).get("Status", state.get("Status")))
            if status == "healthy":
                return
            time.sleep(0.5)
        pytest.fail(f"container {self.hostname} not healthy after {timeout:.0f}s (is {status})")


@dataclass(frozen=True)
class Stack:
    """The compose project under test."""

    project: str
    caller_address: str
    gateway_address: str
    greeter_address: str

    def running(self, service: str) -> list[Container]:
        """The running containers of service, ordered by id."""
        output = docker(
            "ps",
            "--quiet",
            "--no-trunc",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        )
        return [Container(container_id) for container_id in sorted(output.split())]

    def answering_to(self, name: str) -> list[Container]:
        """The running containers the compose network's DNS gives for `name`: those of the
        service of that name and of any service with that network alias (greeter-go is one
        of greeter's replicas), ordered by id."""
        output = docker(
            "ps",
            "--quiet",
            "--no-trunc",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
        )
        found: list[Container] = []
        for container_id in sorted(output.split()):
            networks = json.loads(
                docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", container_id)
            )
            if any(name in (network.get("Aliases") or []) for network in networks.values()):
                found.append(Container(container_id))
        return found


@pytest.fixture(scope="session")
def stack() -> Stack:
    variables = [PROJECT_VARIABLE, ADDRESS_VARIABLE, GATEWAY_VARIABLE, GREETER_VARIABLE]
    values = [os.environ.get(variable, "") for variable in variables]
    if not all(values):
        pytest.skip(
            f"end-to-end tests need the Docker Compose stack: run `nox -s compose` "
            f"({' / '.join(variables)} are not set)"
        )
    return Stack(*values)


@pytest.fixture(scope="session")
def caller(stack: Stack) -> Iterator[caller_pb2_grpc.CallerServiceStub]:
    """A blocking stub of caller through its published port (the channel is thread-safe)."""
    with grpc.insecure_channel(stack.caller_address, options=CHANNEL_OPTIONS) as channel:
        grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT)
        yield caller_pb2_grpc.CallerServiceStub(channel)


@pytest.fixture
def greeters(stack: Stack) -> list[Container]:
    """The running greeter replicas behind `dns:///greeter`, Python's and Go's; the stack runs
    at least two of each kind between them (two Python, one Go)."""
    found = stack.answering_to("greeter")
    assert len(found) >= 2, f"expected at least 2 running greeter replicas, found {len(found)}"
    return found
