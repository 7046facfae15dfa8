"""The per-call path over an in-process server on loopback: CallHandlers serves every kind of
call, registered as generic or as registered method handlers, with auth, error translation,
malformed requests, request ids, metrics and one access-log line per RPC, and builds each
method's handlers once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2
from prometheus_client import REGISTRY
from pydantic import SecretStr

from acme_common._call.handlers import CallHandlers, Registrar
from acme_common._call.observation import ServicerContext
from acme_common._errors import FieldViolation, InvalidArgument, field_violations, status_details
from acme_common._settings import ServerSettings

SERVICE = "test.interceptor.v1.Probe"
TOKEN = "probe-token"  # noqa: S105 - a test value
AUTHORIZED = (("authorization", f"Bearer {TOKEN}"),)
Text = wrappers_pb2.StringValue


async def unary(request: Text, context: ServicerContext) -> Text:
    if request.value == "invalid":
        raise InvalidArgument(FieldViolation("value", "must not be 'invalid'"))
    if request.value == "crash":
        raise RuntimeError("secret internal detail")
    return Text(value=f"hello {request.value}")


async def server_stream(request: Text, context: ServicerContext) -> AsyncIterator[Text]:
    for index in range(3):
        yield Text(value=f"{request.value} {index}")


async def bidi_stream(
    requests: AsyncIterator[Text], context: ServicerContext
) -> AsyncIterator[Text]:
    async for request in requests:
        yield Text(value=request.value.upper())


CODEC: dict[str, Any] = {
    "request_deserializer": Text.FromString,
    "response_serializer": Text.SerializeToString,
}
SETTINGS = ServerSettings(
    instance_name="probe-1", auth_tokens=(SecretStr(TOKEN),), access_log="all"
)


def method_handlers() -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    return {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, **CODEC),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, **CODEC),
        "BidiStream": grpc.stream_stream_rpc_method_handler(bidi_stream, **CODEC),
    }


def call_handlers() -> CallHandlers:
    return CallHandlers(SETTINGS, tracing=False, shutting_down=lambda: False)


@pytest.fixture(params=["generic", "registered"])
async def channel(request: pytest.FixtureRequest) -> AsyncIterator[grpc.aio.Channel]:
    """A server whose service adds its methods as a generic handler or as registered method
    handlers (grpc resolves the latter without asking generic handlers): served alike."""
    handlers = call_handlers()
    registrar = Registrar(handlers)
    if request.param == "generic":
        generic = grpc.method_handlers_generic_handler(SERVICE, method_handlers())
        registrar.add_generic_rpc_handlers((generic,))
    else:
        registrar.add_registered_method_handlers(SERVICE, method_handlers())
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(None)


def method(channel: grpc.aio.Channel, name: str) -> Any:
    return channel.unary_unary(f"/{SERVICE}/{name}", Text.SerializeToString, Text.FromString)


def started(name: str, grpc_type: str) -> float:
    labels = {"grpc_type": grpc_type, "grpc_service": SERVICE, "grpc_method": name}
    return REGISTRY.get_sample_value("grpc_server_started_total", labels) or 0.0


async def test_unary_call_is_observed_and_logged_once(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="acme.access")
    before = started("Unary", "unary")
    metadata = (*AUTHORIZED, ("x-request-id", "req-123"))
    reply = await method(channel, "Unary")(Text(value="Ada"), metadata=metadata, timeout=5)
    assert reply.value == "hello Ada"
    assert started("Unary", "unary") == before + 1
    [line] = [record for record in caplog.records if record.name == "acme.access"]
    assert line.getMessage() == "rpc"
    fields = {key: getattr(line, key) for key in ("method", "code", "instance", "request_id")}
    assert fields == {
        "method": f"/{SERVICE}/Unary",
        "code": "OK",
        "instance": "probe-1",
        "request_id": "req-123",
    }


def test_handlers_are_built_once_per_method() -> None:
    handlers = call_handlers()
    Registrar(handlers).add_registered_method_handlers(SERVICE, method_handlers())
    details: Any = type(
        "Details", (), {"method": f"/{SERVICE}/Unary", "invocation_metadata": AUTHORIZED}
    )()
    first, second = handlers.service(details), handlers.service(details)
    assert first is not None
    assert first is second


def test_the_registrar_does_not_serve() -> None:
    with pytest.raises(TypeError):
        Registrar(call_handlers()).add_insecure_port("127.0.0.1:0")


async def test_streams_in_both_directions(channel: grpc.aio.Channel) -> None:
    stream = channel.unary_stream(
        f"/{SERVICE}/ServerStream", Text.SerializeToString, Text.FromString
    )
    replies = [reply.value async for reply in stream(Text(value="n"), metadata=AUTHORIZED)]
    assert replies == ["n 0", "n 1", "n 2"]
    bidi = channel.stream_stream(f"/{SERVICE}/BidiStream", Text.SerializeToString, Text.FromString)
    call = bidi(iter([Text(value="a"), Text(value="b")]), metadata=AUTHORIZED, timeout=5)
    assert [reply.value async for reply in call] == ["A", "B"]


async def code_of(call: Any, *args: Any, **kwargs: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(*args, timeout=5, **kwargs)
    return raised.value


async def test_calls_without_a_valid_token_are_unauthenticated(channel: grpc.aio.Channel) -> None:
    unauthorized = (("authorization", "Bearer wrong"),)
    for metadata in ((), unauthorized):
        error = await code_of(method(channel, "Unary"), Text(value="x"), metadata=metadata)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    raw = channel.unary_unary(f"/{SERVICE}/Unary", None, None)
    error = await code_of(raw, b"\xff\xff")  # malformed too: still UNAUTHENTICATED
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_unknown_methods_are_unimplemented_only_with_a_token(
    channel: grpc.aio.Channel,
) -> None:
    unknown = channel.unary_unary(f"/{SERVICE}/NoSuchMethod", None, None)
    assert (await code_of(unknown, b"")).code() == grpc.StatusCode.UNAUTHENTICATED
    error = await code_of(unknown, b"", metadata=AUTHORIZED)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_failures_become_statuses(channel: grpc.aio.Channel) -> None:
    call = method(channel, "Unary")
    invalid = await code_of(call, Text(value="invalid"), metadata=AUTHORIZED)
    assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(status_details(invalid)) == [
        FieldViolation("value", "must not be 'invalid'")
    ]
    crash = await code_of(call, Text(value="crash"), metadata=AUTHORIZED)
    assert (crash.code(), crash.details()) == (grpc.StatusCode.INTERNAL, "internal error")


async def test_malformed_requests_are_invalid_argument(channel: grpc.aio.Channel) -> None:
    raw = channel.unary_unary(f"/{SERVICE}/Unary", None, None)
    error = await code_of(raw, b"\xff\xff", metadata=AUTHORIZED)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    [violation] = field_violations(status_details(error))
    assert violation.field == "request"
    assert violation.description.startswith("not a valid protobuf message")
