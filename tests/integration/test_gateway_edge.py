"""What the gateway adds at the edge, over real sockets: deadlines, request ids and tokens
handed on to the service (seen by a recording stand-in for Caller), its own authentication,
CORS by configuration, request size limits, health and graceful shutdown, metrics, the
access log, configuration errors, and an unreachable service."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from acme.caller.v1 import caller_pb2
from tests.processes import (
    CALLER_SERVICE,
    HOST,
    GatewayProcess,
    ServiceFactory,
    ServiceProcess,
    free_port,
    stand_in_server,
)

from .gateway_http import envelopes, grpc_web, grpc_web_trailers, post

pytestmark = pytest.mark.integration

INTRODUCE = f"/{CALLER_SERVICE}/Introduce"
JSON = {"content-type": "application/json"}
ADA = b'{"name": "Ada"}'


class Seen:
    """What the stand-in Caller received: per call, the remaining deadline and metadata."""

    def __init__(self) -> None:
        self.deadlines: list[float | None] = []
        self.metadata: list[dict[str, str]] = []


@asynccontextmanager
async def recording_caller(
    delay: float = 0.0, fail: grpc.StatusCode | None = None
) -> AsyncIterator[tuple[str, Seen]]:
    """A stand-in for Caller's Introduce that records what it gets, answers after delay s
    (or fails with the status fail)."""
    seen = Seen()

    async def introduce(
        request: caller_pb2.IntroduceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> caller_pb2.IntroduceResponse:
        seen.deadlines.append(context.time_remaining())
        metadata = context.invocation_metadata() or ()
        seen.metadata.append({key: str(value) for key, value in metadata})
        await asyncio.sleep(delay)
        if fail is not None:
            await context.abort(fail, "the stand-in fails")
        return caller_pb2.IntroduceResponse(message=f"Hi {request.name}", greeter_instance="rec")

    async with stand_in_server(
        CALLER_SERVICE,
        "Introduce",
        introduce,
        caller_pb2.IntroduceRequest,
        caller_pb2.IntroduceResponse,
    ) as address:
        yield address, seen


async def call(gateway: GatewayProcess, headers: dict[str, str], body: bytes = ADA) -> Any:
    """post() from a worker thread, so the stand-in server in this loop can answer."""
    return await asyncio.to_thread(post, gateway.address, INTRODUCE, body, {**JSON, **headers})


async def test_connect_timeout_reaches_the_service(services: ServiceFactory) -> None:
    async with recording_caller() as (address, seen):
        gateway = services.start_gateway({"CALLER_TARGET": address, "CALLER_TIMEOUT": "30"})
        response = await call(gateway, {"connect-timeout-ms": "3000"})
        assert response.status == 200, response.body
        response = await call(gateway, {})
    [with_header, without] = seen.deadlines
    assert with_header is not None
    assert 2.0 < with_header <= 3.0
    assert without is not None
    assert 25 < without <= 30.5  # CALLER_TIMEOUT (grpc rounds deadlines up a little)


async def test_grpc_timeout_of_grpc_web_reaches_the_service(services: ServiceFactory) -> None:
    async with recording_caller() as (address, seen):
        gateway = services.start_gateway({"CALLER_TARGET": address, "CALLER_TIMEOUT": "30"})
        request = caller_pb2.IntroduceRequest(name="Ada")
        response = await asyncio.to_thread(
            grpc_web, gateway.address, INTRODUCE, request, **{"grpc-timeout": "2S"}
        )
    assert grpc_web_trailers(envelopes(response.body)[-1][1])["grpc-status"] == "0"
    [deadline] = seen.deadlines
    assert deadline is not None
    assert 1.0 < deadline <= 2.0


async def test_deadline_exceeded_when_the_service_is_slower(services: ServiceFactory) -> None:
    async with recording_caller(delay=5) as (address, _seen):
        gateway = services.start_gateway({"CALLER_TARGET": address})
        started = time.monotonic()
        response = await call(gateway, {"connect-timeout-ms": "300"})
        elapsed = time.monotonic() - started
    assert response.status == 504
    assert response.json()["code"] == "deadline_exceeded"
    assert elapsed < 3
    record = await gateway.wait_for_record(method=INTRODUCE)
    assert record["code"] == "DEADLINE_EXCEEDED"


async def test_request_id_is_passed_on_and_echoed(services: ServiceFactory) -> None:
    async with recording_caller() as (address, seen):
        gateway = services.start_gateway({"CALLER_TARGET": address})
        given = await call(gateway, {"x-request-id": "browser-req-42"})
        bad = await call(gateway, {"x-request-id": "with space"})
    assert given.headers["x-request-id"] == "browser-req-42"
    assert seen.metadata[0]["x-request-id"] == "browser-req-42"
    # Not sendable as gRPC metadata: replaced by a new id, the same on both sides.
    assert bad.headers["x-request-id"] != "with space"
    assert seen.metadata[1]["x-request-id"] == bad.headers["x-request-id"]
    record = await gateway.wait_for_record(request_id="browser-req-42")
    assert record["code"] == "OK"
    assert record["protocol"] == "connect"


async def test_gateway_token_and_own_downstream_token(services: ServiceFactory) -> None:
    """AUTH_TOKENS: the gateway checks its clients; CALLER_AUTH_TOKEN: it presents its own."""
    async with recording_caller() as (address, seen):
        gateway = services.start_gateway(
            {"CALLER_TARGET": address, "AUTH_TOKENS": "web-1", "CALLER_AUTH_TOKEN": "gw-1"}
        )
        missing = await call(gateway, {})
        wrong = await call(gateway, {"authorization": "Bearer nope"})
        # Refused before the body is read: garbage without a token is still unauthenticated.
        garbage = await call(gateway, {}, body=b"\xff{{{")
        good = await call(gateway, {"authorization": "Bearer web-1"})
    for refused in (missing, wrong, garbage):
        assert refused.status == 401
        assert refused.json()["code"] == "unauthenticated"
    assert good.status == 200
    assert [metadata["authorization"] for metadata in seen.metadata] == ["Bearer gw-1"]


async def test_pass_authorization_forwards_the_client_token(services: ServiceFactory) -> None:
    async with recording_caller() as (address, seen):
        gateway = services.start_gateway(
            {"CALLER_TARGET": address, "GATEWAY_PASS_AUTHORIZATION": "true"}
        )
        await call(gateway, {"authorization": "Bearer user-7"})
        await call(gateway, {})
    assert seen.metadata[0]["authorization"] == "Bearer user-7"
    assert "authorization" not in seen.metadata[1]


async def test_pass_authorization_refuses_a_token_grpc_cannot_send(
    services: ServiceFactory,
) -> None:
    async with recording_caller() as (address, seen):
        gateway = services.start_gateway(
            {"CALLER_TARGET": address, "GATEWAY_PASS_AUTHORIZATION": "true"}
        )
        # http.client sends the value as ISO-8859-1: the byte 0xe9.
        refused = await call(gateway, {"authorization": "Bearer tok-\u00e9"})
    assert refused.status == 401
    assert refused.json()["code"] == "unauthenticated"
    assert seen.metadata == []
    assert [r for r in gateway.log_records() if r.get("level") in ("WARNING", "ERROR")] == []


def test_pass_authorization_with_real_caller_tokens(
    services: ServiceFactory, greeter: ServiceProcess
) -> None:
    caller = services.start_caller(greeter.address, {"AUTH_TOKENS": "user-7"})
    gateway = services.start_gateway(
        {"CALLER_TARGET": caller.address, "GATEWAY_PASS_AUTHORIZATION": "true"}
    )
    accepted = post(gateway.address, INTRODUCE, ADA, {**JSON, "authorization": "Bearer user-7"})
    refused = post(gateway.address, INTRODUCE, ADA, JSON)
    assert accepted.status == 200, accepted.body
    assert refused.status == 401
    assert refused.json()["code"] == "unauthenticated"


async def test_a_refused_gateway_token_is_a_warning_at_the_gateway(
    services: ServiceFactory, greeter: ServiceProcess
) -> None:
    """A gateway without CALLER_AUTH_TOKEN against a caller with AUTH_TOKENS: the browser
    gets 401, and the gateway's log says its own credentials were refused."""
    caller = services.start_caller(greeter.address, {"AUTH_TOKENS": "gw-1"})
    gateway = services.start_gateway({"CALLER_TARGET": caller.address})
    refused = await asyncio.to_thread(post, gateway.address, INTRODUCE, ADA, JSON)
    assert refused.status == 401
    warning = await gateway.wait_for_record(level="WARNING", code="UNAUTHENTICATED")
    assert "own credentials" in warning["message"]


