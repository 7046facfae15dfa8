"""One client flooding a replica of the compose stack (caller: its port is the one published
on the host) with rapid resets and unread streams: the container stays under its 256 MiB
limit (no OOM kill, no restart), stays healthy for Docker, and answers calls again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme_devkit.raw_http2 import flood

from .conftest import RPC_TIMEOUT, Container, Stack, docker

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

INTRODUCE = "/acme.caller.v1.CallerService/Introduce"
ADA = caller_pb2.IntroduceRequest(name="Ada").SerializeToString()
LIMIT_MIB = 256  # deploy.resources.limits.memory in docker-compose.yml
RECOVERY = 20.0  # seconds the flooded replica gets to answer again


def peak_memory_mib(container: Container) -> float | None:
    """The most memory the container's cgroup ever used (cgroup v2 memory.peak), if this
    host exposes it (systemd or cgroupfs driver layouts)."""
    for path in (
        f"/sys/fs/cgroup/system.slice/docker-{container.id}.scope/memory.peak",
        f"/sys/fs/cgroup/docker/{container.id}/memory.peak",
    ):
        try:
            return int(Path(path).read_text()) / 2**20
        except (OSError, ValueError):
            continue
    return None


def memory_mib(container: Container) -> float:
    """What the container uses now (its cgroup), from `docker stats`."""
    usage = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", container.id)
    used = usage.split("/")[0].strip()
    number, unit = float(used.rstrip("KMGiB")), used.lstrip("0123456789.")
    return number * {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "B": 1 / 2**20}[unit]


def restarts(container: Container) -> int:
    return int(docker("inspect", "--format", "{{.RestartCount}}", container.id))


@pytest.mark.parametrize(
    ("connections", "streams", "reset"),
    [
        pytest.param(1, 50_000, True, id="rapid-reset-1x50000"),
        pytest.param(16, 3_000, False, id="unread-streams-16x3000"),
    ],
)
def test_a_flooded_replica_stays_within_its_limit_and_healthy(
    stack: Stack,
    caller: caller_pb2_grpc.CallerServiceStub,
    connections: int,
    streams: int,
    reset: bool,
) -> None:
    [target] = stack.running("caller")
    restarts_before = restarts(target)
    peak = memory_mib(target)

    async def flood_all() -> None:
        await asyncio.gather(
            *(
                flood(stack.caller_address, INTRODUCE, ADA, streams=streams, reset=reset, within=60)
                for _ in range(connections)
            )
        )

    asyncio.run(flood_all())
    deadline = time.monotonic() + RECOVERY
    answered: object = None
    while time.monotonic() < deadline:
        peak = max(peak, memory_mib(target))
        try:
            reply = caller.Introduce(caller_pb2.IntroduceRequest(name="Ada"), timeout=RPC_TIMEOUT)
        except Exception as error:
            answered = error
            time.sleep(0.5)
            continue
        answered = reply.message
        break
    assert answered == "Hello, Ada!", f"no answer within {RECOVERY} s: {answered!r}"
    state = target.state()
    assert state["OOMKilled"] is False
    assert state["Running"] is True
    assert restarts(target) == restarts_before
    assert state.get("Health", {}).get("Status") == "healthy"
    peak = max(peak, peak_memory_mib(target) or 0.0)
    assert peak < LIMIT_MIB, f"{peak:.0f} MiB"
