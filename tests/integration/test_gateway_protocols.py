"""The gateway over real sockets, in front of the real caller and greeter processes: JSON as
curl sends it (HTTP/1.1), Connect binary and gRPC-Web, each for a unary call
(Caller.Introduce) and a server stream (Greeter.SayHelloLanguages), their errors with the
google.rpc.BadRequest details intact, and client/bidi streaming over HTTP/1.1 and, with
`buf curl` (connect-go's client), HTTP/2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.rpc import status_pb2

from acme.caller.v1 import caller_pb2
from acme.greeter.v1 import greeter_pb2
from tests.processes import CALLER_SERVICE, GREETER_INSTANCE, GREETER_SERVICE, GatewayProcess

from .gateway_http import (
    END_STREAM,
    TRAILERS,
    connect_stream,
    envelope,
    envelopes,
    grpc_web,
    grpc_web_trailers,
    post,
    unbase64,
    violations_in_connect_error,
    violations_in_status,
)

pytestmark = pytest.mark.integration

INTRODUCE = f"/{CALLER_SERVICE}/Introduce"
INTRODUCE_ALL = f"/{CALLER_SERVICE}/IntroduceAll"
LANGUAGES = f"/{GREETER_SERVICE}/SayHelloLanguages"
GREET_MANY = f"/{GREETER_SERVICE}/GreetMany"
CHAT = f"/{GREETER_SERVICE}/Chat"
JSON = {"content-type": "application/json"}
EMPTY_NAME = [("name", "must not be empty")]
BUF = Path(sys.executable).parent / "buf"  # the dev dependency buf-bin


def test_json_unary_as_curl_sends_it(gateway: GatewayProcess) -> None:
    response = post(gateway.address, INTRODUCE, b'{"name": "Ada"}', JSON)
    assert response.status == 200, response.body
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": "Hello, Ada!", "greeterInstance": GREETER_INSTANCE}
    assert len(response.headers["x-request-id"]) == 32


def test_json_fan_out(gateway: GatewayProcess) -> None:
    body = json.dumps({"names": ["Ada", "Alan"], "language": "fr"}).encode()
    response = post(gateway.address, INTRODUCE_ALL, body, JSON)
    assert response.status == 200, response.body
    reply = response.json()
    assert [item["message"] for item in reply["introductions"]] == [
        "Bonjour, Ada !",
        "Bonjour, Alan !",
    ]
    assert reply["succeeded"] == 2


def test_json_server_stream(gateway: GatewayProcess) -> None:
    body = envelope(json.dumps({"name": "Ada", "languages": ["en", "fr", "de"]}).encode())
    headers = {"content-type": "application/connect+json", "connect-protocol-version": "1"}
    response = post(gateway.address, LANGUAGES, body, headers)
    assert response.status == 200, response.body
    frames = envelopes(response.body)
    messages = [json.loads(payload) for flags, payload in frames if flags == 0]
    assert messages == [
        {"language": "en", "message": "Hello, Ada!"},
        {"language": "fr", "message": "Bonjour, Ada !"},
        {"language": "de", "message": "Hallo, Ada!"},
    ]
    assert frames[-1] == (END_STREAM, b"{}")  # the end of the stream, without error


def test_json_validation_error_keeps_its_field_violations(gateway: GatewayProcess) -> None:
    response = post(gateway.address, INTRODUCE, b'{"name": ""}', JSON)
    assert response.status == 400
    error = response.json()
    assert error["code"] == "invalid_argument"
    assert "name" in error["message"]
    assert violations_in_connect_error(error) == EMPTY_NAME


def test_connect_binary_unary(gateway: GatewayProcess) -> None:
    request = caller_pb2.IntroduceRequest(name="Grace", language="de")
    headers = {"content-type": "application/proto", "connect-protocol-version": "1"}
    response = post(gateway.address, INTRODUCE, request.SerializeToString(), headers)
    assert response.status == 200, response.body
    assert response.headers["content-type"] == "application/proto"
    reply = caller_pb2.IntroduceResponse.FromString(response.body)
    assert (reply.message, reply.greeter_instance) == ("Hallo, Grace!", GREETER_INSTANCE)


def test_connect_binary_server_stream(gateway: GatewayProcess) -> None:
    request = greeter_pb2.SayHelloLanguagesRequest(name="Ada", languages=["en", "fr"])
    response = connect_stream(gateway.address, LANGUAGES, request)
    assert response.status == 200, response.body
    assert response.headers["content-type"] == "application/connect+proto"
    frames = envelopes(response.body)
    replies = [
        greeter_pb2.SayHelloLanguagesResponse.FromString(payload)
        for flags, payload in frames
        if flags == 0
    ]
    assert [(r.language, r.message) for r in replies] == [
        ("en", "Hello, Ada!"),
        ("fr", "Bonjour, Ada !"),
    ]
    assert frames[-1] == (END_STREAM, b"{}")


def test_connect_binary_stream_error_ends_the_stream(gateway: GatewayProcess) -> None:
    request = greeter_pb2.SayHelloLanguagesRequest(name="", languages=["en"])
    response = connect_stream(gateway.address, LANGUAGES, request)
    assert response.status == 200  # a stream's status is in its last envelope
    flags, payload = envelopes(response.body)[-1]
    assert flags == END_STREAM
    error = json.loads(payload)["error"]
    assert error["code"] == "invalid_argument"
    assert violations_in_connect_error(error) == EMPTY_NAME


def test_grpc_web_unary(gateway: GatewayProcess) -> None:
    response = grpc_web(gateway.address, INTRODUCE, caller_pb2.IntroduceRequest(name="Ada"))
    assert response.status == 200, response.body
    assert response.headers["content-type"] == "application/grpc-web+proto"
    (message_flags, message), (trailer_flags, trailers) = envelopes(response.body)
    assert message_flags == 0
    assert caller_pb2.IntroduceResponse.FromString(message).message == "Hello, Ada!"
    assert trailer_flags == TRAILERS
    assert grpc_web_trailers(trailers)["grpc-status"] == "0"


def test_grpc_web_server_stream(gateway: GatewayProcess) -> None:
    request = greeter_pb2.SayHelloLanguagesRequest(name="Alan", languages=["fr", "de"])
    response = grpc_web(gateway.address, LANGUAGES, request)
    assert response.status == 200, response.body
    frames = envelopes(response.body)
    replies = [greeter_pb2.SayHelloLanguagesResponse.FromString(p) for f, p in frames[:-1]]
    assert [r.message for r in replies] == ["Bonjour, Alan !", "Hallo, Alan!"]
    assert frames[-1][0] == TRAILERS
    assert grpc_web_trailers(frames[-1][1])["grpc-status"] == "0"


def test_grpc_web_validation_error_carries_status_details(gateway: GatewayProcess) -> None:
    response = grpc_web(gateway.address, INTRODUCE, caller_pb2.IntroduceRequest(name=""))
    assert response.status == 200
    [(flags, payload)] = envelopes(response.body)
    assert flags == TRAILERS
    trailers = grpc_web_trailers(payload)
    assert trailers["grpc-status"] == "3"  # INVALID_ARGUMENT
    status = status_pb2.Status.FromString(unbase64(trailers["grpc-status-details-bin"]))
    assert violations_in_status(status) == EMPTY_NAME


def test_client_stream_over_http1(gateway: GatewayProcess) -> None:
    body = b"".join(
        envelope(greeter_pb2.GreetManyRequest(name=name).SerializeToString())
        for name in ("Ada", "Alan")
    )
    headers = {"content-type": "application/connect+proto", "connect-protocol-version": "1"}
    response = post(gateway.address, GREET_MANY, body, headers)
    assert response.status == 200, response.body
    frames = envelopes(response.body)
    reply = greeter_pb2.GreetManyResponse.FromString(frames[0][1])
    assert (reply.message, reply.count) == ("Hello, Ada and Alan!", 2)
    assert frames[-1] == (END_STREAM, b"{}")


def test_bidi_stream_over_http1_is_half_duplex(gateway: GatewayProcess) -> None:
    """HTTP/1.1 cannot carry both directions at once: every request is sent before the first
    reply is read; the call still works, as a half-duplex exchange."""
    body = b"".join(
        envelope(greeter_pb2.ChatRequest(name=name).SerializeToString())
        for name in ("Ada", "Alan", "Grace")
    )
    headers = {"content-type": "application/connect+proto", "connect-protocol-version": "1"}
    response = post(gateway.address, CHAT, body, headers)
    assert response.status == 200, response.body
    frames = envelopes(response.body)
    replies = [greeter_pb2.ChatResponse.FromString(p) for f, p in frames if f == 0]
    assert [r.message for r in replies] == ["Hello, Ada!", "Hello, Alan!", "Hello, Grace!"]


def buf_curl(gateway: GatewayProcess, protocol: str, path: str, data: str) -> list[object]:
    """`buf curl` over HTTP/2 (prior knowledge) with the schema from proto/: the replies."""
    if not BUF.is_file():
        pytest.fail(f"buf not found at {BUF}: install the dev dependencies (`uv sync`)")
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [
            str(BUF),
            "curl",
            "--protocol",
            protocol,
            "--http2-prior-knowledge",
            "--schema",
            str(root / "proto"),
            "-d",
            data,
            f"{gateway.url}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    decoder = json.JSONDecoder()
    replies: list[object] = []
    text = result.stdout.strip()
    while text:
        reply, end = decoder.raw_decode(text)
        replies.append(reply)
        text = text[end:].strip()
    return replies


def test_connect_over_http2(gateway: GatewayProcess) -> None:
    assert buf_curl(gateway, "connect", INTRODUCE, '{"name": "Ada"}') == [
        {"message": "Hello, Ada!", "greeterInstance": GREETER_INSTANCE}
    ]


def test_grpc_over_http2_server_stream(gateway: GatewayProcess) -> None:
    replies = buf_curl(gateway, "grpc", LANGUAGES, '{"name": "Ada", "languages": ["fr"]}')
    assert replies == [{"language": "fr", "message": "Bonjour, Ada !"}]


def test_bidi_stream_over_http2(gateway: GatewayProcess) -> None:
    replies = buf_curl(gateway, "connect", CHAT, '{"name": "Ada"} {"name": "Alan"}')
    assert replies == [
        {"message": "Hello, Ada!", "sequence": 1},
        {"message": "Hello, Alan!", "sequence": 2},
    ]
