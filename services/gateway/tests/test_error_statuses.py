"""Every error a rule raises (acme_common's vocabulary), raised by a service behind a real
gateway process and asked for as JSON over HTTP/1.1 (as curl does) and as gRPC-Web: the
Connect code and HTTP status the Connect protocol gives its gRPC code
(connectrpc.com/docs/protocol#error-codes), the service's message, and its google.rpc detail,
as base64 protobuf (`value`) and as JSON (`debug`), equal to what the rule raised."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2

from acme.greeter.v1 import greeter_pb2
from acme_common import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    PreconditionViolation,
    ResourceExhausted,
    ServerSettings,
    Service,
    ServiceError,
    ServiceHost,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from tests.integration.gateway_http import (
    TRAILERS,
    envelopes,
    grpc_web,
    grpc_web_trailers,
    post,
    unbase64,
)
from tests.processes import GREETER_SERVICE, HOST, ServiceFactory

pytestmark = pytest.mark.integration

SAY_HELLO = f"/{GREETER_SERVICE}/SayHello"

# The errors a rule raises, one of each class; a stand-in Greeter raises ERRORS[int(name)].
ERRORS: list[ServiceError] = [
    InvalidArgument(FieldViolation("name", "must not be empty")),
    OutOfRange(FieldViolation("page", "must be at most 7, got 9")),
    FailedPrecondition(PreconditionViolation("STATE", "orders/o-1", "the order is shipped")),
    NotFound(resource_type="order", resource_name="o-1"),
    AlreadyExists(resource_type="order", resource_name="o-1", owner="user:ada"),
    PermissionDenied(
        "only the buyer may cancel", reason="NOT_ORDER_OWNER", metadata={"order": "o-1"}
    ),
    Unauthenticated("the session has expired", reason="SESSION_EXPIRED"),
    Aborted("the order changed meanwhile", reason="VERSION_MISMATCH"),
    Unimplemented("gift wrapping is not offered", reason="GIFT_WRAP_UNSUPPORTED"),
    ResourceExhausted("a stream may carry at most 3 names"),
    Unavailable("the inventory is down"),
    DeadlineExceeded("the inventory did not answer in time"),
]

# The Connect code and HTTP status of each gRPC code (connectrpc.com/docs/protocol#error-codes).
CONNECT = {
    grpc.StatusCode.INVALID_ARGUMENT: ("invalid_argument", 400),
    grpc.StatusCode.OUT_OF_RANGE: ("out_of_range", 400),
    grpc.StatusCode.FAILED_PRECONDITION: ("failed_precondition", 400),
    grpc.StatusCode.NOT_FOUND: ("not_found", 404),
    grpc.StatusCode.ALREADY_EXISTS: ("already_exists", 409),
    grpc.StatusCode.PERMISSION_DENIED: ("permission_denied", 403),
    grpc.StatusCode.UNAUTHENTICATED: ("unauthenticated", 401),
    grpc.StatusCode.ABORTED: ("aborted", 409),
    grpc.StatusCode.UNIMPLEMENTED: ("unimplemented", 501),
    grpc.StatusCode.RESOURCE_EXHAUSTED: ("resource_exhausted", 429),
    grpc.StatusCode.UNAVAILABLE: ("unavailable", 503),
    grpc.StatusCode.DEADLINE_EXCEEDED: ("deadline_exceeded", 504),
}


async def say_hello(
    request: greeter_pb2.SayHelloRequest, _context: grpc.aio.ServicerContext[object, object]
) -> greeter_pb2.SayHelloResponse:
    raise ERRORS[int(request.name)]


def add_stand_in_greeter(server: grpc.aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        GREETER_SERVICE,
        {
            "SayHello": grpc.unary_unary_rpc_method_handler(
                say_hello,
                request_deserializer=greeter_pb2.SayHelloRequest.FromString,
                response_serializer=greeter_pb2.SayHelloResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))


@pytest.fixture
async def gateway_address(services: ServiceFactory) -> AsyncIterator[str]:
    """A real gateway exposing Greeter, in front of the stand-in (acme_common's server, in
    this test's event loop: the blocking calls below run in threads)."""
    settings = ServerSettings(grpc_host=HOST, grpc_port=0, grpc_grace_period=1)
    host = ServiceHost(settings, [Service(GREETER_SERVICE, add_stand_in_greeter)])
    await host.start()
    try:
        env = {"GATEWAY_SERVICES": GREETER_SERVICE, "GREETER_TARGET": f"{HOST}:{host.port}"}
        gateway = await asyncio.to_thread(services.start_gateway, env)
        yield gateway.address
    finally:
        await host.stop()


async def test_each_error_reaches_json_and_grpc_web_clients_with_its_code_and_detail(
    gateway_address: str,
) -> None:
    for index, raised in enumerate(ERRORS):
        await asyncio.to_thread(check_json, gateway_address, index, raised)
        await asyncio.to_thread(check_grpc_web, gateway_address, index, raised)


def check_json(gateway_address: str, index: int, raised: ServiceError) -> None:
    """Connect JSON over HTTP/1.1: code, HTTP status, message, each detail's value and debug."""
    body = json.dumps({"name": str(index)}).encode()
    response = post(gateway_address, SAY_HELLO, body, {"content-type": "application/json"})
    code, http_status = CONNECT[raised.code]
    what = f"{type(raised).__name__}: {response.body!r}"
    assert (response.status, response.headers["content-type"]) == (
        http_status,
        "application/json",
    ), what
    error = response.json()
    assert (error["code"], error["message"]) == (code, raised.message), what
    expected = raised.details()
    assert len(error.get("details", [])) == len(expected), what
    for sent, detail in zip(error.get("details", []), expected, strict=True):
        assert sent["type"] == detail.DESCRIPTOR.full_name, what
        assert type(detail).FromString(unbase64(sent["value"])) == detail, what
        assert sent["debug"] == json_format.MessageToDict(detail), what


def check_grpc_web(gateway_address: str, index: int, raised: ServiceError) -> None:
    """gRPC-Web: grpc-status and the google.rpc.Status's details in the trailers frame."""
    response = grpc_web(gateway_address, SAY_HELLO, greeter_pb2.SayHelloRequest(name=str(index)))
    assert response.status == 200, response.body
    [(flags, payload)] = envelopes(response.body)
    assert flags == TRAILERS
    trailers = grpc_web_trailers(payload)
    assert trailers["grpc-status"] == str(raised.code.value[0]), trailers
    # grpc-status-details-bin is left out when the status has no details
    sent = unbase64(trailers.get("grpc-status-details-bin", ""))
    details = status_pb2.Status.FromString(sent).details
    assert [detail.TypeName() for detail in details] == [
        detail.DESCRIPTOR.full_name for detail in raised.details()
    ], trailers
    for packed, detail in zip(details, raised.details(), strict=True):
        assert type(detail).FromString(packed.value) == detail
