"""A Greeter call left open, for the tests of clients that vanish mid-stream: opened on a
channel in the test's own process, or in a client process the test then SIGKILLs:

    python -m tests.integration.abandoned_call ADDRESS METHOD REQUEST_ID

(prints `ready` once the call is open, then waits to be killed)."""

from __future__ import annotations

import asyncio
import sys

import grpc

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc

UNREAD_NAMES = 5000  # Chat names sent without reading a reply: about 0.5 MB of replies
WRITE_TIMEOUT = 5.0  # seconds a write may wait for flow control before the client stops
CALL_TIMEOUT = 120.0  # the abandoned call's deadline: far beyond the test


async def open_call(channel: grpc.aio.Channel, method: str, request_id: str) -> None:
    """Open method ("Chat", "GreetMany", or "UnreadChat": a Chat whose replies are never
    read) with this x-request-id and leave it open."""
    stub: greeter_pb2_grpc.GreeterServiceAsyncStub = greeter_pb2_grpc.GreeterServiceStub(channel)
    metadata = (("x-request-id", request_id),)
    if method == "Chat":
        chat = stub.Chat(None, metadata=metadata, timeout=CALL_TIMEOUT)
        await chat.write(greeter_pb2.ChatRequest(name="Ada"))
        reply = await chat.read()
        assert isinstance(reply, greeter_pb2.ChatResponse), reply
    elif method == "GreetMany":
        upload = stub.GreetMany(None, metadata=metadata, timeout=CALL_TIMEOUT)
        for _ in range(3):
            await upload.write(greeter_pb2.GreetManyRequest(name="Ada"))
    else:
        unread = stub.Chat(None, metadata=metadata, timeout=CALL_TIMEOUT)
        for _ in range(UNREAD_NAMES):
            try:
                await asyncio.wait_for(
                    unread.write(greeter_pb2.ChatRequest(name="x" * 100)), WRITE_TIMEOUT
                )
            except TimeoutError:
                break  # flow control: the server is blocked writing replies nobody reads


async def _client_process(address: str, method: str, request_id: str) -> None:
    channel = grpc.aio.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)])
    await open_call(channel, method, request_id)
    print("ready", flush=True)
    await asyncio.sleep(CALL_TIMEOUT)


if __name__ == "__main__":
    asyncio.run(_client_process(*sys.argv[1:4]))
