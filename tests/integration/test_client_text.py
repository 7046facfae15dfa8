"""Client-controlled text that a service repeats in headers or trailers: request ids passed
on to greeter, and input echoed in error statuses. Whatever a client sends, the answer is the
status the input deserves, within its deadline, at every hop."""

from __future__ import annotations

import time

import grpc
import pytest

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import field_violations, status_details
from acme_devkit.raw_http2 import raw_unary_call
from tests.processes import CALLER_SERVICE, RPC_TIMEOUT, ServiceFactory, ServiceProcess

pytestmark = pytest.mark.integration

GREETER_TIMEOUT = 2.0  # caller's deadline for its greeter calls in these tests


@pytest.mark.parametrize(
    "request_id",
    [
        pytest.param("café-1".encode(), id="non-ascii"),
        pytest.param(b"\xff\xfeid", id="invalid-utf8"),
        pytest.param(b"with space", id="space"),
        pytest.param(b"tab\tid", id="tab"),
        pytest.param(b"x" * 129, id="too-long"),
    ],
)
async def test_a_request_id_that_cannot_be_passed_on_is_replaced(
    services: ServiceFactory, request_id: bytes
) -> None:
    # Legal to receive (servers take any bytes), not legal to send on: grpc refuses such a
    # value, which once left caller's Greeter call without a status and its handler parked.
    greeter = services.start_greeter()
    caller = services.start_caller(greeter.address, {"GREETER_TIMEOUT": str(GREETER_TIMEOUT)})
    started = time.monotonic()
    reply = await raw_unary_call(
        caller.address,
        f"/{CALLER_SERVICE}/Introduce",
        caller_pb2.IntroduceRequest(name="Ada").SerializeToString(),
        (("x-request-id", request_id),),
        within=GREETER_TIMEOUT + 3,
    )
    elapsed = time.monotonic() - started
    assert (reply.status, reply.message) == (0, ""), reply
    assert elapsed < GREETER_TIMEOUT
    assert caller_pb2.IntroduceResponse.FromString(reply.data[5:]).message == "Hello, Ada!"
    introduced = await caller.wait_for_record(method=f"/{CALLER_SERVICE}/Introduce")
    generated = introduced["request_id"]
    assert len(generated) == 32, "not a new request id"
    greeted = await greeter.wait_for_record(message="rpc", request_id=generated)
    assert greeted["code"] == "OK"


async def test_a_sendable_request_id_is_passed_on_unchanged(
    services: ServiceFactory,
) -> None:
    greeter = services.start_greeter()
    caller = services.start_caller(greeter.address)
    request_id = "req-1:/+=_.~" + "x" * 116  # visible ASCII, 128 characters
    reply = await raw_unary_call(
        caller.address,
        f"/{CALLER_SERVICE}/Introduce",
        caller_pb2.IntroduceRequest(name="Ada").SerializeToString(),
        (("x-request-id", request_id),),
    )
    assert reply.status == 0, reply
    assert (await caller.wait_for_record(message="rpc"))["request_id"] == request_id
    assert (await greeter.wait_for_record(message="rpc"))["request_id"] == request_id


# Lengths around grpc's metadata limits (8 KiB soft, 16 KiB hard), up to far beyond them but
# under the message limit (GRPC_MAX_MESSAGE_BYTES, 256 KiB): the answer must not depend on them.
LENGTHS = [40, 3_000, 5_000, 8_000, 20_000, 250_000]
SHORT = 300  # characters: a message or description longer than this repeats too much input


def assert_language_violation(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert len(error.details() or "") < SHORT
    violations = field_violations(status_details(error))
    assert [v.field for v in violations] == ["language"]
    assert "supported language tags" in violations[0].description
    assert len(violations[0].description) < SHORT


@pytest.mark.parametrize("length", LENGTHS)
async def test_long_input_is_invalid_argument_at_every_hop(
    greeter_stub: greeter_pb2_grpc.GreeterServiceAsyncStub,
    caller_stub: caller_pb2_grpc.CallerServiceAsyncStub,
    length: int,
) -> None:
    language = "x" * length
    with pytest.raises(grpc.aio.AioRpcError) as direct:
        await greeter_stub.SayHello(
            greeter_pb2.SayHelloRequest(name="Ada", language=language), timeout=RPC_TIMEOUT
        )
    assert_language_violation(direct.value)
    with pytest.raises(grpc.aio.AioRpcError) as through_caller:
        await caller_stub.Introduce(
            caller_pb2.IntroduceRequest(name="Ada", language=language), timeout=RPC_TIMEOUT
        )
    assert_language_violation(through_caller.value)
    with pytest.raises(grpc.aio.AioRpcError) as fan_out:
        await caller_stub.IntroduceAll(
            caller_pb2.IntroduceAllRequest(names=["Ada", "Alan"], language=language),
            timeout=RPC_TIMEOUT,
        )
    assert_language_violation(fan_out.value)


async def test_caller_still_serves_after_long_input(caller: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(caller.address) as channel:
        stub = caller_pb2_grpc.CallerServiceStub(channel)
        reply = await stub.Introduce(caller_pb2.IntroduceRequest(name="Ada"), timeout=RPC_TIMEOUT)
    assert reply.message == "Hello, Ada!"


async def test_long_names_are_refused_before_the_reply_could_repeat_them(
    caller_stub: caller_pb2_grpc.CallerServiceAsyncStub,
) -> None:
    # IntroduceAll repeats every name in its reply: 100 names of 2,000 characters would ask
    # for a reply of 200 KB per request, past the message limit at larger sizes.
    names = [f"{index}" + "x" * 2000 for index in range(100)]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await caller_stub.IntroduceAll(
            caller_pb2.IntroduceAllRequest(names=names), timeout=RPC_TIMEOUT
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(raised.value.details() or "") < 600
    violations = field_violations(status_details(raised.value))
    assert [v.field for v in violations] == [f"names[{index}]" for index in range(8)]
