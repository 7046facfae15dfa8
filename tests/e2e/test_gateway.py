"""The HTTP gateway of the compose stack, called from the host through its published port:
the page and its bundle, Caller.Introduce as JSON (as curl sends it), a validation error, and
a gRPC-Web server stream answered by the greeter replicas behind it."""

from __future__ import annotations

import http.client
import json
import struct

import pytest

from acme.greeter.v1 import greeter_pb2

from .conftest import Container, Stack

pytestmark = pytest.mark.e2e

TIMEOUT = 10.0


def request(
    stack: Stack, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = stack.gateway_address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        answer = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, answer
    finally:
        connection.close()


def test_the_page_and_its_bundle_are_served(stack: Stack) -> None:
    status, headers, page = request(stack, "GET", "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b'<script type="module" src="app.js">' in page
    status, headers, bundle = request(stack, "GET", "/app.js")
    assert status == 200
    assert len(bundle) > 10_000


def test_introduce_as_json(stack: Stack, greeters: list[Container]) -> None:
    status, _, body = request(
        stack,
        "POST",
        "/acme.caller.v1.CallerService/Introduce",
        b'{"name": "Ada"}',
        {"content-type": "application/json"},
    )
    assert status == 200, body
    reply = json.loads(body)
    assert reply["message"] == "Hello, Ada!"
    assert reply["greeterInstance"] in {greeter.hostname for greeter in greeters}


def test_empty_name_is_invalid_argument(stack: Stack) -> None:
    status, _, body = request(
        stack,
        "POST",
        "/acme.caller.v1.CallerService/Introduce",
        b'{"name": ""}',
        {"content-type": "application/json"},
    )
    assert status == 400
    error = json.loads(body)
    assert error["code"] == "invalid_argument"
    assert [detail["type"] for detail in error["details"]] == ["google.rpc.BadRequest"]


def test_grpc_web_server_stream(stack: Stack) -> None:
    message = greeter_pb2.SayHelloLanguagesRequest(name="Ada", languages=["fr", "de"])
    payload = message.SerializeToString()
    status, _, body = request(
        stack,
        "POST",
        "/acme.greeter.v1.GreeterService/SayHelloLanguages",
        struct.pack(">BI", 0, len(payload)) + payload,
        {"content-type": "application/grpc-web+proto"},
    )
    assert status == 200
    replies, trailers, offset = [], b"", 0
    while offset < len(body):
        flags, length = struct.unpack(">BI", body[offset : offset + 5])
        chunk = body[offset + 5 : offset + 5 + length]
        if flags & 0x80:
            trailers = chunk
        else:
            replies.append(greeter_pb2.SayHelloLanguagesResponse.FromString(chunk).message)
        offset += 5 + length
    assert replies == ["Bonjour, Ada !", "Hallo, Ada!"]
    assert b"grpc-status: 0" in trailers


def test_gateway_is_healthy(stack: Stack) -> None:
    [gateway] = stack.running("gateway")
    gateway.wait_healthy()
    status, _, body = request(stack, "GET", "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "SERVING"})
