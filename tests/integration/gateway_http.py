"""Plain HTTP/1.1 clients of the gateway for the tests, with the framing written out here
(not connectrpc's), so the tests check the wire formats themselves: Connect unary (a bare
body), Connect and gRPC-Web streams (5-byte envelopes: flags, big-endian length), gRPC-Web's
trailers frame (flag 0x80, `name: value` lines) and grpc-status-details-bin."""

from __future__ import annotations

import base64
import http.client
import json
import struct
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

TIMEOUT = 10.0  # seconds a request may take
END_STREAM = 0x02  # Connect: the end-of-stream envelope (a JSON object)
TRAILERS = 0x80  # gRPC-Web: the trailers frame


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def post(
    address: str, path: str, body: bytes, headers: dict[str, str], method: str = "POST"
) -> Response:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Response(
            response.status,
            {key.lower(): value for key, value in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


def envelope(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def envelopes(body: bytes) -> list[tuple[int, bytes]]:
    """The (flags, payload) envelopes of a stream's body; AssertionError when truncated."""
    found: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(body):
        assert len(body) - offset >= 5, f"truncated envelope header in {body!r}"
        flags, length = struct.unpack(">BI", body[offset : offset + 5])
        payload = body[offset + 5 : offset + 5 + length]
        assert len(payload) == length, f"truncated envelope in {body!r}"
        found.append((flags, payload))
        offset += 5 + length
    return found


def grpc_web_trailers(payload: bytes) -> dict[str, str]:
    """The `name: value` lines of a gRPC-Web trailers frame."""
    lines = payload.decode("ascii").split("\r\n")
    pairs = (line.split(":", 1) for line in lines if line)
    return {name.strip().lower(): value.strip() for name, value in pairs}


def unbase64(text: str) -> bytes:
    """Base64 with or without padding (Connect sends it unpadded)."""
    return base64.b64decode(text + "=" * (-len(text) % 4))


def violations_in_status(status: status_pb2.Status) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.extend((v.field, v.description) for v in bad_request.field_violations)
    return found


def violations_in_connect_error(error: dict[str, Any]) -> list[tuple[str, str]]:
    """The BadRequest field violations of a Connect error's JSON `details`."""
    found: list[tuple[str, str]] = []
    for detail in error.get("details", []):
        if detail["type"] == "google.rpc.BadRequest":
            bad_request = error_details_pb2.BadRequest.FromString(unbase64(detail["value"]))
            found.extend((v.field, v.description) for v in bad_request.field_violations)
    return found


def grpc_web(address: str, path: str, request: Message, **headers: str) -> Response:
    """A gRPC-Web (binary) call: one enveloped request message."""
    wire = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1", **headers}
    return post(address, path, envelope(request.SerializeToString()), wire)


def connect_stream(address: str, path: str, request: Message, **headers: str) -> Response:
    """A Connect streaming call (binary): one enveloped request message."""
    wire = {"content-type": "application/connect+proto", "connect-protocol-version": "1"}
    return post(address, path, envelope(request.SerializeToString()), {**wire, **headers})
