"""No log line prints a Python None, in either LOG_FORMAT: greeter, caller and the gateway run
at DEBUG (probes' access lines too) with tracing on (the gateway has no span of its own, and
its access lines printed `trace_id=None`) and tokens required, answer calls that end OK and
that fail (INVALID_ARGUMENT from a rule, UNAUTHENTICATED at the edge and at greeter, an
unknown path, streams), then drain and stop; every line they wrote is read. An absent value is
left out (JSON's `null` stays where a field is always there: the serving line's `admin_port`,
as the Greeter contract pins it)."""

from __future__ import annotations

import asyncio
import json
import re

import grpc
import pytest

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from tests.processes import (
    CALLER_SERVICE,
    GREETER_SERVICE,
    RPC_TIMEOUT,
    ServiceFactory,
    ServiceProcess,
    open_channel,
)

from .gateway_http import post

pytestmark = pytest.mark.integration

TOKEN = "log-token"  # noqa: S105 - greeter's, presented by caller and the gateway
EDGE_TOKEN = "edge-token"  # noqa: S105 - the gateway's own
NONE = re.compile(r"\bNone\b")
JSON = {"content-type": "application/json"}


def through_gateway(gateway: ServiceProcess) -> list[int]:
    """Connect JSON calls through the gateway; their HTTP statuses."""
    bearer = {"authorization": f"Bearer {EDGE_TOKEN}"}
    say_hello = f"/{GREETER_SERVICE}/SayHello"
    calls = [
        (say_hello, b'{"name": "Ada"}', {**JSON, **bearer}),
        (say_hello, b'{"name": ""}', {**JSON, **bearer}),
        (say_hello, b'{"name": "Ada"}', JSON),  # no token
        (f"/{CALLER_SERVICE}/Introduce", b'{"name": "Ada"}', {**JSON, **bearer}),
        (f"/{GREETER_SERVICE}/Nope", b"{}", {**JSON, **bearer}),
    ]
    return [post(gateway.address, path, body, headers).status for path, body, headers in calls]


async def direct(greeter: ServiceProcess, caller: ServiceProcess) -> list[grpc.StatusCode]:
    """gRPC calls to greeter and caller; their status codes."""
    codes: list[grpc.StatusCode] = []
    token = (("authorization", f"Bearer {TOKEN}"),)
    async with open_channel(greeter.address) as channel:
        greeter_stub: greeter_pb2_grpc.GreeterServiceAsyncStub = (
            greeter_pb2_grpc.GreeterServiceStub(channel)
        )
        for metadata in (token, ()):
            try:
                request = greeter_pb2.SayHelloRequest(name="Ada")
                await greeter_stub.SayHello(request, metadata=metadata, timeout=RPC_TIMEOUT)
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
        chat = greeter_stub.Chat(
            iter([greeter_pb2.ChatRequest(name=n) for n in "AB"]), metadata=token, timeout=5
        )
        assert len([reply async for reply in chat]) == 2
    async with open_channel(caller.address) as channel:
        caller_stub = caller_pb2_grpc.CallerServiceStub(channel)
        for name in ("Ada", ""):
            try:
                await caller_stub.Introduce(
                    caller_pb2.IntroduceRequest(name=name), timeout=RPC_TIMEOUT
                )
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
    return codes


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_no_log_line_prints_none(services: ServiceFactory, log_format: str) -> None:
    common = {"LOG_FORMAT": log_format, "LOG_LEVEL": "DEBUG", "TRACING_EXPORTER": "console"}
    greeter = services.start_greeter({**common, "AUTH_TOKENS": TOKEN})
    caller = services.start_caller(greeter.address, {**common, "GREETER_AUTH_TOKEN": TOKEN})
    gateway = services.start_gateway(
        {
            **common,
            "AUTH_TOKENS": EDGE_TOKEN,
            "GATEWAY_SERVICES": f"{CALLER_SERVICE},{GREETER_SERVICE}",
            "CALLER_TARGET": caller.address,
            "GREETER_TARGET": greeter.address,
            "GREETER_AUTH_TOKEN": TOKEN,
        }
    )
    assert await asyncio.to_thread(through_gateway, gateway) == [200, 400, 401, 200, 404]
    OK, INVALID, UNAUTHENTICATED = (  # noqa: N806
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert await direct(greeter, caller) == [OK, UNAUTHENTICATED, OK, INVALID]
    services.stop_all()  # the drain's and the stop's lines too

    expected = {
        greeter: {"OK", "INVALID_ARGUMENT", "UNAUTHENTICATED"},
        caller: {"OK", "INVALID_ARGUMENT"},
        gateway: {"OK", "INVALID_ARGUMENT", "UNAUTHENTICATED"},
    }
    for process, codes in expected.items():
        lines = process.log_text().splitlines()
        printed_none = [line for line in lines if NONE.search(line)]
        assert not printed_none, f"{process.module} printed None:\n" + "\n".join(printed_none)
        assert codes <= logged_codes(lines, log_format), f"{process.module}: calls not logged"


ACCESS_CODE = re.compile(r" acme\.access: rpc .*\bcode=(\w+)")


def logged_codes(lines: list[str], log_format: str) -> set[str]:
    """The status codes of the access lines among lines; for JSON, checking that no access
    line has a field without a value."""
    if log_format == "text":
        return {found.group(1) for line in lines if (found := ACCESS_CODE.search(line))}
    records = [json.loads(line) for line in lines if line.startswith('{"time"')]
    access = [record for record in records if record["message"] == "rpc"]
    with_null = [record for record in access if None in record.values()]
    assert not with_null, f"access lines with null: {with_null}"
    return {record["code"] for record in access}
