"""The client side of gRPC's interop cases (doc/interop-test-descriptions.md in grpc/grpc,
"Client"), in Python with grpc.aio: grpc's own Python interop client is not on PyPI (it lives
in grpc's repository, src/python/grpcio_tests/tests/interop), so each case is written from
the descriptions, request sizes and assertions as they say.

CASES maps a case's name to its coroutine; each takes a channel and the generated stubs
(grpc_testing_stubs.py) and raises AssertionError (or the call's AioRpcError) when the server
does not answer as the description says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from tests.interop import grpc_testing_stubs
from tests.processes import EOF

ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")
CALL_TIMEOUT = 30.0  # seconds; every call has a deadline, so a stuck case fails instead of hanging
STATUS_MESSAGE = "test status message"
SPECIAL_STATUS_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
REQUEST_SIZES = (27182, 8, 1828, 45904)
RESPONSE_SIZES = (31415, 9, 2653, 58979)


@dataclass(frozen=True)
class Stubs:
    """The generated modules, loaded once from a directory grpc_testing_stubs filled."""

    empty: Any
    messages: Any
    test_grpc: Any

    @classmethod
    def load(cls, directory: Any) -> Stubs:
        return cls(
            grpc_testing_stubs.load(directory, "empty_pb2"),
            grpc_testing_stubs.load(directory, "messages_pb2"),
            grpc_testing_stubs.load(directory, "test_pb2_grpc"),
        )

    def payload(self, size: int) -> Any:
        return self.messages.Payload(body=bytes(size))

    def streaming_request(self, response_size: int | None, payload_size: int) -> Any:
        request = self.messages.StreamingOutputCallRequest(payload=self.payload(payload_size))
        if response_size is not None:
            request.response_parameters.add(size=response_size)
        return request


Case = Callable[[grpc.aio.Channel, Stubs], Awaitable[None]]


async def _error_of(call: Awaitable[Any]) -> grpc.aio.AioRpcError | None:
    """The error a unary call ended with (None: it succeeded)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error
    return None


def _zeros(payload: Any, size: int) -> None:
    body = payload.body
    assert len(body) == size, f"payload of {len(body)} bytes, expected {size}"
    assert body == bytes(size), "payload is not all zeros"


async def empty_unary(channel: grpc.aio.Channel, s: Stubs) -> None:
    reply = await s.test_grpc.TestServiceStub(channel).EmptyCall(
        s.empty.Empty(), timeout=CALL_TIMEOUT
    )
    assert reply == s.empty.Empty()


def _large_request(s: Stubs) -> Any:
    return s.messages.SimpleRequest(
        response_type=s.messages.COMPRESSABLE, response_size=314159, payload=s.payload(271828)
    )


async def large_unary(channel: grpc.aio.Channel, s: Stubs) -> None:
    stub = s.test_grpc.TestServiceStub(channel)
    reply = await stub.UnaryCall(_large_request(s), timeout=CALL_TIMEOUT)
    _zeros(reply.payload, 314159)


async def client_streaming(channel: grpc.aio.Channel, s: Stubs) -> None:
    requests = [s.messages.StreamingInputCallRequest(payload=s.payload(n)) for n in REQUEST_SIZES]
    stub = s.test_grpc.TestServiceStub(channel)
    reply = await stub.StreamingInputCall(iter(requests), timeout=CALL_TIMEOUT)
    assert reply.aggregated_payload_size == 74922, reply.aggregated_payload_size


async def server_streaming(channel: grpc.aio.Channel, s: Stubs) -> None:
    request = s.messages.StreamingOutputCallRequest(
        response_parameters=[s.messages.ResponseParameters(size=n) for n in RESPONSE_SIZES]
    )
    call = s.test_grpc.TestServiceStub(channel).StreamingOutputCall(request, timeout=CALL_TIMEOUT)
    replies = [reply async for reply in call]
    assert [len(r.payload.body) for r in replies] == list(RESPONSE_SIZES)
    for reply, size in zip(replies, RESPONSE_SIZES, strict=True):
        _zeros(reply.payload, size)
    assert await call.code() == grpc.StatusCode.OK


async def ping_pong(channel: grpc.aio.Channel, s: Stubs) -> None:
    call = s.test_grpc.TestServiceStub(channel).FullDuplexCall(timeout=CALL_TIMEOUT)
    for response_size, payload_size in zip(RESPONSE_SIZES, REQUEST_SIZES, strict=True):
        await call.write(s.streaming_request(response_size, payload_size))
        reply = await call.read()
        assert reply is not EOF, "the stream ended before its reply"
        _zeros(reply.payload, response_size)
    await call.done_writing()
    assert await call.read() is EOF, "more than four replies"
    assert await call.code() == grpc.StatusCode.OK


async def empty_stream(channel: grpc.aio.Channel, s: Stubs) -> None:
    call = s.test_grpc.TestServiceStub(channel).FullDuplexCall(timeout=CALL_TIMEOUT)
    await call.done_writing()
    assert await call.read() is EOF, "a reply to no request"
    assert await call.code() == grpc.StatusCode.OK


