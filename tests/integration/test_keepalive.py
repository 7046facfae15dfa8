"""Long-lived connections, watched on the wire: keepalive pings on an idle caller-style channel
(acme_common.create_channel) to a real greeter, the server's ping policy, dead-peer detection and
connection recycling. Each test shows the effect of grpc options the project sets (grpc
silently ignores an option name it does not know), with short intervals set through the same
settings that carry the production defaults (30 s pings, 10 s accepted)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest
from hyperframe.frame import Frame, PingFrame

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import ClientSettings, create_channel
from acme_devkit.http2_tap import TO_CLIENT, TO_SERVER, Http2Tap, http2_tap
from tests.processes import RPC_TIMEOUT, ServiceFactory

pytestmark = pytest.mark.integration

PING_EVERY = 0.5  # seconds: the client's keepalive time in these tests
POLL = 0.05  # seconds between looks at the tap
PINGS_WATCHED = 4  # the idle connection is watched across this many pings


def channel_to(
    address: str, *, keepalive_time: float, keepalive_timeout: float = 5.0
) -> grpc.aio.Channel:
    """A channel built as caller builds its channel to greeter, with these keepalive settings."""
    settings = ClientSettings(
        target=address, keepalive_time=keepalive_time, keepalive_timeout=keepalive_timeout
    )
    return create_channel(settings, retry_services=["acme.greeter.v1.GreeterService"])


async def say_hello(channel: grpc.aio.Channel) -> str:
    stub = greeter_pb2_grpc.GreeterServiceStub(channel)
    reply = await stub.SayHello(greeter_pb2.SayHelloRequest(name="Ada"), timeout=RPC_TIMEOUT)
    return reply.message


async def wait_until(condition: Callable[[], object], within: float) -> None:
    """Poll condition() every 50 ms until it is true or `within` seconds have passed."""
    for _ in range(round(within / POLL)):
        if condition():
            return
        await asyncio.sleep(POLL)


def goaways(tap: Http2Tap) -> list[str]:
    return [f"{f.error} {f.debug_data!r}" for f in tap.seen("GOAWAY")]


async def test_idle_connection_with_keepalive_pings_stays_ready(services: ServiceFactory) -> None:
    # Pings every 0.5 s, accepted down to every 0.4 s: the production ratio (30 s vs 10 s)
    # would take minutes. With the server's 5-minute default (what an option name grpc does
    # not know leaves in place) the third ping already earns a GOAWAY (next test).
    greeter = services.start_greeter({"GRPC_KEEPALIVE_MIN_PING_INTERVAL": "0.4"})
    async with (
        http2_tap(greeter.address) as (address, tap),
        channel_to(address, keepalive_time=PING_EVERY) as channel,
    ):
        assert await say_hello(channel) == "Hello, Ada!"
        started = len(tap.seen("PING", TO_SERVER, ack=False))
        await wait_until(
            lambda: len(tap.seen("PING", TO_SERVER, ack=False)) - started >= PINGS_WATCHED + 1,
            within=PING_EVERY * (PINGS_WATCHED + 6),
        )
        pings = len(tap.seen("PING", TO_SERVER, ack=False)) - started
        assert pings >= PINGS_WATCHED, f"only {pings} keepalive pings while idle"
        assert len(tap.seen("PING", TO_CLIENT, ack=True)) >= pings, "pings not acknowledged"
        assert goaways(tap) == []
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        assert await say_hello(channel) == "Hello, Ada!"
        assert tap.connections == 1, "the idle connection was replaced"
    assert "GOAWAY" not in greeter.log_text()


async def test_pinging_faster_than_the_server_allows_is_told_off(
    services: ServiceFactory,
) -> None:
    # The server's policy as configured: pings closer than the interval are strikes; after
    # grpc.http2.max_ping_strikes (2) more, the connection gets GOAWAY too_many_pings.
    greeter = services.start_greeter({"GRPC_KEEPALIVE_MIN_PING_INTERVAL": "30"})
    async with (
        http2_tap(greeter.address) as (address, tap),
        channel_to(address, keepalive_time=PING_EVERY) as channel,
    ):
        assert await say_hello(channel) == "Hello, Ada!"
        await wait_until(lambda: tap.seen("GOAWAY", TO_CLIENT), within=PING_EVERY * 10)
        goaway = tap.seen("GOAWAY", TO_CLIENT)
        assert goaway, f"no GOAWAY after {len(tap.seen('PING', TO_SERVER, ack=False))} pings"
        assert (goaway[0].error, goaway[0].debug_data) == ("ENHANCE_YOUR_CALM", b"too_many_pings")
        before = [f for f in tap.frames if f.kind == "PING" and f.direction == TO_SERVER]
        idle_pings = [f for f in before if "ACK" not in f.flags and f.connection == 1]
        # One ping is allowed, then 2 strikes are tolerated: the fourth is one too many.
        assert 3 <= len(idle_pings) <= 5, idle_pings


async def test_a_peer_that_stops_answering_pings_is_dropped(services: ServiceFactory) -> None:
    # Once the connection is idle, the tap swallows the server's PING acknowledgements (any
    # frame received also counts as a sign of life, so a reply in between would mask it):
    # after keepalive_timeout the client closes the connection; the next call opens a new one.
    greeter = services.start_greeter({"GRPC_KEEPALIVE_MIN_PING_INTERVAL": "0.4"})
    dead = asyncio.Event()

    def drop_ping_acks(direction: str, frame: Frame) -> bool:
        return dead.is_set() and direction == TO_CLIENT and isinstance(frame, PingFrame)

    async with (
        http2_tap(greeter.address, drop=drop_ping_acks) as (address, tap),
        channel_to(address, keepalive_time=PING_EVERY, keepalive_timeout=1.0) as channel,
    ):
        assert await say_hello(channel) == "Hello, Ada!"
        dead.set()
        await wait_until(lambda: tap.closed, within=2 * PING_EVERY + 1.0 + 3.0)
        assert tap.closed, "the client kept a connection whose pings go unanswered"
        assert [f for f in tap.seen("PING", TO_CLIENT, ack=True) if f.dropped]
        assert await say_hello(channel) == "Hello, Ada!"
        assert tap.connections == 2


async def test_connections_are_recycled_after_max_connection_age(
    services: ServiceFactory,
) -> None:
    greeter = services.start_greeter(
        {"GRPC_MAX_CONNECTION_AGE": "1", "GRPC_MAX_CONNECTION_AGE_GRACE": "1"}
    )
    async with (
        http2_tap(greeter.address) as (address, tap),
        channel_to(address, keepalive_time=30) as channel,
    ):
        assert await say_hello(channel) == "Hello, Ada!"
        await wait_until(lambda: tap.seen("GOAWAY", TO_CLIENT), within=4.0)
        assert [(f.connection, f.error) for f in tap.seen("GOAWAY", TO_CLIENT)][:1] == [
            (1, "NO_ERROR")
        ]
        assert await say_hello(channel) == "Hello, Ada!"
        assert tap.connections >= 2, "no new connection after the GOAWAY"


async def test_calls_on_an_aged_connection_get_the_grace_period_then_are_cut(
    services: ServiceFactory,
) -> None:
    # GOAWAY after ~1 s (age), then the connection's calls get 1.5 s more (grace), no longer.
    greeter = services.start_greeter(
        {"GRPC_MAX_CONNECTION_AGE": "1", "GRPC_MAX_CONNECTION_AGE_GRACE": "1.5"}
    )
    async with (
        http2_tap(greeter.address) as (address, tap),
        channel_to(address, keepalive_time=30) as channel,
    ):
        chat = greeter_pb2_grpc.GreeterServiceStub(channel).Chat(None, timeout=RPC_TIMEOUT * 2)
        await chat.write(greeter_pb2.ChatRequest(name="Ada"))
        assert await chat.read() == greeter_pb2.ChatResponse(message="Hello, Ada!", sequence=1)
        await wait_until(lambda: tap.seen("GOAWAY", TO_CLIENT), within=3.0)
        assert tap.seen("GOAWAY", TO_CLIENT), "no GOAWAY after the connection's age"
        await chat.write(greeter_pb2.ChatRequest(name="Alan"))  # within the grace period
        assert await chat.read() == greeter_pb2.ChatResponse(message="Hello, Alan!", sequence=2)
        await asyncio.sleep(2.5)  # past age + grace (+10 % jitter)
        assert await chat.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
