"""Hostile input over real sockets: malformed protobuf, invalid UTF-8, oversized messages and
metadata, unknown methods, bad bearer tokens, streams over the greeter's limits, thousands of
concurrent streams, clients that never read or vanish mid-stream, and raw TCP garbage.

Every case asserts the exact status code and a readable message (or that the damage is
contained), then that the same server process still runs and answers a good SayHello. The
servers are SIGTERMed at the end of the module and must exit 0 (ServiceFactory.stop_all).
"""

from __future__ import annotations

import asyncio
import re
import signal
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import field_violations, status_details
from acme_devkit.http2_tap import PREFACE
from acme_devkit.raw_http2 import raw_unary_call
from tests.processes import (
    CHANNEL_OPTIONS,
    EOF,
    HOST,
    RPC_TIMEOUT,
    ServiceFactory,
    ServiceProcess,
    free_port,
    open_channel,
)

from .abandoned_call import open_call

if TYPE_CHECKING:
    from acme.greeter.v1.greeter_pb2_grpc import GreeterServiceAsyncStub as Stub

    pass

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]  # where `python -m tests.integration...` runs

TOKEN = "hostile-input-token"  # noqa: S105 - a test secret
AUTH: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {TOKEN}"),)
MAX_MESSAGE_BYTES = 4096  # GRPC_MAX_MESSAGE_BYTES of the strict server
MAX_STREAM_NAMES = 50  # GREETER_MAX_STREAM_NAMES of the strict server
SERVICE = "/acme.greeter.v1.GreeterService"
SLOW_TIMEOUT = 60.0  # deadline of calls that share the server with thousands of others

Metadata = Sequence[tuple[str, str | bytes]]
Chat = grpc.aio.StreamStreamCall[greeter_pb2.ChatRequest, greeter_pb2.ChatResponse]


def _identity(data: bytes) -> bytes:
    return data


@dataclass(frozen=True)
class Servers:
    """The module's two greeters: `strict` (auth, small limits) and `roomy` (metrics, room for
    thousands of concurrent calls)."""

    strict: ServiceProcess
    roomy: ServiceProcess
    roomy_metrics_port: int


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    factory = ServiceFactory(tmp_path_factory.mktemp("hostile"))
    metrics_port = free_port()
    try:
        strict = factory.start_greeter(
            {
                "INSTANCE_NAME": "greeter-strict",
                "AUTH_TOKENS": TOKEN,
                "GRPC_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
                "GREETER_MAX_STREAM_NAMES": str(MAX_STREAM_NAMES),
            }
        )
        roomy = factory.start_greeter(
            {
                "INSTANCE_NAME": "greeter-roomy",
                "METRICS_PORT": str(metrics_port),
                "GRPC_MAX_CONCURRENT_RPCS": str(ROOMY_MAX_CONCURRENT_RPCS),
            }
        )
        yield Servers(strict, roomy, metrics_port)
    finally:
        factory.stop_all()  # SIGTERM; both must exit 0


@pytest.fixture
def strict(servers: Servers) -> ServiceProcess:
    return servers.strict


@pytest.fixture
def roomy(servers: Servers) -> ServiceProcess:
    return servers.roomy


async def assert_still_serving(server: ServiceProcess, metadata: Metadata = ()) -> None:
    """The process runs and a good SayHello on a fresh connection is answered."""
    assert server.returncode is None, f"{server!r} died; stderr:\n{server.log_text()}"
    async with open_channel(server.address) as channel:
        reply = await greeter_pb2_grpc.GreeterServiceStub(channel).SayHello(
            greeter_pb2.SayHelloRequest(name="Ada"), metadata=metadata, timeout=RPC_TIMEOUT
        )
    assert reply.message == "Hello, Ada!"


def assert_status(
    error: grpc.aio.AioRpcError, code: grpc.StatusCode, details: str | re.Pattern[str]
) -> None:
    """error has this code and a readable message: equal to details, or matching the pattern."""
    message = error.details() or ""
    assert error.code() == code, f"expected {code.name}, got {error.code().name}: {message!r}"
    assert message.isprintable(), f"unreadable status message {message!r}"
    if isinstance(details, str):
        assert message == details
    else:
        assert details.fullmatch(message), f"{message!r} does not match {details.pattern!r}"


