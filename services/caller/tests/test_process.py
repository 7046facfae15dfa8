"""Caller over the real Greeter: relayed greetings, fan-out with partial failure, and what its
clients see when Greeter is down, hangs, or receives a deadline."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2
from acme_common import field_violations, status_details
from tests.processes import (
    GREETER_INSTANCE,
    HOST,
    RPC_TIMEOUT,
    BlackHole,
    ServiceFactory,
    free_port,
    open_channel,
    stand_in_greeter,
)

if TYPE_CHECKING:
    from acme.caller.v1.caller_pb2_grpc import CallerServiceAsyncStub as Stub

pytestmark = pytest.mark.integration


def caller_stub_for(channel: grpc.aio.Channel) -> Stub:
    return caller_pb2_grpc.CallerServiceStub(channel)


async def test_introduce_relays_the_greeting_of_greeter(caller_stub: Stub) -> None:
    reply = await caller_stub.Introduce(
        caller_pb2.IntroduceRequest(name="Ada"), timeout=RPC_TIMEOUT
    )
    assert reply.message == "Hello, Ada!"
    assert reply.greeter_instance == GREETER_INSTANCE


async def test_introduce_passes_the_language_through(caller_stub: Stub) -> None:
    reply = await caller_stub.Introduce(
        caller_pb2.IntroduceRequest(name="Ada", language="de"), timeout=RPC_TIMEOUT
    )
    assert reply.message == "Hallo, Ada!"


SUPPORTED = "must be one of the supported language tags: de, en, es, fr, it, pt"


@pytest.mark.parametrize(
    ("name", "language", "field", "description"),
    [
        ("   ", "", "name", "must not be empty"),
        ("x" * 101, "", "name", "must be at most 100 characters"),
        ("Ada", "xx", "language", SUPPORTED),
    ],
    ids=["whitespace", "101-chars", "unsupported-language"],
)
async def test_introduce_refuses_what_the_contract_refuses(
    caller_stub: Stub, name: str, language: str, field: str, description: str
) -> None:
    """caller.proto states Greeter's rules of a name and a language: Caller answers with the
    same violations Greeter would, without calling it."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await caller_stub.Introduce(
            caller_pb2.IntroduceRequest(name=name, language=language), timeout=RPC_TIMEOUT
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == f"{field}: {description}"
    violations = field_violations(status_details(raised.value))
    assert [(v.field, v.description) for v in violations] == [(field, description)]


async def test_introduce_all_reports_each_outcome_in_request_order(caller_stub: Stub) -> None:
    names = ["Ada", "Alan", "  ", "Grace", "Edsger"]
    reply = await caller_stub.IntroduceAll(
        caller_pb2.IntroduceAllRequest(names=names), timeout=RPC_TIMEOUT
    )
    assert [item.name for item in reply.introductions] == names
    assert (reply.succeeded, reply.failed) == (4, 1)

    bad = reply.introductions[2]
    assert bad.error_code == "INVALID_ARGUMENT"
    assert bad.error_message == "name: must not be empty"
    assert (bad.message, bad.greeter_instance) == ("", "")

    for item in [reply.introductions[i] for i in (0, 1, 3, 4)]:
        assert item.message == f"Hello, {item.name}!"
        assert item.greeter_instance == GREETER_INSTANCE
        assert (item.error_code, item.error_message) == ("", "")


async def test_introduce_all_uses_the_requested_language(caller_stub: Stub) -> None:
    reply = await caller_stub.IntroduceAll(
        caller_pb2.IntroduceAllRequest(names=["Ada", "Grace"], language="it"),
        timeout=RPC_TIMEOUT,
    )
    assert [item.message for item in reply.introductions] == ["Ciao, Ada!", "Ciao, Grace!"]
    assert (reply.succeeded, reply.failed) == (2, 0)


async def test_introduce_all_accepts_exactly_the_limit(caller_stub: Stub) -> None:
    names = [f"Person {index}" for index in range(100)]
    reply = await caller_stub.IntroduceAll(
        caller_pb2.IntroduceAllRequest(names=names), timeout=RPC_TIMEOUT
    )
    assert (reply.succeeded, reply.failed) == (100, 0)
    assert [item.message for item in reply.introductions] == [f"Hello, {n}!" for n in names]


