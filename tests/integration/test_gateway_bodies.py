"""The request body and the protocol edges at the gateway, over raw sockets: an HTTP/2 answer
sent before the request body was read keeps the connection usable for its other streams, even
when the client's body arrives after it (what hypercorn#329 broke), gRPC over HTTP/1.1 gets a
clear 415, a slow body is cut after GATEWAY_BODY_TIMEOUT, and a service that is not exposed
answers `unimplemented`."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from tests.processes import CALLER_SERVICE, HOST, GatewayProcess, ServiceProcess, open_channel

from .gateway_http import envelope, post

pytestmark = pytest.mark.integration

TOKEN = "web-1"  # noqa: S105 - the test gateway's client token
BODY_TIMEOUT = 1.0  # seconds: GATEWAY_BODY_TIMEOUT of this module's gateway
INTRODUCE = f"/{CALLER_SERVICE}/Introduce"
ADA = b'{"name": "Ada"}'


@pytest.fixture(scope="module")
def gateway_own(
    caller: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway exposing only Caller (the default), with AUTH_TOKENS and a short body
    timeout."""
    directory: Path = tmp_path_factory.mktemp("gateway-bodies")
    gateway = GatewayProcess(
        directory / "gateway.stderr.log",
        {
            "CALLER_TARGET": caller.address,
            "AUTH_TOKENS": TOKEN,
            "GATEWAY_BODY_TIMEOUT": str(BODY_TIMEOUT),
        },
    )
    gateway.start().wait_healthy()
    try:
        yield gateway
    finally:
        code = gateway.terminate()
    assert code == 0, gateway.log_text()


def error_lines(gateway: GatewayProcess) -> list[str]:
    return [str(r) for r in gateway.log_records() if r.get("level") in ("ERROR", "CRITICAL")]


class H2Client:
    """A cleartext HTTP/2 client (prior knowledge) on one connection, driven step by step."""

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection((HOST, port), timeout=5)
        self.connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.connection.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.socket.sendall(self.connection.data_to_send())

    def headers(self, stream_id: int, path: str, headers: dict[str, str]) -> None:
        pseudo = [(":method", "POST"), (":scheme", "http"), (":authority", "gw"), (":path", path)]
        self.connection.send_headers(stream_id, [*pseudo, *headers.items()])
        self.flush()

    def data(self, stream_id: int, data: bytes) -> None:
        self.connection.send_data(stream_id, data, end_stream=True)
        self.flush()

    def late_data(self, stream_id: int, data: bytes) -> None:
        """A DATA frame ending stream_id, written whatever state h2 has the stream in: the body
        a client had already sent when the server's early answer (and its reset) came."""
        header = struct.pack(">I", len(data))[1:] + b"\x00\x01" + struct.pack(">I", stream_id)
        self.socket.sendall(header + data)

    def until(self, stream_id: int, kind: type[h2.events.Event]) -> list[h2.events.Event]:
        """Events read until one of kind arrives on stream_id; AssertionError when the
        connection closes or 5 s pass first."""
        seen: list[h2.events.Event] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data = self.socket.recv(65536)
            assert data, f"connection closed; events: {seen}"
            events = self.connection.receive_data(data)
            self.flush()
            seen.extend(events)
            assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in events), seen
            if any(
                isinstance(e, kind) and getattr(e, "stream_id", None) == stream_id for e in events
            ):
                return seen
        raise AssertionError(f"no {kind.__name__} on stream {stream_id}: {seen}")

    def close(self) -> None:
        self.socket.close()


GRPC = {"content-type": "application/grpc", "te": "trailers"}
AUTHORIZED = {"authorization": f"Bearer {TOKEN}"}
EARLY_ANSWERS = [
    ("unknown method", f"/{CALLER_SERVICE}/Nope", {**GRPC, **AUTHORIZED}, "404"),
    ("unsupported content type", INTRODUCE, {"content-type": "text/plain", **AUTHORIZED}, "415"),
    ("bad token", INTRODUCE, {**GRPC, "authorization": "Bearer nope"}, "200"),
    ("service not exposed", "/acme.greeter.v1.GreeterService/SayHello", GRPC, "200"),
]


