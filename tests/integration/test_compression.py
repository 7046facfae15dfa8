"""Message compression on the wire: GRPC_COMPRESSION compresses a server's replies for
clients that accept it, a channel's `compression` its requests; clients that accept no
compression, or send an encoding the server lacks, get a clear answer; a compressed message
that inflates past GRPC_MAX_MESSAGE_BYTES is RESOURCE_EXHAUSTED and the server serves on."""

from __future__ import annotations

import gzip
import zlib

import grpc
import pytest
from hyperframe.frame import DataFrame, Frame

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import ClientSettings, create_channel
from acme_devkit.http2_tap import TO_SERVER, http2_tap
from acme_devkit.raw_http2 import raw_unary_call
from tests.processes import GREETER_SERVICE, RPC_TIMEOUT, ServiceFactory

pytestmark = pytest.mark.integration

SAY_HELLO = f"/{GREETER_SERVICE}/SayHello"
ADA = greeter_pb2.SayHelloRequest(name="Ada").SerializeToString()
# grpc core sends a message uncompressed (flag 0) when compressing would not make it smaller:
# a reply long enough to shrink.
LONG_NAME = "a" * 100
LONG = greeter_pb2.SayHelloRequest(name=LONG_NAME).SerializeToString()
OK, RESOURCE_EXHAUSTED, INTERNAL = 0, 8, 13  # grpc-status values


@pytest.mark.parametrize(
    ("setting", "accepted", "encoding"),
    [
        ("gzip", "identity,deflate,gzip", "gzip"),
        ("deflate", "identity,deflate,gzip", "deflate"),
        ("gzip", "identity,deflate", "deflate"),  # what the client accepts, not gzip
        ("gzip", "identity", None),  # the client accepts no compression: none is used
        ("none", "identity,deflate,gzip", None),
    ],
    ids=["gzip", "deflate", "client-accepts-deflate-only", "client-accepts-identity-only", "off"],
)
async def test_replies_are_compressed_as_configured_and_accepted(
    services: ServiceFactory, setting: str, accepted: str, encoding: str | None
) -> None:
    greeter = services.start_greeter({"GRPC_COMPRESSION": setting})
    reply = await raw_unary_call(
        greeter.address, SAY_HELLO, LONG, (("grpc-accept-encoding", accepted),)
    )
    assert reply.status == OK, reply
    assert reply.headers.get("grpc-encoding") == encoding
    flag, body = reply.data[0], reply.data[5:]
    assert flag == (1 if encoding else 0)
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    assert greeter_pb2.SayHelloResponse.FromString(body).message == f"Hello, {LONG_NAME}!"


async def test_a_channel_compresses_its_requests(services: ServiceFactory) -> None:
    greeter = services.start_greeter()
    flags: list[int] = []

    def record(direction: str, frame: Frame) -> bool:
        if direction == TO_SERVER and isinstance(frame, DataFrame) and frame.data:
            flags.append(frame.data[0])
        return False  # nothing dropped

    async with http2_tap(greeter.address, drop=record) as (address, _):
        settings = ClientSettings(target=address, compression="gzip")
        async with create_channel(settings, retry_services=[GREETER_SERVICE]) as channel:
            reply = await greeter_pb2_grpc.GreeterServiceStub(channel).SayHello(
                greeter_pb2.SayHelloRequest(name=LONG_NAME), timeout=RPC_TIMEOUT
            )
    assert reply.message == f"Hello, {LONG_NAME}!"
    assert 1 in flags, f"no compressed request message: flags {flags}"


async def test_an_encoding_the_server_lacks_is_refused_by_grpc_core(
    services: ServiceFactory,
) -> None:
    # The gRPC spec prescribes UNIMPLEMENTED; grpc core (1.85) answers INTERNAL before any
    # code of ours runs (docs/operating.md). The server serves on.
    greeter = services.start_greeter()
    reply = await raw_unary_call(
        greeter.address, SAY_HELLO, b"not snappy", (("grpc-encoding", "snappy"),), compressed=True
    )
    assert (reply.status, reply.message) == (INTERNAL, "Error parsing 'grpc-encoding' metadata")
    again = await raw_unary_call(greeter.address, SAY_HELLO, ADA)
    assert again.status == OK


async def test_a_message_that_inflates_past_the_limit_is_resource_exhausted(
    services: ServiceFactory,
) -> None:
    greeter = services.start_greeter()
    # 10 MB of one repeated byte, as a valid SayHelloRequest name: about 10 KB gzipped.
    name = b"a" * 10_000_000
    message = b"\n" + _varint(len(name)) + name
    bomb = gzip.compress(message)
    assert len(bomb) < 64_000
    reply = await raw_unary_call(
        greeter.address, SAY_HELLO, bomb, (("grpc-encoding", "gzip"),), compressed=True
    )
    assert reply.status == RESOURCE_EXHAUSTED, reply
    assert greeter.returncode is None
    async with grpc.aio.insecure_channel(greeter.address) as channel:
        ok = await greeter_pb2_grpc.GreeterServiceStub(channel).SayHello(
            greeter_pb2.SayHelloRequest(name="Ada"), timeout=RPC_TIMEOUT
        )
    assert ok.message == "Hello, Ada!"


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
