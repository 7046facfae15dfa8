"""Every fence marked `compose` runs, as written, against the session's Docker Compose stack:
`docker compose` finds it through COMPOSE_PROJECT_NAME and the published ports the session
chose (docs/testing.md, "Documented commands"). A fence that stops the stack (`docker compose
down`) runs after the others, and this module after every other test here (conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.fences import Fence, fences_to_run
from tests.docs.running import Target, run_fence

from .conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 300.0  # seconds one command may take: `docker compose up --build --wait`


def stops_the_stack(fence: Fence) -> bool:
    down = ["docker", "compose", "down"]
    return any(command.text.split()[:3] == down for command in fence.commands)


FENCES = sorted(fences_to_run(ROOT, "compose"), key=stops_the_stack)  # stable: page order


def port(address: str) -> str:
    return address.rpartition(":")[2]


def compose_target(stack: Stack) -> Target:
    """The stack's published addresses, and the variables that make the docs' `docker compose`
    commands address it: its project name and the ports docker-compose.yml publishes (the
    values the session started it with, so `up` changes nothing)."""
    return Target(
        {
            "greeter": stack.greeter_address,
            "caller": stack.caller_address,
            "gateway": stack.gateway_address,
        },
        {
            "COMPOSE_PROJECT_NAME": stack.project,
            "GREETER_PUBLISHED_PORT": port(stack.greeter_address),
            "CALLER_PORT": port(stack.caller_address),
            "GATEWAY_PUBLISHED_PORT": port(stack.gateway_address),
        },
    )


@pytest.mark.parametrize("fence", FENCES, ids=lambda fence: fence.where)
def test_documented_commands_work_against_the_compose_stack(
    fence: Fence, stack: Stack, tmp_path: Path
) -> None:
    run_fence(fence, compose_target(stack), ROOT, tmp_path, COMMAND_TIMEOUT)
