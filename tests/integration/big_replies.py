"""A service run by test_reply_limit.py as `python -m tests.integration.big_replies`: the
production stack (run_service, settings from the environment) around methods that reply with
as many bytes as asked, in each way a handler can send a reply: returned, yielded from an
async generator, or written with context.write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import wrappers_pb2

from acme_common import Runtime, ServerSettings, Service, run_service

SERVICE = "test.replies.v1.BigReplies"
Size = wrappers_pb2.Int32Value
Text = wrappers_pb2.StringValue
Context = grpc.aio.ServicerContext[Any, Any]


async def unary(request: Size, _context: Context) -> Text:
    return Text(value="x" * request.value)


async def server_stream(request: Size, _context: Context) -> AsyncIterator[Text]:
    yield Text(value="small")
    yield Text(value="x" * request.value)


async def written_stream(request: Size, context: Context) -> None:
    await context.write(Text(value="small"))
    await context.write(Text(value="x" * request.value))


def add(server: grpc.aio.Server) -> None:
    codec: dict[str, Any] = {
        "request_deserializer": Size.FromString,
        "response_serializer": Text.SerializeToString,
    }
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, **codec),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, **codec),
        "WrittenStream": grpc.unary_stream_rpc_method_handler(written_stream, **codec),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


def build(_settings: ServerSettings, _runtime: Runtime) -> Service:
    return Service(SERVICE, add)


def main() -> None:
    run_service("big-replies", ServerSettings, build)


if __name__ == "__main__":
    main()
