"""ServiceHost over a real loopback socket: error translation, health and drain."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from acme_common._errors import FieldViolation, InvalidArgument, field_violations, status_details
from acme_common._server import Service, ServiceHost
from acme_common._settings import ServerSettings

SERVICE = "test.v1.ProbeService"


async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    if request == b"invalid":
        raise InvalidArgument(FieldViolation("payload", "must not be 'invalid'"))
    if request == b"crash":
        raise RuntimeError("secret internal detail")
    if request == b"unimplemented":  # what a generated *Servicer base class method does
        context.set_code(grpc.StatusCode.UNIMPLEMENTED)
        context.set_details("Method not implemented!")
        raise NotImplementedError("Method not implemented!")
    if request.startswith(b"bytes:"):  # a reply of that many bytes
        return b"x" * int(request.removeprefix(b"bytes:"))
    return request


def add_probe_service(server: grpc.aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))


@pytest.fixture
async def host() -> AsyncIterator[ServiceHost]:
    settings = ServerSettings(grpc_host="127.0.0.1", grpc_port=0, grpc_grace_period=1)
    service_host = ServiceHost(settings, [Service(SERVICE, add_probe_service)])
    await service_host.start()
    yield service_host
    await service_host.stop()


@pytest.fixture
async def channel(host: ServiceHost) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        yield channel


async def call_echo(channel: grpc.aio.Channel, payload: bytes) -> bytes:
    method = channel.unary_unary(f"/{SERVICE}/Echo", None, None)
    reply: bytes = await method(payload, timeout=5)
    return reply


async def test_success_passes_through(channel: grpc.aio.Channel) -> None:
    assert await call_echo(channel, b"hi") == b"hi"


async def test_service_error_becomes_rich_invalid_argument(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call_echo(channel, b"invalid")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "payload: must not be 'invalid'"
    assert field_violations(status_details(raised.value)) == [
        FieldViolation("payload", "must not be 'invalid'")
    ]


async def test_unexpected_exception_is_generic_internal_and_server_keeps_serving(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call_echo(channel, b"crash")
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error"
    assert "secret internal detail" in caplog.text  # logged with its traceback, never sent
    assert await call_echo(channel, b"still here") == b"still here"


async def test_health_reports_every_service_and_not_found(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_method_the_servicer_lacks_is_unimplemented_not_a_crash(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call_echo(channel, b"unimplemented")
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert raised.value.details() == "method not implemented"
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert await call_echo(channel, b"ping") == b"ping"


async def test_unknown_method_is_unimplemented(channel: grpc.aio.Channel) -> None:
    method = channel.unary_unary(f"/{SERVICE}/NoSuchMethod", None, None)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await method(b"", timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_replies_over_the_message_limit_are_resource_exhausted() -> None:
    # grpc.max_send_message_length: a server never sends more than GRPC_MAX_MESSAGE_BYTES.
    settings = ServerSettings(
        grpc_host="127.0.0.1", grpc_port=0, grpc_grace_period=1, grpc_max_message_bytes=4096
    )
    service_host = ServiceHost(settings, [Service(SERVICE, add_probe_service)])
    await service_host.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service_host.port}") as channel:
            assert len(await call_echo(channel, b"bytes:4000")) == 4000
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call_echo(channel, b"bytes:5000")
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call_echo(channel, b"x" * 5000)  # and receives no more either
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert await call_echo(channel, b"still here") == b"still here"
    finally:
        await service_host.stop()


async def test_settings_reach_the_interceptor(caplog: pytest.LogCaptureFixture) -> None:
    # AUTH_TOKENS, ACCESS_LOG and INSTANCE_NAME come to the one interceptor from settings.
    caplog.set_level(logging.INFO, logger="acme.access")
    settings = ServerSettings(
        grpc_host="127.0.0.1",
        grpc_port=0,
        grpc_grace_period=1,
        auth_tokens=(SecretStr("host-token"),),
        access_log="errors",
        instance_name="host-1",
    )
    service_host = ServiceHost(settings, [Service(SERVICE, add_probe_service)])
    await service_host.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service_host.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call_echo(channel, b"hi")
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            method = channel.unary_unary(f"/{SERVICE}/Echo", None, None)
            authorized = (("authorization", "Bearer host-token"),)
            assert await method(b"hi", timeout=5, metadata=authorized) == b"hi"
            stub = health_pb2_grpc.HealthStub(channel)  # open without a token
            await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    finally:
        await service_host.stop()
    lines = [record for record in caplog.records if record.getMessage() == "rpc"]
    assert [(line.code, line.instance) for line in lines] == [("UNAUTHENTICATED", "host-1")]  # type: ignore[attr-defined]