def preflight(gateway: GatewayProcess, origin: str) -> Any:
    headers = {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,connect-protocol-version,x-grpc-web",
    }
    return post(gateway.address, INTRODUCE, b"", headers, method="OPTIONS")


def test_cors_default_allows_no_other_origin(gateway: GatewayProcess) -> None:
    response = preflight(gateway, "https://elsewhere.example")
    assert "access-control-allow-origin" not in response.headers
    simple = post(gateway.address, INTRODUCE, ADA, {**JSON, "origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_cors_allows_the_configured_origins(
    services: ServiceFactory, caller: ServiceProcess
) -> None:
    gateway = services.start_gateway(
        {"CALLER_TARGET": caller.address, "GATEWAY_CORS_ORIGINS": "https://app.example"}
    )
    allowed = preflight(gateway, "https://app.example")
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    allowed_headers = allowed.headers["access-control-allow-headers"].lower()
    for header in ("content-type", "connect-protocol-version", "x-grpc-web"):
        assert header in allowed_headers
    other = preflight(gateway, "https://elsewhere.example")
    assert "access-control-allow-origin" not in other.headers
    response = post(gateway.address, INTRODUCE, ADA, {**JSON, "origin": "https://app.example"})
    assert response.status == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "grpc-status-details-bin" in response.headers["access-control-expose-headers"].lower()


def test_request_size_limit(services: ServiceFactory, caller: ServiceProcess) -> None:
    gateway = services.start_gateway(
        {"CALLER_TARGET": caller.address, "GATEWAY_MAX_REQUEST_BYTES": "2048"}
    )
    fits = json.dumps({"name": "Ada", "language": "x" * 1900}).encode()
    too_big = json.dumps({"name": "Ada", "language": "x" * 2100}).encode()
    assert post(gateway.address, INTRODUCE, fits, JSON).json()["code"] == "invalid_argument"
    refused = post(gateway.address, INTRODUCE, too_big, JSON)
    assert refused.status == 429
    assert refused.json()["code"] == "resource_exhausted"
    # 8 MB announced, 256 KiB sent: answered without waiting for (or storing) the rest.
    with socket.create_connection((HOST, gateway.port), timeout=10) as connection:
        # The gateway may answer and close before all of it is sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(
                f"POST {INTRODUCE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 8000000\r\n\r\n".encode()
                + b"x" * 256 * 1024
            )
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while b"resource_exhausted" not in answer and (chunk := connection.recv(65536)):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
    assert b"resource_exhausted" in answer
    assert post(gateway.address, INTRODUCE, ADA, JSON).status == 200  # still serving


