"""create_channel's outgoing calls against a real ServiceHost on loopback: token and request
id on every call, message limits, and a status for every call, even one grpc cannot start."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from acme_common._call.request_ids import current_request_id
from acme_common._channels import MAX_MESSAGE_BYTES, create_channel
from acme_common._server import Service, ServiceHost
from acme_common._settings import ClientSettings, ServerSettings

SERVICE = "test.v1.MirrorService"
TOKEN = "test-token"  # noqa: S105 - a test value


async def mirror(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    """Replies with the metadata it received (`key=value` lines), or N bytes for `bytes:N`."""
    if request.startswith(b"bytes:"):
        return b"x" * int(request.removeprefix(b"bytes:"))
    if request == b"sleep":
        await asyncio.sleep(30)
    pairs = context.invocation_metadata() or ()
    return "\n".join(f"{key}={value!s}" for key, value in pairs if isinstance(value, str)).encode()


def metadata_lines(context: grpc.aio.ServicerContext[bytes, bytes]) -> list[str]:
    pairs = context.invocation_metadata() or ()
    return [f"{key}={value!s}" for key, value in pairs if isinstance(value, str)]


async def mirror_server_stream(
    _request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
) -> AsyncIterator[bytes]:
    yield "\n".join(metadata_lines(context)).encode()


async def mirror_client_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
) -> bytes:
    async for _ in requests:
        pass
    return "\n".join(metadata_lines(context)).encode()


async def mirror_bidi(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
) -> AsyncIterator[bytes]:
    async for _ in requests:
        yield "\n".join(metadata_lines(context)).encode()


def add_mirror(server: grpc.aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Mirror": grpc.unary_unary_rpc_method_handler(mirror),
            "MirrorServerStream": grpc.unary_stream_rpc_method_handler(mirror_server_stream),
            "MirrorClientStream": grpc.stream_unary_rpc_method_handler(mirror_client_stream),
            "MirrorBidi": grpc.stream_stream_rpc_method_handler(mirror_bidi),
        },
    )
    server.add_generic_rpc_handlers((handler,))


@pytest.fixture
async def address() -> AsyncIterator[str]:
    settings = ServerSettings(
        grpc_host="127.0.0.1",
        grpc_port=0,
        grpc_grace_period=1,
        grpc_max_message_bytes=2 * MAX_MESSAGE_BYTES,
    )
    host = ServiceHost(settings, [Service(SERVICE, add_mirror)])
    await host.start()
    yield f"127.0.0.1:{host.port}"
    await host.stop()


async def call(
    channel: grpc.aio.Channel,
    payload: bytes = b"",
    metadata: tuple[tuple[str, str], ...] = (),
) -> bytes:
    method = channel.unary_unary(f"/{SERVICE}/Mirror", None, None)
    reply: bytes = await method(payload, timeout=5, metadata=metadata)
    return reply


async def one_request() -> AsyncIterator[bytes]:
    yield b""


async def seen_by_each_kind(channel: grpc.aio.Channel) -> dict[str, list[str]]:
    """The metadata lines the mirror saw, per kind of call."""
    server_stream = channel.unary_stream(f"/{SERVICE}/MirrorServerStream", None, None)
    client_stream = channel.stream_unary(f"/{SERVICE}/MirrorClientStream", None, None)
    bidi = channel.stream_stream(f"/{SERVICE}/MirrorBidi", None, None)
    replies = {
        "unary": await call(channel),
        "server_stream": b"".join([reply async for reply in server_stream(b"", timeout=5)]),
        "client_stream": await client_stream(one_request(), timeout=5),
        "bidi": b"".join([reply async for reply in bidi(one_request(), timeout=5)]),
    }
    return {kind: bytes(reply).decode().splitlines() for kind, reply in replies.items()}


async def test_token_and_request_id_travel_with_every_kind_of_call(address: str) -> None:
    settings = ClientSettings(target=address, auth_token=SecretStr(TOKEN))
    async with create_channel(settings, retry_services=[SERVICE]) as channel:
        token = current_request_id.set("req-43")
        try:
            seen = await seen_by_each_kind(channel)
        finally:
            current_request_id.reset(token)
    for kind, lines in seen.items():
        assert f"authorization=Bearer {TOKEN}" in lines, kind
        assert "x-request-id=req-43" in lines, kind


async def test_replies_over_the_message_limit_are_resource_exhausted(address: str) -> None:
    async with create_channel(ClientSettings(target=address), retry_services=[]) as channel:
        assert len(await call(channel, f"bytes:{MAX_MESSAGE_BYTES - 64}".encode())) > 0
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(channel, f"bytes:{MAX_MESSAGE_BYTES + 1}".encode())
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param((("x-request-id", "café"),), id="non-ascii-value"),
        pytest.param((("x-note", "a\nb"),), id="control-character"),
        pytest.param((("Bad-Key", "v"),), id="upper-case-key"),
    ],
)
async def test_a_call_grpc_cannot_start_ends_at_once_with_internal(
    address: str, metadata: tuple[tuple[str, str], ...]
) -> None:
    # grpc refuses to send such metadata; the call then never gets a status from grpc and
    # its deadline never runs: without a status of its own, whoever awaits it waits forever.
    async with create_channel(ClientSettings(target=address), retry_services=[]) as channel:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(channel, metadata=metadata)
        assert time.monotonic() - started < 1.0
        assert raised.value.code() == grpc.StatusCode.INTERNAL
        assert "could not be started" in (raised.value.details() or "")
        assert await call(channel) is not None  # the channel still works


async def test_a_call_whose_caller_gives_up_is_cancelled_and_counted(address: str) -> None:
    # The task awaiting the call is cancelled (its own client went away): the call is cancelled
    # downstream too, and counted as CANCELLED in grpc_client_handled_total.
    labels = {
        "grpc_type": "unary",
        "grpc_service": SERVICE,
        "grpc_method": "Mirror",
        "grpc_code": "CANCELLED",
    }
    before = REGISTRY.get_sample_value("grpc_client_handled_total", labels) or 0.0
    async with create_channel(ClientSettings(target=address), retry_services=[]) as channel:
        waiting = asyncio.ensure_future(call(channel, b"sleep"))
        await asyncio.sleep(0.3)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert REGISTRY.get_sample_value("grpc_client_handled_total", labels) == before + 1