# ---------------------------------------------------------------- malformed protobuf bytes

MALFORMED = re.compile(
    r"request: not a valid protobuf message \(DecodeError: Error parsing message with type "
    r"'acme\.greeter\.v1\.\w+': (?P<reason>.+)\)"
)
CORRUPT = "Wire format was corrupt"
BAD_UTF8 = "String field had bad UTF-8"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(b"\xff\xff\xff", CORRUPT, id="garbage-ff"),
        pytest.param(b"\x0a", CORRUPT, id="tag-without-length"),
        pytest.param(b"\x0a\x80\x80", CORRUPT, id="truncated-length-varint"),
        pytest.param(b"\x0a" + b"\x80" * 11, CORRUPT, id="overlong-varint"),
        pytest.param(b"\x0a\x05Ad", CORRUPT, id="length-past-the-end"),
        pytest.param(b"\x0a\x03Ada\x12", CORRUPT, id="trailing-half-field"),
        pytest.param(b"\x00\x01", CORRUPT, id="field-number-zero"),
        pytest.param(b"\x0b\x0a\x03Ada", CORRUPT, id="unterminated-group"),
        pytest.param(b"\x0a\x02\xff\xfe", BAD_UTF8, id="name-invalid-utf8"),
        pytest.param(b"\x0a\x03Ad\xc3", BAD_UTF8, id="name-truncated-utf8"),
        pytest.param(b"\x0a\x02\xc0\xaf", BAD_UTF8, id="name-overlong-utf8"),
        pytest.param(b"\x0a\x03\xed\xa0\x80", BAD_UTF8, id="name-utf16-surrogate"),
        pytest.param(b"\x0a\x03Ada\x12\x02\xfe\xff", BAD_UTF8, id="language-invalid-utf8"),
    ],
)
async def test_malformed_say_hello_bytes_get_invalid_argument(
    strict: ServiceProcess, payload: bytes, reason: str
) -> None:
    async with open_channel(strict.address) as channel:
        say_hello = channel.unary_unary(
            f"{SERVICE}/SayHello", request_serializer=_identity, response_deserializer=_identity
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await say_hello(payload, metadata=AUTH, timeout=RPC_TIMEOUT)
    assert_status(raised.value, grpc.StatusCode.INVALID_ARGUMENT, MALFORMED)
    match = MALFORMED.fullmatch(raised.value.details() or "")
    assert match is not None
    assert match["reason"] == reason
    violations = field_violations(status_details(raised.value))
    assert [v.field for v in violations] == ["request"]
    await assert_still_serving(strict, AUTH)


async def test_malformed_bytes_without_a_token_are_not_parsed(strict: ServiceProcess) -> None:
    """An unauthenticated client learns nothing about parsing: UNAUTHENTICATED, not
    INVALID_ARGUMENT."""
    async with open_channel(strict.address) as channel:
        say_hello = channel.unary_unary(
            f"{SERVICE}/SayHello", request_serializer=_identity, response_deserializer=_identity
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await say_hello(b"\x0a\x02\xff\xfe", timeout=RPC_TIMEOUT)
    assert_status(raised.value, grpc.StatusCode.UNAUTHENTICATED, DENIED)
    await assert_still_serving(strict, AUTH)


async def test_unknown_fields_and_wrong_wire_types_are_skipped_not_fatal(
    strict: ServiceProcess,
) -> None:
    """Not hostile for protobuf: unknown field 9 and a varint in place of `language` are
    skipped, so the request is an ordinary one."""
    async with open_channel(strict.address) as channel:
        say_hello = channel.unary_unary(
            f"{SERVICE}/SayHello", request_serializer=_identity, response_deserializer=_identity
        )
        raw = await say_hello(b"\x0a\x03Ada\x48\x01\x10\x05", metadata=AUTH, timeout=RPC_TIMEOUT)
    assert greeter_pb2.SayHelloResponse.FromString(raw).message == "Hello, Ada!"


async def send_garbage(channel: grpc.aio.Channel, method: str, garbage: bytes) -> None:
    """Call a streaming method with garbage as its (first bad) message."""
    if method == "SayHelloLanguages":
        stream = channel.unary_stream(
            f"{SERVICE}/{method}", request_serializer=_identity, response_deserializer=_identity
        )
        _ = [r async for r in stream(garbage, metadata=AUTH, timeout=RPC_TIMEOUT)]
    elif method == "GreetMany":
        upload = channel.stream_unary(
            f"{SERVICE}/{method}", request_serializer=_identity, response_deserializer=_identity
        )(None, metadata=AUTH, timeout=RPC_TIMEOUT)
        await upload.write(greeter_pb2.GreetManyRequest(name="Ada").SerializeToString())
        await upload.write(garbage)
        await upload  # no done_writing(): the server ends the call on the bad message
    else:
        chat = channel.stream_stream(
            f"{SERVICE}/{method}", request_serializer=_identity, response_deserializer=_identity
        )(None, metadata=AUTH, timeout=RPC_TIMEOUT)
        await chat.write(garbage)
        await chat.read()


@pytest.mark.parametrize("method", ["SayHelloLanguages", "GreetMany", "Chat"])
async def test_malformed_bytes_on_streaming_methods_get_invalid_argument(
    strict: ServiceProcess, method: str
) -> None:
    async with open_channel(strict.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await send_garbage(channel, method, b"\x0a\x02\xff\xfe")
    assert_status(raised.value, grpc.StatusCode.INVALID_ARGUMENT, MALFORMED)
    assert BAD_UTF8 in (raised.value.details() or "")
    await assert_still_serving(strict, AUTH)


# ---------------------------------------------------------------- messages over the size limit

TOO_LARGE = re.compile(r"SERVER: Received message larger than max \((\d+) vs\. 4096\)")
BIG_NAME = "x" * (MAX_MESSAGE_BYTES + 100)


async def send_too_large(stub: Stub, method: str) -> None:
    """Call method with a message over the strict server's receive limit."""
    if method == "SayHello":
        request = greeter_pb2.SayHelloRequest(name=BIG_NAME)
        await stub.SayHello(request, metadata=AUTH, timeout=RPC_TIMEOUT)
    elif method == "SayHelloLanguages":  # 1100 small languages add up to over 4 KiB
        languages = greeter_pb2.SayHelloLanguagesRequest(name="Ada", languages=["en"] * 1100)
        call = stub.SayHelloLanguages(languages, metadata=AUTH, timeout=RPC_TIMEOUT)
        _ = [reply async for reply in call]
    elif method == "GreetMany":  # the second message of the stream is too large
        upload = stub.GreetMany(None, metadata=AUTH, timeout=RPC_TIMEOUT)
        await upload.write(greeter_pb2.GreetManyRequest(name="Ada"))
        await upload.write(greeter_pb2.GreetManyRequest(name=BIG_NAME))
        await upload  # the server ends the call on the large message
    else:  # Chat: answered once, then a message that is too large
        chat = stub.Chat(None, metadata=AUTH, timeout=RPC_TIMEOUT)
        await chat.write(greeter_pb2.ChatRequest(name="Ada"))
        assert isinstance(await chat.read(), greeter_pb2.ChatResponse)
        await chat.write(greeter_pb2.ChatRequest(name=BIG_NAME))
        await chat.read()


@pytest.mark.parametrize("method", ["SayHello", "SayHelloLanguages", "GreetMany", "Chat"])
async def test_a_message_over_the_receive_limit_gets_resource_exhausted(
    strict: ServiceProcess, method: str
) -> None:
    async with open_channel(strict.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await send_too_large(greeter_pb2_grpc.GreeterServiceStub(channel), method)
    assert_status(raised.value, grpc.StatusCode.RESOURCE_EXHAUSTED, TOO_LARGE)
    await assert_still_serving(strict, AUTH)


async def test_a_message_just_under_the_limit_is_served(strict: ServiceProcess) -> None:
    """The limit is the limit: 1000 languages (about 4000 bytes) are still answered."""
    async with open_channel(strict.address) as channel:
        call = greeter_pb2_grpc.GreeterServiceStub(channel).SayHelloLanguages(
            greeter_pb2.SayHelloLanguagesRequest(name="Ada", languages=["en"] * 1000),
            metadata=AUTH,
            timeout=RPC_TIMEOUT,
        )
        replies = [reply async for reply in call]
    assert len(replies) == 1000


# ---------------------------------------------------------------- unknown methods and services


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"{SERVICE}/SayGoodbye", id="unknown-method"),
        pytest.param(f"{SERVICE}/sayhello", id="wrong-case-method"),
        pytest.param("/acme.greeter.v2.GreeterService/SayHello", id="unknown-version"),
        pytest.param("/acme.nothing.v1.NothingService/Do", id="unknown-service"),
        pytest.param("/grpc.health.v1.Health/Explode", id="unknown-health-method"),
        pytest.param("/no-slashes-here", id="malformed-path"),
    ],
)
@pytest.mark.parametrize("authenticated", [True, False], ids=["with-token", "without-token"])
async def test_unknown_methods_get_unimplemented_only_with_a_token(
    strict: ServiceProcess, path: str, authenticated: bool
) -> None:
    """Without a token, only the open services (health, reflection) say what they lack."""
    async with open_channel(strict.address) as channel:
        call = channel.unary_unary(
            path, request_serializer=_identity, response_deserializer=_identity
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(b"", metadata=AUTH if authenticated else (), timeout=RPC_TIMEOUT)
    if authenticated or path.startswith("/grpc.health.v1."):
        assert_status(raised.value, grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
    else:
        assert_status(raised.value, grpc.StatusCode.UNAUTHENTICATED, DENIED)
    await assert_still_serving(strict, AUTH)


# ---------------------------------------------------------------- bearer tokens

DENIED = "missing or invalid bearer token"


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param((), id="no-authorization"),
        pytest.param((("authorization", TOKEN),), id="no-bearer-prefix"),
        pytest.param((("authorization", ""),), id="empty-header"),
        pytest.param((("authorization", "Bearer "),), id="empty-token"),
        pytest.param((("authorization", "Bearer"),), id="bearer-without-space"),
        pytest.param((("authorization", f"Basic {TOKEN}"),), id="basic-scheme"),
        pytest.param((("authorization", f"Bearer  {TOKEN}"),), id="two-spaces"),
        pytest.param((("authorization", f"Bearer {TOKEN} "),), id="trailing-space"),
        pytest.param((("authorization", f"Bearer Bearer {TOKEN}"),), id="double-bearer"),
        pytest.param((("authorization", f"Bearer {TOKEN[:-1]}"),), id="token-prefix"),
        pytest.param((("authorization", f"Bearer {TOKEN}x"),), id="token-extended"),
        pytest.param((("authorization", f"Bearer {TOKEN.upper()}"),), id="token-uppercase"),
        pytest.param((("authorization", "Bearer " + "t" * 4000),), id="4000-char-token"),
        pytest.param((("authorization-bin", f"Bearer {TOKEN}".encode()),), id="binary-key"),
        pytest.param((("x-authorization", f"Bearer {TOKEN}"),), id="wrong-key"),
        pytest.param(
            (("authorization", "Bearer wrong"), ("authorization", f"Bearer {TOKEN}")),
            id="bad-token-first-of-two",
        ),
    ],
)
async def test_bad_bearer_tokens_get_unauthenticated(
    strict: ServiceProcess, metadata: Metadata
) -> None:
    async with open_channel(strict.address) as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.SayHello(
                greeter_pb2.SayHelloRequest(name="Ada"), metadata=metadata, timeout=RPC_TIMEOUT
            )
        assert_status(raised.value, grpc.StatusCode.UNAUTHENTICATED, DENIED)
        chat = stub.Chat(None, metadata=metadata, timeout=RPC_TIMEOUT)  # refused before any message
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await chat.read()
        assert_status(raised.value, grpc.StatusCode.UNAUTHENTICATED, DENIED)
    await assert_still_serving(strict, AUTH)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
async def test_the_bearer_scheme_is_case_insensitive(strict: ServiceProcess, scheme: str) -> None:
    """RFC 7235 2.1: the auth scheme is case-insensitive (the token itself is not)."""
    await assert_still_serving(strict, (("authorization", f"{scheme} {TOKEN}"),))


# grpcio refuses to send non-ASCII metadata, so these go out as raw HTTP/2 (raw_http2.py).
H2_PREFACE = PREFACE


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    header = struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream)
    return header + payload


