"""Odd and hostile input at the gateway, sent as raw bytes over a socket: each gets a clear
HTTP status or protocol error with a bounded message, no ERROR line is logged, and the gateway
keeps serving."""

from __future__ import annotations

import contextlib
import gzip
import socket
import struct

import pytest

from tests.processes import CALLER_SERVICE, HOST, GatewayProcess

pytestmark = pytest.mark.integration

PATH = f"/{CALLER_SERVICE}/Introduce"
JSON = (b"content-type", b"application/json")
GRPC_WEB = (b"content-type", b"application/grpc-web+proto")
ADA = b'{"name": "Ada"}'
MAX_ERROR_BODY = 1024  # bytes: no error answer repeats much of its input


def exchange(port: int, data: bytes) -> bytes:
    """Send data on a new connection, return everything answered until it closes."""
    answer = b""
    with socket.create_connection((HOST, port), timeout=10) as connection:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(data)
        with contextlib.suppress(ConnectionResetError):
            while chunk := connection.recv(65536):
                answer += chunk
    return answer


def request(
    headers: list[tuple[bytes, bytes]], body: bytes = b"", method: bytes = b"POST"
) -> bytes:
    head = b"%s %s HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Length: %d\r\n" % (
        method,
        PATH.encode(),
        len(body),
    )
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


def grpc_web_envelope(flags: int, length: int, payload: bytes) -> bytes:
    return struct.pack(">BI", flags, length) + payload


# (what, raw request, expected status line start, expected text in the answer)
CASES = [
    ("not HTTP at all", b"\x00\x01\x02garbage\r\n\r\n", b"HTTP/1.1 400", b""),
    (
        "request id not UTF-8",
        request([JSON, (b"x-request-id", b"\xff\xfe\xc3")], ADA),
        b"HTTP/1.1 200",
        b"Hello, Ada!",
    ),
    (
        "token not UTF-8",
        request([JSON, (b"authorization", b"Bearer \xff\xfe")], ADA),
        b"HTTP/1.1 200",  # no AUTH_TOKENS on this gateway: the header is not read
        b"Hello, Ada!",
    ),
    (
        "timeout not a number",
        request([JSON, (b"connect-timeout-ms", b"soon")], ADA),
        b"HTTP/1.1 400",
        b"invalid_argument",
    ),
    (
        "timeout of 14 digits",
        request([JSON, (b"connect-timeout-ms", b"99999999999999")], ADA),
        b"HTTP/1.1 400",
        b"invalid_argument",
    ),
    (
        "grpc-timeout with a bad unit",
        request([GRPC_WEB, (b"grpc-timeout", b"9z")], grpc_web_envelope(0, 2, b"\n\x00")),
        b"HTTP/1.1 200",
        b"grpc-status: 3",
    ),
    (
        "timeout of 8,000 digits",
        request([JSON, (b"connect-timeout-ms", b"9" * 8000)], ADA),
        b"HTTP/1.1 400",
        b"invalid_argument",
    ),
    (
        "grpc-timeout of 8,000 digits",
        request(
            [GRPC_WEB, (b"grpc-timeout", b"9" * 8000 + b"S")], grpc_web_envelope(0, 2, b"\n\x00")
        ),
        b"HTTP/1.1 200",
        b"grpc-status: 3",
    ),
    (
        "content encoding of 5 KB",
        request([JSON, (b"content-encoding", b"x" * 5000)], ADA),
        b"HTTP/1.1 501",
        b"unimplemented",
    ),
    (
        "JSON that is not JSON",
        request([JSON], b"\xff{{{"),
        b"HTTP/1.1 400",
        b"invalid_argument",
    ),
    (
        "JSON of the wrong shape",
        request([JSON], b'{"name": 5}'),
        b"HTTP/1.1 400",
        b"invalid_argument",
    ),
    (
        "binary that is no protobuf",
        request([(b"content-type", b"application/proto")], b"\xff\xff\xff\xff"),
        b"HTTP/1.1 400",
        b"invalid_argument",
    ),
    (
        "gRPC-Web envelope shorter than it says",
        request([GRPC_WEB], grpc_web_envelope(0, 1000, b"\n\x00")),
        b"HTTP/1.1 200",
        b"grpc-status: 3",
    ),
    (
        "gRPC-Web envelope of 4 GiB",
        request([GRPC_WEB], grpc_web_envelope(0, 0xFFFFFFFF, b"\n\x00")),
        b"HTTP/1.1 200",
        b"grpc-status: 8",  # RESOURCE_EXHAUSTED
    ),
    (
        "compressed flag without an encoding",
        request([GRPC_WEB], grpc_web_envelope(1, 2, b"\n\x00")),
        b"HTTP/1.1 200",
        b"grpc-status: 13",
    ),
    (
        "unknown content encoding",
        request([JSON, (b"content-encoding", b"snappy")], ADA),
        b"HTTP/1.1 501",
        b"unimplemented",
    ),
    (
        "10 MB gzipped into a few KB",
        request(
            [JSON, (b"content-encoding", b"gzip")],
            gzip.compress(b'{"name": "' + b"a" * 10_000_000 + b'"}'),
        ),
        b"HTTP/1.1 429",
        b"resource_exhausted",
    ),
    (
        "unsupported content type",
        request([(b"content-type", b"text/plain")], ADA),
        b"HTTP/1.1 415",
        b"",
    ),
    ("GET of an RPC", request([], b"", b"GET"), b"HTTP/1.1 405", b""),
]


@pytest.mark.parametrize(("what", "data", "status", "said"), CASES, ids=[c[0] for c in CASES])
def test_odd_input_gets_a_clear_answer(
    gateway: GatewayProcess, what: str, data: bytes, status: bytes, said: bytes
) -> None:
    answer = exchange(gateway.port, data)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(status), f"{what}: {answer[:300]!r}"
    assert said in answer, f"{what}: {answer[:300]!r}"
    assert len(body) < MAX_ERROR_BODY or status == b"HTTP/1.1 200", f"{what}: {len(body)} bytes"
    # gRPC-Web puts its status in headers or a trailers frame: the whole answer is bounded.
    assert len(answer) < 2 * MAX_ERROR_BODY, f"{what}: {len(answer)} bytes"


def test_gateway_serves_on_without_error_lines(gateway: GatewayProcess) -> None:
    """After every case above (same session gateway): a normal call, and no ERROR logged."""
    for _, data, _, _ in CASES:
        exchange(gateway.port, data)
    answer = exchange(gateway.port, request([JSON], ADA))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    errors = [r for r in gateway.log_records() if r.get("level") == "ERROR"]
    assert errors == []