async def test_unreachable_service_is_unavailable_without_internal_addresses(
    services: ServiceFactory,
) -> None:
    nothing_there = f"{HOST}:{free_port()}"
    gateway = services.start_gateway({"CALLER_TARGET": nothing_there})
    response = post(gateway.address, INTRODUCE, ADA, JSON)
    assert response.status == 503
    error = response.json()
    assert error["code"] == "unavailable"
    assert nothing_there not in error["message"]
    assert error["message"] == f"the service is unavailable: {CALLER_SERVICE}"
    warning = await gateway.wait_for_log("downstream call failed")
    assert warning["code"] == "UNAVAILABLE"  # the original message is in the log


async def test_gateway_does_not_retry_what_the_service_answered(
    services: ServiceFactory,
) -> None:
    """One layer retries (caller retries greeter): an UNAVAILABLE the service answered is
    passed on after one attempt, not tried again by the gateway."""
    async with recording_caller(fail=grpc.StatusCode.UNAVAILABLE) as (address, seen):
        gateway = services.start_gateway({"CALLER_TARGET": address})
        response = await call(gateway, {})
    assert response.status == 503
    assert len(seen.metadata) == 1


async def test_sigterm_drains(services: ServiceFactory) -> None:
    """SIGTERM: /healthz answers 503 at once, calls are still served during the drain delay,
    a call in flight completes, then the process exits 0."""
    async with recording_caller(delay=1.5) as (address, _seen):
        gateway = services.start_gateway(
            {"CALLER_TARGET": address, "GATEWAY_DRAIN_DELAY": "1", "GATEWAY_GRACE_PERIOD": "5"}
        )
        in_flight = asyncio.ensure_future(call(gateway, {}))
        await asyncio.sleep(0.3)
        gateway.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        assert await asyncio.to_thread(gateway.http_health) == "/healthz answered 503"
        during_drain = await call(gateway, {})
        assert (await in_flight).status == 200
        assert during_drain.status == 200
        code = await gateway.wait_exit_async()
    assert code == 0
    messages = gateway.log_messages()
    assert "draining" in messages
    assert "stopped" in messages