async def timeout_on_sleeping_server(channel: grpc.aio.Channel, s: Stubs) -> None:
    call = s.test_grpc.TestServiceStub(channel).FullDuplexCall(timeout=0.001)
    try:
        await call.write(s.streaming_request(None, 27182))
        await call.read()
    except grpc.aio.AioRpcError:
        pass  # the deadline may pass while writing, or while waiting
    # A server that sees the deadline pass first resets the stream (grpc-go: RST_STREAM
    # CANCEL), which grpc core reports as CANCELLED when it arrives before the client's own
    # deadline timer fires: a race on a loaded machine, seen once with the Go server. Both
    # mean the call ended for its deadline; nothing else may end it.
    code = await call.code()
    assert code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED), code


async def _assert_cancelled(call: Any) -> None:
    assert call.cancel(), "the call had already ended"
    assert await call.code() == grpc.StatusCode.CANCELLED, await call.code()


async def cancel_after_begin(channel: grpc.aio.Channel, s: Stubs) -> None:
    call = s.test_grpc.TestServiceStub(channel).StreamingInputCall(timeout=CALL_TIMEOUT)
    await call.wait_for_connection()
    await _assert_cancelled(call)


async def cancel_after_first_response(channel: grpc.aio.Channel, s: Stubs) -> None:
    call = s.test_grpc.TestServiceStub(channel).FullDuplexCall(timeout=CALL_TIMEOUT)
    await call.write(s.streaming_request(31415, 27182))
    reply = await call.read()
    assert reply is not EOF, "no first reply"
    _zeros(reply.payload, 31415)
    await _assert_cancelled(call)


async def _status_echoed(channel: grpc.aio.Channel, s: Stubs, message: str) -> None:
    """status_code_and_message and special_status_message: UNKNOWN with `message`, from a
    UnaryCall and from a FullDuplexCall."""
    stub = s.test_grpc.TestServiceStub(channel)
    status = s.messages.EchoStatus(code=2, message=message)
    request = s.messages.SimpleRequest(response_status=status)
    error = await _error_of(stub.UnaryCall(request, timeout=CALL_TIMEOUT))
    assert error is not None, "UnaryCall succeeded"
    assert (error.code(), error.details()) == (grpc.StatusCode.UNKNOWN, message), error
    call = stub.FullDuplexCall(timeout=CALL_TIMEOUT)
    await call.write(s.messages.StreamingOutputCallRequest(response_status=status))
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.UNKNOWN, await call.code()
    assert await call.details() == message, await call.details()


async def status_code_and_message(channel: grpc.aio.Channel, s: Stubs) -> None:
    await _status_echoed(channel, s, STATUS_MESSAGE)


async def special_status_message(channel: grpc.aio.Channel, s: Stubs) -> None:
    await _status_echoed(channel, s, SPECIAL_STATUS_MESSAGE)


def _assert_echoed(initial: Any, trailing: Any) -> None:
    assert ECHO_INITIAL in tuple(initial or ()), f"initial metadata {initial}"
    assert ECHO_TRAILING in tuple(trailing or ()), f"trailing metadata {trailing}"


async def custom_metadata(channel: grpc.aio.Channel, s: Stubs) -> None:
    stub = s.test_grpc.TestServiceStub(channel)
    metadata = (ECHO_INITIAL, ECHO_TRAILING)
    unary = stub.UnaryCall(_large_request(s), metadata=metadata, timeout=CALL_TIMEOUT)
    _zeros((await unary).payload, 314159)
    _assert_echoed(await unary.initial_metadata(), await unary.trailing_metadata())

    duplex = stub.FullDuplexCall(metadata=metadata, timeout=CALL_TIMEOUT)
    await duplex.write(s.streaming_request(314159, 271828))
    await duplex.done_writing()
    replies = [reply async for reply in duplex]
    assert len(replies) == 1, f"{len(replies)} replies"
    _zeros(replies[0].payload, 314159)
    assert await duplex.code() == grpc.StatusCode.OK, await duplex.code()
    _assert_echoed(await duplex.initial_metadata(), await duplex.trailing_metadata())


async def _unimplemented(call: Awaitable[Any]) -> None:
    error = await _error_of(call)
    assert error is not None, "the call succeeded"
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED, error


async def unimplemented_method(channel: grpc.aio.Channel, s: Stubs) -> None:
    stub = s.test_grpc.TestServiceStub(channel)
    await _unimplemented(stub.UnimplementedCall(s.empty.Empty(), timeout=CALL_TIMEOUT))


async def unimplemented_service(channel: grpc.aio.Channel, s: Stubs) -> None:
    stub = s.test_grpc.UnimplementedServiceStub(channel)
    await _unimplemented(stub.UnimplementedCall(s.empty.Empty(), timeout=CALL_TIMEOUT))


CASES: dict[str, Case] = {
    case.__name__: case
    for case in (
        empty_unary,
        large_unary,
        client_streaming,
        server_streaming,
        ping_pong,
        empty_stream,
        timeout_on_sleeping_server,
        cancel_after_begin,
        cancel_after_first_response,
        status_code_and_message,
        special_status_message,
        custom_metadata,
        unimplemented_method,
        unimplemented_service,
    )
}