async def raw_say_hello(address: str, authorization: bytes) -> tuple[int | None, str]:
    """SayHello(name="Ada") as raw HTTP/2 with this authorization; (grpc-status, message)."""
    reply = await raw_unary_call(
        address,
        f"{SERVICE}/SayHello",
        greeter_pb2.SayHelloRequest(name="Ada").SerializeToString(),
        (("authorization", authorization),),
        within=RPC_TIMEOUT,
    )
    return reply.status, reply.message


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(f"Bearer {TOKEN}é".encode(), id="utf8-accent"),
        pytest.param("Bearer ключ".encode(), id="cyrillic"),
        pytest.param(b"Bearer \xff\xfe\x00\x01", id="invalid-utf8-and-nul"),
        pytest.param(f"Bearer\u00a0{TOKEN}".encode(), id="nbsp-separator"),
    ],
)
async def test_non_ascii_tokens_get_unauthenticated(
    strict: ServiceProcess, authorization: bytes
) -> None:
    status, message = await raw_say_hello(strict.address, authorization)
    assert (status, message) == (grpc.StatusCode.UNAUTHENTICATED.value[0], DENIED)
    await assert_still_serving(strict, AUTH)


async def test_the_raw_http2_client_is_answered_with_the_right_token(
    strict: ServiceProcess,
) -> None:
    """The control for the previous test: the raw HTTP/2 call is a valid call."""
    status, _ = await raw_say_hello(strict.address, f"Bearer {TOKEN}".encode())
    assert status == 0