@pytest.mark.parametrize(
    ("names", "language", "field", "description"),
    [
        ([], "", "names", "must contain at least 1 item(s)"),
        (
            [f"Person {index}" for index in range(101)],
            "",
            "names",
            "must list 1 to 100 names, got 101",
        ),
        (["Ada", "x" * 101], "", "names[1]", "must be at most 100 characters"),
        (["Ada"], "xx", "language", SUPPORTED),
    ],
    ids=["no-names", "over-CALLER_MAX_NAMES", "101-characters", "unsupported-language"],
)
async def test_introduce_all_refuses_a_bad_request_as_a_whole(
    caller_stub: Stub, names: list[str], language: str, field: str, description: str
) -> None:
    """The contract's rules (caller.proto) and CALLER_MAX_NAMES (a setting: caller's rules.py)."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await caller_stub.IntroduceAll(
            caller_pb2.IntroduceAllRequest(names=names, language=language), timeout=RPC_TIMEOUT
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == f"{field}: {description}"
    violations = field_violations(status_details(raised.value))
    assert [(v.field, v.description) for v in violations] == [(field, description)]


async def test_caller_reports_unavailable_when_greeter_is_down(services: ServiceFactory) -> None:
    nobody = f"{HOST}:{free_port()}"
    caller = services.start_caller(nobody, {"GREETER_TIMEOUT": "1"})
    async with open_channel(caller.address) as channel:
        stub = caller_stub_for(channel)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Introduce(caller_pb2.IntroduceRequest(name="Ada"), timeout=3)
        elapsed = time.monotonic() - started
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, raised.value.details()
        # grpc core's text names greeter's address: it stays out of what clients read.
        assert raised.value.details() == "greeter is unavailable"
        assert elapsed < 3

        # The fan-out reports every name as failed rather than failing as a whole.
        reply = await stub.IntroduceAll(
            caller_pb2.IntroduceAllRequest(names=["Ada", "Grace"]), timeout=3
        )
        assert (reply.succeeded, reply.failed) == (0, 2)
        assert [(i.name, i.error_code) for i in reply.introductions] == [
            ("Ada", "UNAVAILABLE"),
            ("Grace", "UNAVAILABLE"),
        ]
        assert [item.error_message for item in reply.introductions] == [
            "greeter is unavailable"
        ] * 2


async def test_caller_propagates_the_client_deadline_to_greeter(
    services: ServiceFactory, black_hole: BlackHole
) -> None:
    # Greeter hangs and GREETER_TIMEOUT=30, so only the client's 0.5 s deadline can end the
    # call. (The client sees its own deadline either way: that Caller hands the *remaining*
    # deadline on to Greeter is proven by test_greeter_receives_the_remaining_client_deadline.)
    caller = services.start_caller(black_hole.address, {"GREETER_TIMEOUT": "30"})
    async with open_channel(caller.address) as channel:
        stub = caller_stub_for(channel)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Introduce(caller_pb2.IntroduceRequest(name="Ada"), timeout=0.5)
        elapsed = time.monotonic() - started
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed < 5
    assert black_hole.accepted >= 1  # the caller really reached the hanging peer
    # Caller's handler ended with the deadline too, instead of holding on for 30 s.
    record = await caller.wait_for_record(method="/acme.caller.v1.CallerService/Introduce")
    assert record["code"] in ("DEADLINE_EXCEEDED", "CANCELLED"), record
    assert record["duration_ms"] < 5000, record


async def test_caller_applies_greeter_timeout_when_the_client_sets_no_deadline(
    services: ServiceFactory, black_hole: BlackHole
) -> None:
    caller = services.start_caller(black_hole.address, {"GREETER_TIMEOUT": "1"})
    async with open_channel(caller.address) as channel:
        stub = caller_stub_for(channel)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            # No client deadline (bounded locally instead): GREETER_TIMEOUT applies.
            await asyncio.wait_for(stub.Introduce(caller_pb2.IntroduceRequest(name="Ada")), 10)
        elapsed = time.monotonic() - started
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert raised.value.details() == "greeter did not answer before the deadline"
    assert 0.8 < elapsed < 5


async def test_greeter_receives_the_remaining_client_deadline(services: ServiceFactory) -> None:
    """A recording stand-in for Greeter shows the deadline Caller actually sends it."""
    seen: list[float | None] = []

    async def say_hello(
        request: greeter_pb2.SayHelloRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> greeter_pb2.SayHelloResponse:
        seen.append(context.time_remaining())
        return greeter_pb2.SayHelloResponse(message=f"Hi {request.name}", served_by="recorder")

    async with stand_in_greeter(say_hello) as address:
        caller = services.start_caller(address, {"GREETER_TIMEOUT": "30"})
        async with open_channel(caller.address) as channel:
            stub = caller_stub_for(channel)
            with_deadline = await stub.Introduce(caller_pb2.IntroduceRequest(name="Ada"), timeout=2)
            without_deadline = await asyncio.wait_for(
                stub.Introduce(caller_pb2.IntroduceRequest(name="Alan")), RPC_TIMEOUT
            )
    assert (with_deadline.message, with_deadline.greeter_instance) == ("Hi Ada", "recorder")
    assert without_deadline.message == "Hi Alan"
    assert len(seen) == 2
    propagated, default = seen
    assert propagated is not None
    assert 0 < propagated < 2.5  # grpc-timeout may round up a little on the wire
    assert default is not None
    assert 25 < default < 31
