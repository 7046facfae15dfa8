"""Which headers cross the gateway, over real sockets (gateway/metadata.py has the rule; the
Connect conformance suite, tests/conformance, checks that custom ones do in every protocol):
what must not reach the service does not, what must not reach the client does not, a request
with more metadata than the gateway passes on gets a clear, bounded answer before any call
starts, and the gateway keeps serving."""

from __future__ import annotations

import asyncio
import base64
import http.client
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from tests.processes import (
    CALLER_SERVICE,
    GatewayProcess,
    ServiceFactory,
    open_channel,
    stand_in_server,
)

from .gateway_http import TIMEOUT, envelopes, grpc_web_trailers

pytestmark = pytest.mark.integration

INTRODUCE = f"/{CALLER_SERVICE}/Introduce"
ADA = b'{"name": "Ada"}'
BLOB = b"\x00\xffblob"
SERVICE_HEADERS = (
    ("x-service-header", "h1"),
    ("x-service-header", "h2"),
    ("x-blob-bin", BLOB),
    ("set-cookie", "session=from-the-service"),
    ("access-control-allow-origin", "*"),
    ("x-request-id", "the-service-own"),
)
SERVICE_TRAILERS = (("x-service-trailer", "t1"), ("set-cookie", "late=1"))


@asynccontextmanager
async def talking_caller(
    fail: bool = False,
) -> AsyncIterator[tuple[str, list[list[tuple[str, str | bytes]]]]]:
    """A stand-in for Caller's Introduce that records every metadata pair it gets and answers
    with SERVICE_HEADERS and SERVICE_TRAILERS (fail: INTERNAL with its own message)."""
    seen: list[list[tuple[str, str | bytes]]] = []

    async def introduce(
        request: caller_pb2.IntroduceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> caller_pb2.IntroduceResponse:
        seen.append(list(context.invocation_metadata() or ()))
        await context.send_initial_metadata(SERVICE_HEADERS)
        if fail:
            await context.abort(
                grpc.StatusCode.INTERNAL, "the stand-in's own failure", SERVICE_TRAILERS
            )
        context.set_trailing_metadata(SERVICE_TRAILERS)
        return caller_pb2.IntroduceResponse(message=f"Hi {request.name}", greeter_instance="t")

    async with stand_in_server(
        CALLER_SERVICE,
        "Introduce",
        introduce,
        caller_pb2.IntroduceRequest,
        caller_pb2.IntroduceResponse,
    ) as address:
        yield address, seen


def raw_post(
    gateway: GatewayProcess,
    headers: list[tuple[str, str]],
    body: bytes = ADA,
    content_type: str = "application/json",
) -> tuple[int, list[tuple[str, str]], bytes]:
    """A POST of Introduce with these headers, repeated names and all (http.client's
    putheader; values go out as ISO-8859-1); status, headers (lower-case names), body."""
    host, port = gateway.address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        connection.putrequest("POST", INTRODUCE)
        connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(len(body)))
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        fields = [(name.lower(), value) for name, value in response.getheaders()]
        return response.status, fields, response.read()
    finally:
        connection.close()


async def post_from_thread(
    gateway: GatewayProcess, headers: list[tuple[str, str]], **kwargs: Any
) -> tuple[int, list[tuple[str, str]], bytes]:
    """raw_post from a worker thread, so the stand-in server in this loop can answer."""
    return await asyncio.to_thread(raw_post, gateway, headers, **kwargs)


def values(fields: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in fields if key == name]


def error_lines(gateway: GatewayProcess) -> list[str]:
    return [str(r) for r in gateway.log_records() if r.get("level") in ("ERROR", "CRITICAL")]