# ---------------------------------------------------------------- oversized metadata

METADATA_TOO_LARGE = re.compile(r"received metadata size exceeds hard limit .+")


@pytest.mark.parametrize(
    "metadata",
    [
        # Over the hard limit (16 KiB); between the soft (8 KiB) and hard limits grpc rejects
        # a random share of calls, so no case sits there.
        pytest.param((("x-padding", "p" * 20_000),), id="one-20KB-value"),
        pytest.param((("authorization", "Bearer " + "t" * 20_000),), id="20KB-token"),
        pytest.param(tuple((f"x-pad-{i}", "p" * 100) for i in range(300)), id="300-headers"),
        pytest.param((("x-" + "k" * 20_000, "v"),), id="20KB-key"),
    ],
)
async def test_oversized_metadata_gets_resource_exhausted(
    strict: ServiceProcess, metadata: Metadata
) -> None:
    async with open_channel(strict.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await greeter_pb2_grpc.GreeterServiceStub(channel).SayHello(
                greeter_pb2.SayHelloRequest(name="Ada"),
                metadata=(*AUTH, *metadata),
                timeout=RPC_TIMEOUT,
            )
    assert_status(raised.value, grpc.StatusCode.RESOURCE_EXHAUSTED, METADATA_TOO_LARGE)
    await assert_still_serving(strict, AUTH)


# ---------------------------------------------------------------- the greeter's stream limit

OVER_NAMES = f"a stream may carry at most {MAX_STREAM_NAMES} names"


async def test_greet_many_over_the_name_limit_gets_resource_exhausted(
    strict: ServiceProcess,
) -> None:
    async with open_channel(strict.address) as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        at_limit = stub.GreetMany(
            iter([greeter_pb2.GreetManyRequest(name="Ada")] * MAX_STREAM_NAMES),
            metadata=AUTH,
            timeout=RPC_TIMEOUT,
        )
        assert (await at_limit).count == MAX_STREAM_NAMES

        over_limit = stub.GreetMany(None, metadata=AUTH, timeout=RPC_TIMEOUT)
        for _ in range(MAX_STREAM_NAMES + 1):
            await over_limit.write(greeter_pb2.GreetManyRequest(name="Ada"))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await over_limit  # ended by the server at the extra name, no done_writing() needed
    assert_status(raised.value, grpc.StatusCode.RESOURCE_EXHAUSTED, OVER_NAMES)
    await assert_still_serving(strict, AUTH)


async def test_chat_over_the_name_limit_gets_resource_exhausted(strict: ServiceProcess) -> None:
    async with open_channel(strict.address) as channel:
        chat = greeter_pb2_grpc.GreeterServiceStub(channel).Chat(
            None, metadata=AUTH, timeout=RPC_TIMEOUT
        )
        for sequence in range(1, MAX_STREAM_NAMES + 1):
            await chat.write(greeter_pb2.ChatRequest(name="Ada"))
            reply = await chat.read()
            assert isinstance(reply, greeter_pb2.ChatResponse)
            assert reply.sequence == sequence
        await chat.write(greeter_pb2.ChatRequest(name="Ada"))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await chat.read()
    assert_status(raised.value, grpc.StatusCode.RESOURCE_EXHAUSTED, OVER_NAMES)
    await assert_still_serving(strict, AUTH)


# ---------------------------------------------------------------- thousands of streams

STREAMS = 2000
ROOMY_MAX_CONCURRENT_RPCS = 2500  # above STREAMS (the default, 1000, is below)
CHANNELS = 70  # connections: STREAMS / CHANNELS stays under GRPC_MAX_CONCURRENT_STREAMS (32)
OPENING = 500  # streams being opened at once
CAP = 50
CAPPED_STREAMS = 500  # against CAP: opened at once, under grpc's 1000 calls waiting for the loop
CAPPED_CHANNELS = 20  # 25 streams each, under GRPC_MAX_CONCURRENT_STREAMS
OVER_CAP = "Concurrent RPC limit exceeded!"


async def hold_chats(address: str, count: int) -> list[grpc.aio.AioRpcError | None]:
    """Open `count` Chat streams over CHANNELS connections, each sending one name and reading
    its reply; every stream that got in stays open until all have been answered or refused,
    then ends cleanly. The outcome of each: None (OK) or its error."""
    # Each channel with a connection of its own (grpc shares one between channels otherwise).
    options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(CHANNELS)]
    settled = 0
    all_settled = asyncio.Event()

    def settle() -> None:
        nonlocal settled
        settled += 1
        if settled == count:
            all_settled.set()

    # Streams open OPENING at a time (more at one instant overflow grpc core's queue of calls
    # waiting for the event loop: see test_floods.py); once answered, each stays open.
    opening = asyncio.Semaphore(OPENING)

    async def one(index: int) -> grpc.aio.AioRpcError | None:
        stub = greeter_pb2_grpc.GreeterServiceStub(channels[index % CHANNELS])
        answered = False
        try:
            async with opening:
                chat = stub.Chat(None, timeout=SLOW_TIMEOUT)
                await chat.write(greeter_pb2.ChatRequest(name=f"n{index}"))
                reply = await chat.read()
            assert isinstance(reply, greeter_pb2.ChatResponse), reply
            assert reply.message == f"Hello, n{index}!"
            answered = True
            settle()
            await all_settled.wait()  # thousands of open streams at once
            await chat.done_writing()
            assert await chat.read() is EOF
            assert await chat.code() == grpc.StatusCode.OK
            return None
        except grpc.aio.AioRpcError as error:
            return error
        finally:
            if not answered:
                settle()

    try:
        async with asyncio.timeout(SLOW_TIMEOUT + 30):
            return await asyncio.gather(*(one(index) for index in range(count)))
    finally:
        for channel in channels:
            await channel.close(None)