@pytest.mark.parametrize(
    ("what", "path", "headers", "status"), EARLY_ANSWERS, ids=[c[0] for c in EARLY_ANSWERS]
)
def test_http2_early_answer_keeps_the_connection(
    gateway_own: GatewayProcess, what: str, path: str, headers: dict[str, str], status: str
) -> None:
    """Stream 1 is answered from its headers alone (Envoy then resets the rest of the request
    with NO_ERROR, RFC 9113 8.1); its body comes after the answer, and stream 3 on the same
    connection must still be served."""
    client = H2Client(gateway_own.port)
    try:
        client.headers(1, path, headers)
        answered = client.until(1, h2.events.StreamEnded)
        response = next(e for e in answered if isinstance(e, h2.events.ResponseReceived))
        assert dict(response.headers)[b":status"] == status.encode(), (what, response.headers)
        client.late_data(1, envelope(b"\n\x03Ada"))
        client.headers(3, INTRODUCE, {**GRPC, **AUTHORIZED})
        client.data(3, envelope(b"\n\x03Ada"))
        events = client.until(3, h2.events.StreamEnded)
    finally:
        client.close()
    trailers = [e for e in events if isinstance(e, h2.events.TrailersReceived)]
    assert trailers, events
    assert dict(trailers[-1].headers)[b"grpc-status"] == b"0", (what, events)
    assert error_lines(gateway_own) == []


def test_http2_early_answer_does_not_wait_for_the_body(gateway_own: GatewayProcess) -> None:
    """A client that never sends the body it announced gets the early answer's end of stream
    at once (not after GATEWAY_BODY_TIMEOUT, as the workaround of hypercorn#329 held it)."""
    client = H2Client(gateway_own.port)
    started = time.monotonic()
    try:
        client.headers(1, f"/{CALLER_SERVICE}/Nope", {**GRPC, **AUTHORIZED})
        client.until(1, h2.events.StreamEnded)
    finally:
        client.close()
    assert time.monotonic() - started < BODY_TIMEOUT / 2


def test_grpc_over_http1_is_refused_naming_http2(gateway_own: GatewayProcess) -> None:
    answer = post(
        gateway_own.address,
        INTRODUCE,
        envelope(b"\n\x03Ada"),
        {"content-type": "application/grpc", **AUTHORIZED},
    )
    assert answer.status == 415
    assert b"HTTP/2" in answer.body
    assert len(answer.body) < 1024
    assert error_lines(gateway_own) == []


def test_slow_body_is_cut(gateway_own: GatewayProcess) -> None:
    """A body dripping one byte every 0.2 s is cut after GATEWAY_BODY_TIMEOUT."""
    head = (
        f"POST {INTRODUCE} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    started = time.monotonic()
    answer = b""
    with socket.create_connection((HOST, gateway_own.port), timeout=0.2) as connection:
        connection.sendall(head + b'{"name": "')
        while time.monotonic() - started < 5 * BODY_TIMEOUT:
            with contextlib.suppress(TimeoutError):
                answer = connection.recv(1000)
                break
            with contextlib.suppress(OSError):
                connection.sendall(b"a")
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 4"), answer
    assert elapsed < 3 * BODY_TIMEOUT
    assert error_lines(gateway_own) == []


async def test_service_not_exposed_is_unimplemented(gateway_own: GatewayProcess) -> None:
    path = "/acme.greeter.v1.GreeterService/SayHello"
    answer = post(gateway_own.address, path, b"{}", {"content-type": "application/json"})
    assert answer.status == 404
    assert answer.json()["code"] == "unimplemented"
    assert "acme.greeter.v1.GreeterService is not exposed" in answer.json()["message"]
    async with open_channel(gateway_own.address) as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.SayHello(greeter_pb2.SayHelloRequest(name="Ada"), timeout=5)
    assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "not exposed" in (raised.value.details() or "")
    page = post(gateway_own.address, "/", b"", {}, method="GET")
    assert page.status == 200
