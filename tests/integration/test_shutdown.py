"""Graceful shutdown on SIGTERM/SIGINT: in-flight calls finish, new ones are refused, health
watchers see NOT_SERVING, and the process exits 0 within the grace period."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import ClientSettings, create_channel
from tests.processes import (
    EOF,
    GREETER_SERVICE,
    HOST,
    RPC_TIMEOUT,
    ServiceFactory,
    free_port,
    open_channel,
)

if TYPE_CHECKING:
    from acme.greeter.v1.greeter_pb2_grpc import GreeterServiceAsyncStub

pytestmark = pytest.mark.integration

GRACE = 10.0
CHAT_METHOD = "/acme.greeter.v1.GreeterService/Chat"


def greeter_stub(channel: grpc.aio.Channel) -> GreeterServiceAsyncStub:
    return greeter_pb2_grpc.GreeterServiceStub(channel)


async def chat_turn(
    call: grpc.aio.StreamStreamCall[greeter_pb2.ChatRequest, greeter_pb2.ChatResponse], name: str
) -> greeter_pb2.ChatResponse:
    """Send one name and read its reply (bounded)."""
    await call.write(greeter_pb2.ChatRequest(name=name))
    reply = await asyncio.wait_for(call.read(), RPC_TIMEOUT)
    assert isinstance(reply, greeter_pb2.ChatResponse), f"expected a reply, got {reply!r}"
    return reply


async def until_new_calls_are_refused(address: str, within: float = 5.0) -> None:
    """Poll with new calls until one fails with UNAVAILABLE (the listener is closed). A call
    that races the start of the shutdown may be accepted and then CANCELLED: poll on."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with open_channel(address) as channel:
            try:
                await greeter_stub(channel).SayHello(
                    greeter_pb2.SayHelloRequest(name="Late"), timeout=1
                )
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNAVAILABLE:
                    return
                if error.code() != grpc.StatusCode.CANCELLED:
                    raise
        await asyncio.sleep(0.05)
    pytest.fail(f"new calls to {address} were still accepted {within:.0f} s after SIGTERM")


async def test_sigterm_lets_an_in_flight_chat_finish(services: ServiceFactory) -> None:
    greeter = services.start_greeter({"GRPC_GRACE_PERIOD": str(GRACE)})
    async with open_channel(greeter.address) as channel:
        call = greeter_stub(channel).Chat(None, timeout=3 * GRACE)
        first = await chat_turn(call, "Ada")
        assert (first.sequence, first.message) == (1, "Hello, Ada!")

        signalled = time.monotonic()
        greeter.send_signal(signal.SIGTERM)
        draining = await greeter.wait_for_log("draining")
        assert draining["grace_seconds"] == GRACE
        await until_new_calls_are_refused(greeter.address)
        assert greeter.returncode is None, "the server must wait for the chat in flight"

        second = await chat_turn(call, "Grace")  # still served while draining
        assert (second.sequence, second.message) == (2, "Hello, Grace!")
        await call.done_writing()
        assert await asyncio.wait_for(call.read(), RPC_TIMEOUT) is EOF
        assert await call.code() == grpc.StatusCode.OK

    assert await greeter.wait_exit_async(within=GRACE) == 0
    assert time.monotonic() - signalled < GRACE
    messages = greeter.log_messages()
    assert messages.index("serving") < messages.index("draining") < messages.index("stopped")
    chats = [r for r in greeter.log_records() if r.get("method") == CHAT_METHOD]
    assert [r["code"] for r in chats] == ["OK"]


async def test_grace_period_bounds_a_stuck_call(services: ServiceFactory) -> None:
    greeter = services.start_greeter({"GRPC_GRACE_PERIOD": "1"})
    async with open_channel(greeter.address) as channel:
        call = greeter_stub(channel).Chat(None, timeout=30)
        assert (await chat_turn(call, "Ada")).sequence == 1
        signalled = time.monotonic()
        greeter.send_signal(signal.SIGTERM)
        # The request side stays open: the server must cut the call when the grace ends.
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await asyncio.wait_for(call.read(), 10)
        assert raised.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert await greeter.wait_exit_async(within=10) == 0
    elapsed = time.monotonic() - signalled
    assert 0.8 < elapsed < 6, f"exit {elapsed:.1f} s after SIGTERM with a 1 s grace period"
    assert "stopped" in greeter.log_messages()


@pytest.mark.parametrize("drain_delay", [0.0, 1.0])
async def test_open_health_watches_see_not_serving_then_end_without_holding_shutdown(
    services: ServiceFactory, drain_delay: float
) -> None:
    # An idle greeter with Watch streams open (a probe's, and grpc's own client-side health
    # checking on a channel built as caller's) exits right after the drain delay, not after
    # the 10 s grace period; the watchers get NOT_SERVING and then a clean end (OK).
    greeter = services.start_greeter(
        {
            "GRPC_GRACE_PERIOD": str(GRACE),
            "GRPC_DRAIN_DELAY": str(drain_delay),
            "LOG_LEVEL": "DEBUG",  # health calls are logged at DEBUG: counted below
        }
    )
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    checking = create_channel(
        ClientSettings(target=greeter.address), retry_services=[GREETER_SERVICE]
    )
    async with open_channel(greeter.address) as channel, checking:
        assert (
            await greeter_stub(checking).SayHello(
                greeter_pb2.SayHelloRequest(name="Ada"), timeout=RPC_TIMEOUT
            )
        ).message == "Hello, Ada!"
        stub = health_pb2_grpc.HealthStub(channel)
        watches = [
            stub.Watch(health_pb2.HealthCheckRequest(service=name), timeout=3 * GRACE)
            for name in ["", GREETER_SERVICE]
        ]
        for watch in watches:
            assert (await asyncio.wait_for(watch.read(), RPC_TIMEOUT)).status == serving

        signalled = time.monotonic()
        greeter.send_signal(signal.SIGTERM)
        for watch in watches:
            assert (await asyncio.wait_for(watch.read(), RPC_TIMEOUT)).status == not_serving
        for watch in watches:
            assert await asyncio.wait_for(watch.read(), GRACE) is EOF
            assert await watch.code() == grpc.StatusCode.OK
        assert await greeter.wait_exit_async(within=GRACE) == 0
        elapsed = time.monotonic() - signalled
    assert drain_delay <= elapsed < drain_delay + 2.0, f"exit {elapsed:.1f} s after SIGTERM"
    assert "stopped" in greeter.log_messages()
    watch_calls = [
        record
        for record in greeter.log_records()
        if record.get("method") == "/grpc.health.v1.Health/Watch"
    ]
    # Ours, and the health checker's: a Watch ended while the server took calls would be
    # restarted at once, again and again (a tight loop through the drain delay).
    assert len(watch_calls) <= 5, f"{len(watch_calls)} Watch calls"
    assert {record["code"] for record in watch_calls} == {"OK"}


@pytest.mark.parametrize("module", ["greeter", "caller"])
def test_sigint_stops_a_service_with_exit_code_0(services: ServiceFactory, module: str) -> None:
    env = {"GREETER_TARGET": f"{HOST}:{free_port()}"} if module == "caller" else {}
    service = services.start(module, {"INSTANCE_NAME": f"{module}-sigint", **env})
    assert service.terminate(signal.SIGINT) == 0
    messages = service.log_messages()
    assert messages[-2:] == ["draining", "stopped"], service.log_text()