async def test_thousands_of_concurrent_streams_are_all_served(roomy: ServiceProcess) -> None:
    outcomes = await hold_chats(roomy.address, STREAMS)
    failures = [(e.code().name, e.details()) for e in outcomes if e is not None]
    assert failures == []
    await assert_still_serving(roomy)


async def test_streams_over_the_concurrency_cap_get_resource_exhausted(
    services: ServiceFactory,
) -> None:
    """500 Chat streams over 20 connections against GRPC_MAX_CONCURRENT_RPCS=50: the first
    50 hold their slots, the other 450 are refused with RESOURCE_EXHAUSTED. Nothing is written
    until the refusals are in: grpcio's asyncio client reports a write that races a refusal
    as INTERNAL "Internal error from Core", hiding the server's status."""
    greeter = services.start_greeter({"GRPC_MAX_CONCURRENT_RPCS": str(CAP)})
    options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]  # own connections
    channels = [grpc.aio.insecure_channel(greeter.address, options) for _ in range(CAPPED_CHANNELS)]
    try:
        chats = [
            greeter_pb2_grpc.GreeterServiceStub(channels[index % CAPPED_CHANNELS]).Chat(
                None, timeout=SLOW_TIMEOUT
            )
            for index in range(CAPPED_STREAMS)
        ]
        refused = 0
        all_refused = asyncio.Event()

        async def settle(chat: Chat) -> grpc.StatusCode:
            nonlocal refused
            code = await chat.code()  # only refused streams end by themselves
            refused += 1
            if refused >= CAPPED_STREAMS - CAP:
                all_refused.set()
            return code

        waiting = [asyncio.ensure_future(settle(chat)) for chat in chats]
        async with asyncio.timeout(SLOW_TIMEOUT):
            await all_refused.wait()
            open_chats = [chat for chat in chats if not chat.done()]
            assert len(open_chats) == CAP
            for index, chat in enumerate(open_chats):
                await chat.write(greeter_pb2.ChatRequest(name=f"n{index}"))
                reply = await chat.read()
                assert isinstance(reply, greeter_pb2.ChatResponse)
                assert reply.message == f"Hello, n{index}!"
            for chat in open_chats:
                await chat.done_writing()
                assert await chat.read() is EOF
            codes = await asyncio.gather(*waiting)
        assert codes.count(grpc.StatusCode.OK) == CAP
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == CAPPED_STREAMS - CAP
        for chat in chats:
            if await chat.code() != grpc.StatusCode.OK:
                assert await chat.details() == OVER_CAP
    finally:
        for channel in channels:
            await channel.close(None)
    await assert_still_serving(greeter)


