"""Resilience over real processes: losing a greeter under load, draining a stream on SIGTERM,
and a client's cancellation travelling from caller on to greeter."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from tests.contracts.rules import field_rules
from tests.processes import (
    EOF,
    RPC_TIMEOUT,
    ServiceFactory,
    open_channel,
    stand_in_greeter,
)

if TYPE_CHECKING:
    from acme.caller.v1.caller_pb2_grpc import CallerServiceAsyncStub

pytestmark = pytest.mark.integration

# The most languages one SayHelloLanguages request may ask for (greeter.proto's max_items).
MAX_LANGUAGES = field_rules(
    greeter_pb2.SayHelloLanguagesRequest.DESCRIPTOR, "languages"
).repeated.max_items

CLIENTS = 8  # concurrent callers of caller during the chaos test
BEFORE_KILL = 2.0  # seconds of traffic before one greeter is killed
AFTER_KILL = 2.0  # seconds of traffic after it
MAX_CALLS = 20_000  # hard bound on the calls of the whole chaos test


@dataclass
class Load:
    """Bounded closed-loop traffic through caller: who served each call, and what failed."""

    stub: CallerServiceAsyncStub
    served: list[tuple[float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, number: int) -> None:
        sent = 0
        while not self.stop.is_set() and len(self.served) + len(self.failures) < MAX_CALLS:
            started = time.monotonic()
            try:
                reply = await self.stub.Introduce(
                    caller_pb2.IntroduceRequest(name=f"client{number}-{sent}"),
                    timeout=RPC_TIMEOUT,
                )
                self.served.append((started, reply.greeter_instance))
            except grpc.aio.AioRpcError as error:
                self.failures.append(f"{error.code().name}: {error.details()}")
            sent += 1


@pytest.mark.parametrize(
    ("signum", "exit_code", "greeter_env"),
    [
        # Killed outright: calls caught on its connection fail UNAVAILABLE and are retried.
        pytest.param(signal.SIGKILL, -signal.SIGKILL, {}, id="sigkill"),
        # Stopped: it reports NOT_SERVING, caller's health check takes it out of round_robin
        # during the drain delay, then it refuses new calls and exits 0.
        pytest.param(signal.SIGTERM, 0, {"GRPC_DRAIN_DELAY": "1"}, id="sigterm-drain"),
    ],
)
async def test_losing_one_greeter_under_load_fails_no_call(
    services: ServiceFactory, signum: int, exit_code: int, greeter_env: dict[str, str]
) -> None:
    greeters = [
        services.start_greeter({"INSTANCE_NAME": f"greeter-{index}", **greeter_env})
        for index in range(2)
    ]
    target = "ipv4:" + ",".join(greeter.address for greeter in greeters)
    caller = services.start_caller(target)
    async with open_channel(caller.address) as channel:
        load = Load(caller_pb2_grpc.CallerServiceStub(channel))
        clients = [asyncio.create_task(load.client(number)) for number in range(CLIENTS)]
        try:
            await asyncio.sleep(BEFORE_KILL)
            greeters[0].send_signal(signum)
            killed_at = time.monotonic()
            await asyncio.sleep(AFTER_KILL)
        finally:
            load.stop.set()
            await asyncio.gather(*clients)
    assert greeters[0].wait_exit() == exit_code
    assert load.failures == [], f"{len(load.failures)} of {len(load.served)}: {load.failures[:5]}"
    before = {instance for started, instance in load.served if started < killed_at}
    after = [instance for started, instance in load.served if started > killed_at + 0.5]
    assert before == {"greeter-0", "greeter-1"}, "round_robin spreads calls over both"
    assert after, "calls went on after the kill"
    assert set(after) == {"greeter-1"}


async def test_sigterm_during_a_server_stream_lets_it_complete(services: ServiceFactory) -> None:
    # A stream larger than HTTP/2's initial flow-control window, read slowly: the server is
    # still writing it when SIGTERM arrives, and must finish it within the grace period.
    greeter = services.start_greeter({"GRPC_GRACE_PERIOD": "10"})
    name = "N" * 100
    request = greeter_pb2.SayHelloLanguagesRequest(name=name, languages=["en"] * MAX_LANGUAGES)
    # A small receive window that does not grow (no BDP probing) keeps the server waiting
    # for this client's reads instead of buffering the whole stream in the client.
    options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]
    async with grpc.aio.insecure_channel(greeter.address, options=options) as channel:
        call = greeter_pb2_grpc.GreeterServiceStub(channel).SayHelloLanguages(request, timeout=20)
        first = await asyncio.wait_for(call.read(), RPC_TIMEOUT)
        assert isinstance(first, greeter_pb2.SayHelloLanguagesResponse)
        greeter.send_signal(signal.SIGTERM)
        await greeter.wait_for_log("draining")
        await asyncio.sleep(1.0)  # the server keeps the call while the client dawdles
        assert greeter.returncode is None, "the server exited with a stream still in flight"
        received = [first]
        while (reply := await asyncio.wait_for(call.read(), RPC_TIMEOUT)) is not EOF:
            assert isinstance(reply, greeter_pb2.SayHelloLanguagesResponse)
            received.append(reply)
        assert await call.code() == grpc.StatusCode.OK
    assert len(received) == MAX_LANGUAGES
    assert all(reply.message == f"Hello, {name}!" for reply in received)
    assert await greeter.wait_exit_async() == 0


async def test_cancelling_a_call_to_caller_cancels_its_call_to_greeter(
    services: ServiceFactory,
) -> None:
    """A stand-in Greeter that never answers records when its call is cancelled."""
    arrived = asyncio.Event()
    cancelled = asyncio.Event()

    async def say_hello(
        request: greeter_pb2.SayHelloRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> greeter_pb2.SayHelloResponse:
        arrived.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return greeter_pb2.SayHelloResponse(message="too late")

    async with stand_in_greeter(say_hello) as address:
        caller = services.start_caller(address, {"GREETER_TIMEOUT": "30"})
        async with open_channel(caller.address) as channel:
            call = caller_pb2_grpc.CallerServiceStub(channel).Introduce(
                caller_pb2.IntroduceRequest(name="Ada"), timeout=30
            )
            await asyncio.wait_for(arrived.wait(), RPC_TIMEOUT)
            assert not cancelled.is_set()
            call.cancel()
            await asyncio.wait_for(cancelled.wait(), RPC_TIMEOUT)
            assert await call.code() == grpc.StatusCode.CANCELLED
    # Caller's own handler ended with the client's cancellation, long before its 30 s deadline.
    record = await caller.wait_for_record(
        method="/acme.caller.v1.CallerService/Introduce", code="CANCELLED"
    )
    assert record["duration_ms"] < RPC_TIMEOUT * 1000, record
