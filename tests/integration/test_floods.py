"""The memory budget of a replica under floods: whatever one client (or a handful) sends,
a greeter's peak RSS stays under MEMORY_BUDGET_MIB, it keeps answering health checks and
calls, and bursts of legitimate calls get OK or RESOURCE_EXHAUSTED, never CANCELLED.

The limits that enforce it (docs/operating.md): GRPC_MAX_CONCURRENT_STREAMS per connection,
grpc's bound on calls waiting for the event loop, GRPC_MAX_CONCURRENT_RPCS per process."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import ServerSettings, check_health
from acme_devkit.raw_http2 import flood
from tests.processes import (
    CHANNEL_OPTIONS,
    EOF,
    GREETER_SERVICE,
    RPC_TIMEOUT,
    ServiceFactory,
    ServiceProcess,
    open_channel,
)

pytestmark = pytest.mark.integration

# What a replica may reach, whatever clients send: docker-compose.yml and the Kubernetes
# base give each 256 MiB (prod 512); an idle greeter takes about 65.
MEMORY_BUDGET_MIB = 200
SAY_HELLO = f"/{GREETER_SERVICE}/SayHello"
ADA = greeter_pb2.SayHelloRequest(name="Ada").SerializeToString()
FLOOD_SECONDS = 30.0  # bound of each flooding connection
RECOVERY = 10.0  # seconds a flooded greeter gets to serve new connections again


def own_connection(address: str) -> grpc.aio.Channel:
    """A channel with a connection of its own (grpc shares one between channels to the same
    address otherwise)."""
    return grpc.aio.insecure_channel(
        address, options=[*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
    )


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


async def assert_healthy_and_serving(greeter: ServiceProcess) -> None:
    """Alive, and within RECOVERY seconds a new connection gets SERVING from health and an
    answer to SayHello. (While the calls a flood queued in grpc core drain, a new call may be
    dropped with CANCELLED: grpc's random early drop beyond 1000 waiting calls.)"""
    outcomes: list[str] = []
    for _ in range(round(RECOVERY / 0.5)):
        assert greeter.returncode is None, f"greeter died; stderr:\n{greeter.log_text()}"
        status = await asyncio.to_thread(check_health, greeter.address, "", 5.0)
        outcomes.append(f"health {status}")
        if status == "SERVING":
            async with open_channel(greeter.address) as channel:
                try:
                    reply = await greeter_pb2_grpc.GreeterServiceStub(channel).SayHello(
                        greeter_pb2.SayHelloRequest(name="Ada"), timeout=RPC_TIMEOUT
                    )
                except grpc.aio.AioRpcError as error:
                    outcomes.append(f"SayHello {error.code().name}")
                else:
                    assert reply.message == "Hello, Ada!"
                    return
        await asyncio.sleep(0.5)
    pytest.fail(f"not serving again within {RECOVERY} s: {outcomes}")


@pytest.mark.parametrize(
    ("connections", "streams", "reset"),
    [
        pytest.param(1, 50_000, True, id="rapid-reset-1x50000"),
        pytest.param(4, 20_000, True, id="rapid-reset-4x20000"),
        pytest.param(16, 3_000, False, id="unread-streams-16x3000"),
    ],
)
async def test_floods_stay_within_the_memory_budget(
    services: ServiceFactory, connections: int, streams: int, reset: bool
) -> None:
    greeter = services.start_greeter()
    for _ in range(2):  # a second flood must not add to the first
        results = await asyncio.gather(
            *(
                flood(
                    greeter.address,
                    SAY_HELLO,
                    ADA,
                    streams=streams,
                    reset=reset,
                    within=FLOOD_SECONDS,
                )
                for _ in range(connections)
            )
        )
        assert sum(result.streams_sent for result in results) > connections * streams // 2
        peak = peak_rss_mib(greeter.process.pid)
        assert peak < MEMORY_BUDGET_MIB, f"peak RSS {peak:.0f} MiB"
        await assert_healthy_and_serving(greeter)


@pytest.mark.parametrize(("calls", "channels"), [(2000, 1), (2000, 8), (1000, 50)])
async def test_bursts_of_calls_get_ok_or_resource_exhausted(
    services: ServiceFactory, calls: int, channels: int
) -> None:
    greeter = services.start_greeter()
    opened = [own_connection(greeter.address) for _ in range(channels)]
    try:
        stubs = [greeter_pb2_grpc.GreeterServiceStub(channel) for channel in opened]

        async def one(index: int) -> str:
            try:
                await stubs[index % channels].SayHello(
                    greeter_pb2.SayHelloRequest(name="Ada"), timeout=RPC_TIMEOUT * 4
                )
            except grpc.aio.AioRpcError as error:
                return error.code().name
            return "OK"

        codes = Counter(await asyncio.gather(*(one(index) for index in range(calls))))
    finally:
        for channel in opened:
            await channel.close(None)
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert codes["OK"] >= calls // 2, codes
    assert peak_rss_mib(greeter.process.pid) < MEMORY_BUDGET_MIB
    await assert_healthy_and_serving(greeter)


async def test_a_connection_gets_at_most_max_concurrent_streams(
    services: ServiceFactory,
) -> None:
    # GRPC_MAX_CONCURRENT_STREAMS=5: a sixth Chat on the same connection waits in the client
    # until one of the five ends, then gets its reply.
    greeter = services.start_greeter({"GRPC_MAX_CONCURRENT_STREAMS": "5"})
    async with open_channel(greeter.address) as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        chats: list[Any] = []
        for index in range(5):
            chats.append(stub.Chat(None, timeout=RPC_TIMEOUT * 4))
            await chats[index].write(greeter_pb2.ChatRequest(name=f"n{index}"))
            assert (await chats[index].read()).message == f"Hello, n{index}!"
        chats.append(stub.Chat(None, timeout=RPC_TIMEOUT * 4))
        sixth = asyncio.ensure_future(chats[5].write(greeter_pb2.ChatRequest(name="sixth")))
        reply = asyncio.ensure_future(chats[5].read())
        await asyncio.sleep(1.0)
        assert not reply.done(), "a sixth stream was opened on the connection"
        await chats[0].done_writing()
        assert await chats[0].read() is EOF
        await sixth
        assert (await asyncio.wait_for(reply, RPC_TIMEOUT)).message == "Hello, sixth!"
        for chat in chats[1:]:
            await chat.done_writing()
            assert await chat.code() == grpc.StatusCode.OK


async def test_calls_beyond_the_default_cap_get_resource_exhausted(
    services: ServiceFactory,
) -> None:
    # GRPC_MAX_CONCURRENT_RPCS defaults to 1000: that many held Chats fit in the budget, one
    # more call is refused, and once they end the server serves again.
    held, per_channel = 1000, 25  # under GRPC_MAX_CONCURRENT_STREAMS per connection
    greeter = services.start_greeter()
    opened = [own_connection(greeter.address) for _ in range(held // per_channel)]
    chats: list[Any] = []
    try:
        for index in range(held):
            stub = greeter_pb2_grpc.GreeterServiceStub(opened[index // per_channel])
            chats.append(stub.Chat(None, timeout=RPC_TIMEOUT * 12))

        async def greet(index: int) -> str:
            await chats[index].write(greeter_pb2.ChatRequest(name=f"n{index}"))
            reply = await chats[index].read()
            return str(reply.message)

        async with asyncio.timeout(RPC_TIMEOUT * 6):
            replies = await asyncio.gather(*(greet(index) for index in range(held)))
        assert replies == [f"Hello, n{index}!" for index in range(held)]
        async with open_channel(greeter.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await greeter_pb2_grpc.GreeterServiceStub(channel).SayHello(
                    greeter_pb2.SayHelloRequest(name="Ada"), timeout=RPC_TIMEOUT
                )
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        peak = peak_rss_mib(greeter.process.pid)
        assert peak < MEMORY_BUDGET_MIB, f"peak RSS {peak:.0f} MiB with {held} calls held"
        for chat in chats:
            await chat.done_writing()
        codes = Counter([(await chat.code()).name for chat in chats])
        assert codes == {"OK": held}
    finally:
        for channel in opened:
            await channel.close(None)
    await assert_healthy_and_serving(greeter)


async def test_large_messages_from_a_few_connections_stay_within_the_budget(
    services: ServiceFactory,
) -> None:
    # Each connection sends as many messages just under GRPC_MAX_MESSAGE_BYTES at once as it
    # may (GRPC_MAX_CONCURRENT_STREAMS): a call holds about two copies of its message.
    connections, per_connection = 5, 40
    greeter = services.start_greeter()
    limit = ServerSettings.model_fields["grpc_max_message_bytes"].default
    request = greeter_pb2.SayHelloRequest(name="x" * (limit - 64))
    opened = [own_connection(greeter.address) for _ in range(connections)]
    try:

        async def one(index: int) -> str:
            stub = greeter_pb2_grpc.GreeterServiceStub(opened[index % connections])
            try:
                await stub.SayHello(request, timeout=RPC_TIMEOUT * 4)
            except grpc.aio.AioRpcError as error:
                return error.code().name
            return "OK"

        for _ in range(2):
            codes = Counter(
                await asyncio.gather(*(one(i) for i in range(connections * per_connection)))
            )
            assert codes == {"INVALID_ARGUMENT": connections * per_connection}  # name too long
    finally:
        for channel in opened:
            await channel.close(None)
    peak = peak_rss_mib(greeter.process.pid)
    assert peak < MEMORY_BUDGET_MIB, f"peak RSS {peak:.0f} MiB"
    await assert_healthy_and_serving(greeter)
