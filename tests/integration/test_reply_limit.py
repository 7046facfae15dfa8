"""A reply larger than GRPC_MAX_MESSAGE_BYTES, over a real socket: the client gets
RESOURCE_EXHAUSTED, and the server's access log and grpc_server_handled_total say the same
(they used to say OK: grpc core refused the reply only after the handler had returned)."""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2

from tests.processes import (
    HOST,
    RPC_TIMEOUT,
    ServiceFactory,
    ServiceProcess,
    free_port,
    open_channel,
)

pytestmark = pytest.mark.integration

SERVICE = "test.replies.v1.BigReplies"  # tests/integration/big_replies.py
LIMIT = 1024  # GRPC_MAX_MESSAGE_BYTES of the server (the smallest the setting allows)
TOKEN = "reply-limit-token"  # noqa: S105 - a test secret
Size = wrappers_pb2.Int32Value
Text = wrappers_pb2.StringValue
TOO_LARGE = re.compile(rf"reply of \d+ bytes is over the server's limit of {LIMIT} bytes")


@dataclass(frozen=True)
class Server:
    process: ServiceProcess
    metrics_port: int


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    factory = ServiceFactory(tmp_path_factory.mktemp("reply-limit"))
    metrics_port = free_port()
    try:
        process = factory.start(
            "tests.integration.big_replies",
            {
                "INSTANCE_NAME": "big-replies",
                "AUTH_TOKENS": TOKEN,
                "GRPC_MAX_MESSAGE_BYTES": str(LIMIT),
                "METRICS_PORT": str(metrics_port),
                "ACCESS_LOG": "all",
            },
        )
        yield Server(process, metrics_port)
    finally:
        factory.stop_all()


def handled(metrics_port: int, method: str, code: str) -> float:
    """grpc_server_handled_total of method with code, from the server's /metrics."""
    url = f"http://{HOST}:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=RPC_TIMEOUT) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if (
            line.startswith("grpc_server_handled_total{")
            and f'grpc_method="{method}"' in line
            and f'grpc_code="{code}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def call(channel: grpc.aio.Channel, method: str, size: int, request_id: str) -> list[Any]:
    """The replies of one call of method asking for a reply of size characters."""
    metadata = (("authorization", f"Bearer {TOKEN}"), ("x-request-id", request_id))
    path = f"/{SERVICE}/{method}"
    if method == "Unary":
        unary = channel.unary_unary(path, Size.SerializeToString, Text.FromString)
        return [await unary(Size(value=size), metadata=metadata, timeout=RPC_TIMEOUT)]
    stream = channel.unary_stream(path, Size.SerializeToString, Text.FromString)
    return [reply async for reply in stream(Size(value=size), metadata=metadata)]


@pytest.mark.parametrize("method", ["Unary", "ServerStream", "WrittenStream"])
async def test_a_reply_over_the_limit_is_resource_exhausted_everywhere(
    server: Server, method: str
) -> None:
    before = {
        code: await asyncio.to_thread(handled, server.metrics_port, method, code)
        for code in ("OK", "RESOURCE_EXHAUSTED")
    }
    request_id = f"too-large-{uuid.uuid4().hex}"
    async with open_channel(server.process.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(channel, method, 2 * LIMIT, request_id)
    error = raised.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    assert TOO_LARGE.fullmatch(error.details() or ""), error.details()
    line = await server.process.wait_for_record(message="rpc", request_id=request_id)
    assert (line["method"], line["code"]) == (f"/{SERVICE}/{method}", "RESOURCE_EXHAUSTED")
    after = {
        code: await asyncio.to_thread(handled, server.metrics_port, method, code)
        for code in ("OK", "RESOURCE_EXHAUSTED")
    }
    assert after == {"OK": before["OK"], "RESOURCE_EXHAUSTED": before["RESOURCE_EXHAUSTED"] + 1}


@pytest.mark.parametrize("method", ["Unary", "ServerStream", "WrittenStream"])
async def test_a_reply_within_the_limit_is_served(server: Server, method: str) -> None:
    request_id = f"fits-{uuid.uuid4().hex}"
    async with open_channel(server.process.address) as channel:
        replies = await call(channel, method, LIMIT - 16, request_id)
    assert replies[-1].value == "x" * (LIMIT - 16)
    line = await server.process.wait_for_record(message="rpc", request_id=request_id)
    assert line["code"] == "OK"
