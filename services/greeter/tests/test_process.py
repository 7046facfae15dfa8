"""Greeter's four RPCs called directly over grpc.aio, with valid and invalid input."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from acme.greeter.v1 import greeter_pb2
from acme_common import field_violations, status_details
from tests.processes import EOF, GREETER_INSTANCE, RPC_TIMEOUT

if TYPE_CHECKING:
    from acme.greeter.v1.greeter_pb2_grpc import GreeterServiceAsyncStub as Stub

pytestmark = pytest.mark.integration


async def read_chat(
    call: grpc.aio.StreamStreamCall[greeter_pb2.ChatRequest, greeter_pb2.ChatResponse],
) -> greeter_pb2.ChatResponse:
    reply = await call.read()
    assert isinstance(reply, greeter_pb2.ChatResponse), f"expected a reply, got {reply!r}"
    return reply


async def test_say_hello_greets_and_names_its_instance(greeter_stub: Stub) -> None:
    reply = await greeter_stub.SayHello(
        greeter_pb2.SayHelloRequest(name="Ada"), timeout=RPC_TIMEOUT
    )
    assert reply.message == "Hello, Ada!"
    assert reply.served_by == GREETER_INSTANCE


@pytest.mark.parametrize(
    ("name", "language", "expected"),
    [
        ("Ada", "fr", "Bonjour, Ada !"),
        ("Ada", "ES", "¡Hola, Ada!"),
        ("  Grace  ", "", "Hello, Grace!"),
    ],
)
async def test_say_hello_language_and_trimming(
    greeter_stub: Stub, name: str, language: str, expected: str
) -> None:
    reply = await greeter_stub.SayHello(
        greeter_pb2.SayHelloRequest(name=name, language=language), timeout=RPC_TIMEOUT
    )
    assert reply.message == expected


async def test_say_hello_languages_streams_one_reply_per_language_in_order(
    greeter_stub: Stub,
) -> None:
    call = greeter_stub.SayHelloLanguages(
        greeter_pb2.SayHelloLanguagesRequest(name="Ada", languages=["fr", "en", "de", "it"]),
        timeout=RPC_TIMEOUT,
    )
    replies = [(reply.language, reply.message) async for reply in call]
    assert replies == [
        ("fr", "Bonjour, Ada !"),
        ("en", "Hello, Ada!"),
        ("de", "Hallo, Ada!"),
        ("it", "Ciao, Ada!"),
    ]
    assert await call.code() == grpc.StatusCode.OK


async def test_say_hello_languages_without_languages_uses_every_supported_one(
    greeter_stub: Stub,
) -> None:
    call = greeter_stub.SayHelloLanguages(
        greeter_pb2.SayHelloLanguagesRequest(name="Ada"), timeout=RPC_TIMEOUT
    )
    languages = [reply.language async for reply in call]
    assert languages == ["de", "en", "es", "fr", "it", "pt"]


async def test_greet_many_summarises_the_client_stream(greeter_stub: Stub) -> None:
    call = greeter_stub.GreetMany(None, timeout=RPC_TIMEOUT)
    for name in ["Ada", "Alan", "Grace"]:
        await call.write(greeter_pb2.GreetManyRequest(name=name))
    await call.done_writing()
    reply = await call
    assert reply.message == "Hello, Ada, Alan and Grace!"
    assert reply.count == 3


async def test_chat_answers_each_message_before_the_next_is_sent(greeter_stub: Stub) -> None:
    call = greeter_stub.Chat(None, timeout=RPC_TIMEOUT)
    for sequence, name in enumerate(["Ada", "Alan", "Grace"], start=1):
        await call.write(greeter_pb2.ChatRequest(name=name))
        reply = await read_chat(call)  # answered while the request side is still open
        assert (reply.sequence, reply.message) == (sequence, f"Hello, {name}!")
    await call.done_writing()
    assert await call.read() is EOF
    assert await call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("name", "language", "field", "description"),
    [
        ("", "", "name", "must not be empty"),
        (" \t  ", "", "name", "must not be empty"),
        ("x" * 101, "", "name", "must be at most 100 characters, got 101"),
        ("Ada", "xx", "language", "unsupported 'xx'; supported: de, en, es, fr, it, pt"),
    ],
    ids=["empty", "whitespace", "101-chars", "unsupported-language"],
)
async def test_say_hello_rejects_invalid_input_with_field_violations(
    greeter_stub: Stub, name: str, language: str, field: str, description: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await greeter_stub.SayHello(
            greeter_pb2.SayHelloRequest(name=name, language=language), timeout=RPC_TIMEOUT
        )
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"{field}: {description}"
    violations = field_violations(status_details(error))
    assert [(v.field, v.description) for v in violations] == [(field, description)]

    # The server is unharmed: the next good call is answered.
    reply = await greeter_stub.SayHello(
        greeter_pb2.SayHelloRequest(name="Ada"), timeout=RPC_TIMEOUT
    )
    assert reply.message == "Hello, Ada!"


async def test_say_hello_accepts_exactly_100_characters(greeter_stub: Stub) -> None:
    name = "y" * 100
    reply = await greeter_stub.SayHello(greeter_pb2.SayHelloRequest(name=name), timeout=RPC_TIMEOUT)
    assert reply.message == f"Hello, {name}!"


async def test_say_hello_languages_names_the_bad_language_index(greeter_stub: Stub) -> None:
    call = greeter_stub.SayHelloLanguages(
        greeter_pb2.SayHelloLanguagesRequest(name="Ada", languages=["en", "klingon"]),
        timeout=RPC_TIMEOUT,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        _ = [reply async for reply in call]
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(status_details(raised.value))
    assert [v.field for v in violations] == ["languages[1]"]


async def test_greet_many_names_the_bad_message(greeter_stub: Stub) -> None:
    call = greeter_stub.GreetMany(None, timeout=RPC_TIMEOUT)
    await call.write(greeter_pb2.GreetManyRequest(name="Ada"))
    await call.write(greeter_pb2.GreetManyRequest(name="   "))
    await call.done_writing()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(status_details(raised.value))
    assert [(v.field, v.description) for v in violations] == [
        ("name (message 2)", "must not be empty")
    ]


async def test_greet_many_rejects_an_empty_stream(greeter_stub: Stub) -> None:
    call = greeter_stub.GreetMany(None, timeout=RPC_TIMEOUT)
    await call.done_writing()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "name: the stream must contain at least one name"


async def test_chat_ends_with_invalid_argument_on_a_bad_name(greeter_stub: Stub) -> None:
    call = greeter_stub.Chat(None, timeout=RPC_TIMEOUT)
    await call.write(greeter_pb2.ChatRequest(name="Ada"))
    assert (await read_chat(call)).sequence == 1
    await call.write(greeter_pb2.ChatRequest(name=""))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call.read()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(status_details(raised.value))
    assert [(v.field, v.description) for v in violations] == [("name", "must not be empty")]
