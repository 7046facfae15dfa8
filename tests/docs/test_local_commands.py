"""Every fence marked `local` runs, as written, against the local stack: what `nox -s up` runs
(`acmectl stack`), started once for the module on free ports (docs/testing.md, "Documented
commands"). The Docker Compose ones run in tests/e2e/test_documented_commands.py."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from acme_common import check_health
from acme_devkit.ports import free_port
from acme_devkit.processes import ServiceError, ServiceProcess
from tests.docs.fences import Fence, fences_to_run
from tests.docs.running import Target, run_fence

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0  # seconds for the three processes to start one after the other
STOP_TIMEOUT = 40.0  # seconds for the stack to drain its processes after Ctrl-C
COMMAND_TIMEOUT = 60.0  # seconds one documented command may take


class LocalStack(ServiceProcess):
    """`python -m acmectl stack` on free ports, in a process group of its own (stopped as
    Ctrl-C stops it: SIGINT to the group), ready when greeter and caller report SERVING and
    the gateway's /healthz answers 200."""

    def __init__(self, log_path: Path) -> None:
        self.ports = {name: free_port() for name in ("greeter", "caller", "gateway")}
        # Every service under services/ runs (a scaffolded one too): the documented ones on
        # the ports the test chose, any other on a free one.
        argv = [sys.executable, "-m", "acmectl", "stack", "--base-port=0"]
        argv += [f"--port={name}={port}" for name, port in self.ports.items()]
        super().__init__(
            "acmectl stack", argv, log_path, port=self.ports["gateway"], new_session=True
        )

    @property
    def target(self) -> Target:
        return Target({name: f"127.0.0.1:{port}" for name, port in self.ports.items()})

    def ready(self) -> str | None:
        """None once every process of the stack serves, else what does not yet."""
        for name in ("greeter", "caller"):
            status = check_health(self.target.addresses[name], timeout=1.0)
            if status != "SERVING":
                return f"{name}: {status}"
        return self.http_health()

    def interrupt(self) -> int:
        """Ctrl-C (SIGINT to the stack's process group), then its exit code."""
        if self.returncode is None:
            self.signalled = True
            os.killpg(self.pid, signal.SIGINT)
        return self.wait_exit(STOP_TIMEOUT)


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(tmp_path_factory.mktemp("local-stack") / "acmectl-stack.log")
    try:
        stack.start().wait_ready(stack.ready, timeout=START_TIMEOUT)
    except ServiceError as error:
        pytest.fail(str(error))
    try:
        yield stack
    finally:
        code = stack.interrupt()
    assert code == 0, f"acmectl stack exited {code} after Ctrl-C:\n{stack.log_text()}"


@pytest.mark.parametrize("fence", fences_to_run(ROOT, "local"), ids=lambda fence: fence.where)
def test_documented_commands_work_against_the_local_stack(
    fence: Fence, local_stack: LocalStack, tmp_path: Path
) -> None:
    run_fence(fence, local_stack.target, ROOT, tmp_path, COMMAND_TIMEOUT)