# ---------------------------------------------------------------- clients that vanish


def _metric(text: str, name: str, method: str, code: str | None = None) -> float:
    """One series of the greeter's /metrics (0 when absent)."""
    for line in text.splitlines():
        if (
            line.startswith(name + "{")
            and f'grpc_method="{method}"' in line
            and (code is None or f'grpc_code="{code}"' in line)
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def scrape(port: int) -> str:
    def fetch() -> str:
        url = f"http://{HOST}:{port}/metrics"
        with urllib.request.urlopen(url, timeout=RPC_TIMEOUT) as response:
            return str(response.read().decode())

    return await asyncio.to_thread(fetch)


async def wait_in_flight(port: int, method: str, expected: float, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while (value := _metric(await scrape(port), "grpc_server_in_flight", method)) != expected:
        if time.monotonic() >= deadline:
            pytest.fail(f"grpc_server_in_flight of {method} is {value}, not {expected}")
        await asyncio.sleep(0.05)


async def open_and_abandon(server: ServiceProcess, metrics_port: int, method: str, how: str) -> str:
    """Start a call of method that stays open and wait until the server is handling it, then
    make its client go away: `close` the channel in this process, or SIGKILL a client
    `process` (the kernel closes its socket). Returns the call's request id."""
    request_id = f"hostile-{uuid.uuid4().hex}"
    rpc_method = "GreetMany" if method == "GreetMany" else "Chat"
    if how == "process":
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.abandoned_call",
            server.address,
            method,
            request_id,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert client.stdout is not None
            line = await asyncio.wait_for(client.stdout.readline(), 30)
            assert line == b"ready\n"
            await wait_in_flight(metrics_port, rpc_method, 1.0)
        finally:
            client.send_signal(signal.SIGKILL)
            await client.wait()
        return request_id
    channel = open_channel(server.address)
    try:
        await open_call(channel, method, request_id)
        await wait_in_flight(metrics_port, rpc_method, 1.0)
    finally:
        await channel.close(None)
    return request_id


@pytest.mark.parametrize("how", ["close", "process"], ids=["channel-closed", "client-killed"])
@pytest.mark.parametrize(
    "method",
    ["Chat", "GreetMany", "UnreadChat"],
    ids=["mid-chat", "mid-greet-many", "never-read-chat"],
)
async def test_clients_vanishing_mid_stream_are_contained(
    servers: Servers, method: str, how: str
) -> None:
    roomy, port = servers.roomy, servers.roomy_metrics_port
    request_id = await open_and_abandon(roomy, port, method, how)

    # The server notices, ends its handler and forgets the call: nothing stays in flight.
    rpc_method = "GreetMany" if method == "GreetMany" else "Chat"
    record = await roomy.wait_for_record(20.0, request_id=request_id, message="rpc")
    assert record["method"] == f"{SERVICE}/{rpc_method}"
    # A vanished client ends the request stream the way a half-close does: when the handler
    # finishes before grpc delivers the cancellation, the access log says OK (see the report).
    assert record["code"] in {"CANCELLED", "OK"}
    await wait_in_flight(port, rpc_method, 0.0)
    await assert_still_serving(roomy)


# ---------------------------------------------------------------- raw TCP garbage


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x00\xff" * 512, id="binary-garbage"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: greeter\r\n\r\n", id="http1-request"),
        pytest.param(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, id="tls-hello"
        ),
        pytest.param(H2_PREFACE[:10], id="half-preface"),
        pytest.param(H2_PREFACE + b"\xff" * 64, id="preface-then-garbage"),
        pytest.param(
            H2_PREFACE + _h2_frame(0x0, 0x1, 0, b"data on stream zero"),
            id="preface-then-illegal-frame",
        ),
        pytest.param(
            H2_PREFACE + struct.pack(">I", 0x00FFFFFF)[1:] + b"\x04\x00" + b"\x00" * 4,
            id="preface-then-16MB-settings-header",
        ),
        pytest.param(b"", id="silent-connection"),
    ],
)
async def test_raw_tcp_garbage_leaves_the_server_unaffected(
    strict: ServiceProcess, payload: bytes
) -> None:
    host, port = strict.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(payload)
        await writer.drain()
        # With the bad connection still open, other clients are served.
        await assert_still_serving(strict, AUTH)
        if payload and payload != H2_PREFACE[:10]:
            # The server gives up on a connection that does not speak HTTP/2 (it may say
            # GOAWAY first).
            async with asyncio.timeout(RPC_TIMEOUT * 2):
                while await reader.read(65536):
                    pass
    except ConnectionResetError:
        pass  # closed by the server: as good as EOF
    finally:
        writer.close()
    await assert_still_serving(strict, AUTH)


async def test_the_strict_server_logged_every_refusal_as_a_readable_record(
    strict: ServiceProcess,
) -> None:
    """Runs after the cases above: every access-log line names its code, none is INTERNAL,
    nothing is logged as an error, and grpcio's own complaint about the invalid UTF-8 token is
    one INFO line that does not repeat the client's bytes."""
    records = strict.log_records()
    codes = {record["code"] for record in records if record.get("message") == "rpc"}
    assert "INTERNAL" not in codes
    assert {"OK", "INVALID_ARGUMENT", "UNAUTHENTICATED", "RESOURCE_EXHAUSTED"} <= codes
    errors = [r for r in records if r.get("level") in {"ERROR", "CRITICAL"}]
    assert errors == []
    grpc_lines = [r for r in records if r.get("logger") == "grpc._cython.cygrpc"]
    assert grpc_lines, "grpcio logged nothing about the invalid UTF-8 token"
    assert {(r["level"], r["message"]) for r in grpc_lines} == {
        ("INFO", "a client sent a metadata value that is not UTF-8")
    }
    assert "Traceback" not in strict.log_text()
    assert "\\xff" not in strict.log_text()
