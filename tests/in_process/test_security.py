"""TLS, mutual TLS and bearer tokens, over real loopback sockets."""

from __future__ import annotations

import contextlib
import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_devkit.certificates import CertificateAuthority
from tests.in_process.conftest import StartCaller, StartGreeter, secure_channel

HELLO = greeter_pb2.SayHelloRequest(name="Ada")


async def say_hello(channel: grpc.aio.Channel, token: str | None = None) -> str:
    metadata = None if token is None else (("authorization", f"Bearer {token}"),)
    reply = await greeter_pb2_grpc.GreeterServiceStub(channel).SayHello(
        HELLO, timeout=5, metadata=metadata
    )
    return reply.message


async def test_tls_call_works(start_greeter: StartGreeter, ca: CertificateAuthority) -> None:
    server = ca.issue("greeter", server=True)
    host = await start_greeter(tls_cert_file=server.cert, tls_key_file=server.key)
    async with secure_channel(host.port, ca.pem) as channel:
        assert await say_hello(channel) == "Hello, Ada!"


async def test_plaintext_client_fails_against_tls_server(
    start_greeter: StartGreeter, ca: CertificateAuthority
) -> None:
    server = ca.issue("greeter", server=True)
    host = await start_greeter(tls_cert_file=server.cert, tls_key_file=server.key)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await say_hello(channel)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_server_certificate_from_another_ca_is_rejected(
    start_greeter: StartGreeter, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    server = other_ca.issue("greeter", server=True)
    host = await start_greeter(tls_cert_file=server.cert, tls_key_file=server.key)
    async with secure_channel(host.port, ca.pem) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await say_hello(channel)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_accepts_a_client_certificate_from_the_ca(
    start_greeter: StartGreeter, ca: CertificateAuthority
) -> None:
    server, client = ca.issue("greeter", server=True), ca.issue("client", server=False)
    host = await start_greeter(
        tls_cert_file=server.cert, tls_key_file=server.key, tls_client_ca_file=ca.pem
    )
    async with secure_channel(host.port, ca.pem, client.cert, client.key) as channel:
        assert await say_hello(channel) == "Hello, Ada!"


async def test_mtls_rejects_a_client_without_certificate(
    start_greeter: StartGreeter, ca: CertificateAuthority
) -> None:
    server = ca.issue("greeter", server=True)
    host = await start_greeter(
        tls_cert_file=server.cert, tls_key_file=server.key, tls_client_ca_file=ca.pem
    )
    async with secure_channel(host.port, ca.pem) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await say_hello(channel)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_rejects_a_client_certificate_from_another_ca(
    start_greeter: StartGreeter, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    server, intruder = ca.issue("greeter", server=True), other_ca.issue("client", server=False)
    host = await start_greeter(
        tls_cert_file=server.cert, tls_key_file=server.key, tls_client_ca_file=ca.pem
    )
    async with secure_channel(host.port, ca.pem, intruder.cert, intruder.key) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await say_hello(channel)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_caller_reaches_greeter_over_mtls(
    start_greeter: StartGreeter, start_caller: StartCaller, ca: CertificateAuthority
) -> None:
    server, client = ca.issue("greeter", server=True), ca.issue("caller", server=False)
    greeter = await start_greeter(
        tls_cert_file=server.cert, tls_key_file=server.key, tls_client_ca_file=ca.pem
    )
    caller = await start_caller(
        greeter.port,
        greeter_client={
            "target": f"localhost:{greeter.port}",
            "tls_ca_file": ca.pem,
            "tls_cert_file": client.cert,
            "tls_key_file": client.key,
        },
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{caller.port}") as channel:
        reply = await caller_pb2_grpc.CallerServiceStub(channel).Introduce(
            caller_pb2.IntroduceRequest(name="Ada"), timeout=5
        )
    assert (reply.message, reply.greeter_instance) == ("Hello, Ada!", "greeter-test")


@pytest.mark.parametrize(
    ("server_name", "code"),
    [("localhost", grpc.StatusCode.OK), ("greeter.elsewhere", grpc.StatusCode.UNAVAILABLE)],
)
async def test_the_name_expected_in_greeters_certificate_is_checked(
    start_greeter: StartGreeter,
    start_caller: StartCaller,
    ca: CertificateAuthority,
    server_name: str,
    code: grpc.StatusCode,
) -> None:
    # GREETER_TLS_SERVER_NAME (grpc.ssl_target_name_override): the certificate must name it,
    # whatever address the target has.
    server = ca.issue("greeter", server=True)
    greeter = await start_greeter(tls_cert_file=server.cert, tls_key_file=server.key)
    caller = await start_caller(
        greeter.port,
        greeter_client={
            "target": f"127.0.0.1:{greeter.port}",
            "tls_ca_file": ca.pem,
            "tls_server_name": server_name,
        },
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{caller.port}") as channel:
        call = caller_pb2_grpc.CallerServiceStub(channel).Introduce(
            caller_pb2.IntroduceRequest(name="Ada"), timeout=5
        )
        assert await call.code() == code


TOKENS = "token-alpha-7f3a,token-beta-91c2"


async def test_tokens_are_required_and_checked(start_greeter: StartGreeter) -> None:
    host = await start_greeter(auth_tokens=TOKENS)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        for token in (None, "wrong", "token-alpha-7f3", "Bearer"):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await say_hello(channel, token)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert raised.value.details() == "missing or invalid bearer token"
        assert await say_hello(channel, "token-alpha-7f3a") == "Hello, Ada!"
        assert await say_hello(channel, "token-beta-91c2") == "Hello, Ada!"


async def test_streaming_rpcs_are_protected_too(start_greeter: StartGreeter) -> None:
    host = await start_greeter(auth_tokens=TOKENS)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        call = stub.Chat(iter([greeter_pb2.ChatRequest(name="Ada")]), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            [reply async for reply in call]
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_and_reflection_stay_open(start_greeter: StartGreeter) -> None:
    host = await start_greeter(auth_tokens=TOKENS)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = [
            service.name
            async for reply in replies
            for service in reply.list_services_response.service
        ]
    assert "acme.greeter.v1.GreeterService" in names


async def test_caller_presents_its_token_and_a_wrong_one_is_an_internal_error(
    start_greeter: StartGreeter, start_caller: StartCaller
) -> None:
    greeter = await start_greeter(auth_tokens=TOKENS)
    good = await start_caller(greeter.port, greeter_client={"auth_token": "token-beta-91c2"})
    bad = await start_caller(greeter.port, greeter_client={"auth_token": "not-a-token"})
    request = caller_pb2.IntroduceRequest(name="Ada")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{good.port}") as channel:
        reply = await caller_pb2_grpc.CallerServiceStub(channel).Introduce(request, timeout=5)
    assert reply.message == "Hello, Ada!"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bad.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await caller_pb2_grpc.CallerServiceStub(channel).Introduce(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "greeter failed with UNAUTHENTICATED"


async def test_no_secret_reaches_a_log_line(
    start_greeter: StartGreeter, start_caller: StartCaller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    greeter = await start_greeter(auth_tokens=TOKENS)
    caller = await start_caller(greeter.port, greeter_client={"auth_token": "token-beta-91c2"})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{greeter.port}") as channel:
        for token in ("token-alpha-7f3a", "token-guess-0000"):
            with contextlib.suppress(grpc.aio.AioRpcError):  # the guess is refused
                await say_hello(channel, token)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{caller.port}") as channel:
        await caller_pb2_grpc.CallerServiceStub(channel).Introduce(
            caller_pb2.IntroduceRequest(name="Ada"), timeout=5
        )
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "acme.access" in {record.name for record in caplog.records}  # traffic was logged
    for secret in ("token-alpha-7f3a", "token-beta-91c2", "token-guess-0000"):
        assert secret not in logged
    assert "token-alpha" not in repr(greeter.settings)