async def test_client_headers_reach_the_service_by_the_rule(services: ServiceFactory) -> None:
    passed = [
        ("X-Custom", "one"),
        ("X-Custom", "two"),
        ("Accept-Language", "fr"),
        ("X-Data-Bin", base64.b64encode(BLOB).decode().rstrip("=")),
    ]
    excluded = [
        ("Connection", "keep-alive, X-Hop"),
        ("X-Hop", "named by Connection"),
        ("Keep-Alive", "timeout=5"),
        ("Cookie", "session=secret"),
        ("Proxy-Authorization", "Basic c2VjcmV0"),
        ("Authorization", "Bearer client-token"),  # GATEWAY_PASS_AUTHORIZATION is off
        ("X-Forwarded-For", "10.9.8.7"),
        ("Forwarded", "for=10.9.8.7"),
        ("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("Connect-Protocol-Version", "1"),
        ("X-Accent", "caf\u00e9"),  # not printable ASCII: gRPC cannot carry it
        ("X-Broken-Bin", "not base64!"),
    ]
    async with talking_caller() as (address, seen):
        gateway = services.start_gateway({"CALLER_TARGET": address})
        status, _fields, _body = await post_from_thread(
            gateway, [*passed, *excluded, ("X-Request-Id", "client-42"), ("User-Agent", "agent/1")]
        )
    assert status == 200
    [metadata] = seen
    names = {name for name, _ in metadata}
    assert [v for k, v in metadata if k == "x-custom"] == ["one", "two"]
    assert ("accept-language", "fr") in metadata
    assert ("x-data-bin", BLOB) in metadata
    for name, _ in excluded:
        assert name.lower() not in names, metadata
    assert "x-broken-bin" not in names
    # The gateway's own request id (the client's, once: it is sane), grpc's own user agent.
    assert [v for k, v in metadata if k == "x-request-id"] == ["client-42"]
    [agent] = [str(v) for k, v in metadata if k == "user-agent"]
    assert agent.startswith("grpc-python"), agent


async def test_service_headers_and_trailers_reach_the_client(services: ServiceFactory) -> None:
    async with talking_caller() as (address, _seen):
        gateway = services.start_gateway({"CALLER_TARGET": address})
        status, fields, _body = await post_from_thread(gateway, [("X-Request-Id", "client-7")])
        web_status, web_fields, web_body = await post_from_thread(
            gateway,
            [("X-Grpc-Web", "1")],
            body=b"\x00\x00\x00\x00\x05\n\x03Ada",
            content_type="application/grpc-web+proto",
        )
        async with open_channel(gateway.address) as channel:  # gRPC over h2c
            stub = caller_pb2_grpc.CallerServiceStub(channel)
            call = stub.Introduce(caller_pb2.IntroduceRequest(name="Ada"), timeout=TIMEOUT)
            await call
            initial = list(await call.initial_metadata())
            trailing = list(await call.trailing_metadata())
    # Connect unary: headers, and the trailers as trailer- headers.
    assert status == 200
    assert values(fields, "x-service-header") == ["h1", "h2"]
    assert values(fields, "x-blob-bin") == [base64.b64encode(BLOB).decode().rstrip("=")]
    assert values(fields, "trailer-x-service-trailer") == ["t1"]
    assert values(fields, "x-request-id") == ["client-7"]  # the gateway's answer, not the service's
    for kept_back in ("set-cookie", "trailer-set-cookie", "access-control-allow-origin"):
        assert values(fields, kept_back) == [], fields
    # gRPC-Web: headers, and the trailers in the trailers frame.
    assert web_status == 200
    assert values(web_fields, "x-service-header") == ["h1", "h2"]
    assert values(web_fields, "set-cookie") == []
    flags, payload = envelopes(web_body)[-1]
    trailers = grpc_web_trailers(payload)
    assert (flags, trailers["grpc-status"], trailers["x-service-trailer"]) == (0x80, "0", "t1")
    assert "set-cookie" not in trailers
    # gRPC: initial and trailing metadata.
    assert [v for k, v in initial if k == "x-service-header"] == ["h1", "h2"]
    assert ("x-blob-bin", BLOB) in initial
    assert ("x-service-trailer", "t1") in trailing
    assert not any(k == "set-cookie" for k, _ in [*initial, *trailing])
    assert error_lines(gateway) == []


async def test_an_error_keeps_the_services_message_headers_and_trailers(
    services: ServiceFactory,
) -> None:
    async with talking_caller(fail=True) as (address, _seen):
        gateway = services.start_gateway({"CALLER_TARGET": address})
        status, fields, body = await post_from_thread(gateway, [])
    assert status == 500
    assert b'"internal"' in body
    assert b"the stand-in's own failure" in body  # its own status: not grpc core's text
    assert values(fields, "x-service-header") == ["h1", "h2"]
    assert values(fields, "trailer-x-service-trailer") == ["t1"]


async def test_too_much_metadata_is_refused_and_the_gateway_keeps_serving(
    services: ServiceFactory,
) -> None:
    """More than 64 fields, or more than 4 KiB of them, to pass on: resource_exhausted with a
    short message, no call to the service; then an ordinary call is served."""
    many = [(f"X-Field-{i}", "v") for i in range(65)]
    large = [("X-Large", "v" * 5000)]
    async with talking_caller() as (address, seen):
        gateway = services.start_gateway({"CALLER_TARGET": address})
        refused = [await post_from_thread(gateway, headers) for headers in (many, large)]
        served, _fields, _body = await post_from_thread(gateway, [("X-Small", "v")])
    for status, _fields, body in refused:
        assert status == 429
        assert b'"resource_exhausted"' in body
        assert b"too much request metadata" in body
        assert len(body) < 1024
    assert served == 200
    assert len(seen) == 1  # only the ordinary call reached the service
    assert error_lines(gateway) == []