def test_metrics_count_calls_by_code(services: ServiceFactory, caller: ServiceProcess) -> None:
    metrics_port = free_port()
    gateway = services.start_gateway(
        {"CALLER_TARGET": caller.address, "METRICS_PORT": str(metrics_port)}
    )
    post(gateway.address, INTRODUCE, ADA, JSON)
    post(gateway.address, INTRODUCE, b'{"name": ""}', JSON)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{HOST}:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    labels = 'grpc_method="Introduce",grpc_service="acme.caller.v1.CallerService"'
    labels += ',grpc_type="unary"'
    assert f'grpc_server_handled_total{{grpc_code="OK",{labels}}} 1.0' in text
    assert f'grpc_server_handled_total{{grpc_code="INVALID_ARGUMENT",{labels}}} 1.0' in text
    assert 'grpc_client_handled_total{grpc_code="OK"' in text  # the channel to caller


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("GATEWAY_SERVICES", "acme.nope.v1.NopeService", "no generated code for acme.nope.v1"),
        ("GATEWAY_SERVICES", "not a service", "is not a service name"),
        ("GATEWAY_CORS_ORIGINS", "app.example/path", "is not an origin"),
        ("GATEWAY_MAX_REQUEST_BYTES", "10", "GATEWAY_MAX_REQUEST_BYTES"),
    ],
)
def test_bad_configuration_exits_2(
    services: ServiceFactory, variable: str, value: str, said: str
) -> None:
    gateway = services.start_gateway({variable: value}, wait_healthy=False)
    assert gateway.wait_exit() == 2
    assert said in gateway.log_text()


def test_pass_authorization_with_own_token_is_refused(services: ServiceFactory) -> None:
    gateway = services.start_gateway(
        {"GATEWAY_PASS_AUTHORIZATION": "true", "CALLER_AUTH_TOKEN": "x"}, wait_healthy=False
    )
    assert gateway.wait_exit() == 2
    assert "GATEWAY_PASS_AUTHORIZATION" in gateway.log_text()
    assert "x" not in gateway.log_text().split("CALLER")[-1].split()  # the token is not echoed


def test_port_taken_exits_1(services: ServiceFactory, gateway: GatewayProcess) -> None:
    second = services.start_gateway({"GATEWAY_PORT": str(gateway.port)}, wait_healthy=False)
    assert second.wait_exit() == 1
    assert "cannot serve" in second.log_text()


def test_health_endpoint(gateway: GatewayProcess) -> None:
    with socket.create_connection((HOST, gateway.port), timeout=5) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := connection.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body) == {"status": "SERVING"}


@pytest.mark.parametrize("path", ["/", "/app.js"])
def test_the_page_is_served_with_security_headers(gateway: GatewayProcess, path: str) -> None:
    """The page and its bundle tell the browser: scripts and calls from this origin only, no
    framing, no MIME sniffing (the browser test shows the page works under that policy)."""
    response = post(gateway.address, path, b"", {}, method="GET")
    assert response.status == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    answer = post(gateway.address, INTRODUCE, ADA, JSON)  # the RPCs carry none of it
    assert "content-security-policy" not in answer.headers
