"""The errors a rule raises reach a real client over a real socket with their code, message
and google.rpc detail; and libs/common-go's rpcerr answers each case exactly as acme_common
does: `python libs/common/tests/test_error_vocabulary.py` rewrites
libs/common-go/rpcerr/testdata/errors_cases.json (each case's input and the google.rpc.Status
it becomes, as proto3 JSON), which the Go tests (rpcerr_test.go) check rpcerr against, and
which the test below keeps equal to what the Python errors answer."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2

import acme_common
from acme_common import (
    FieldViolation,
    PreconditionViolation,
    ServerSettings,
    Service,
    ServiceError,
    ServiceHost,
    status_details,
)

ROOT = Path(__file__).resolve().parents[3]
CASES_FILE = ROOT / "libs/common-go/rpcerr/testdata/errors_cases.json"
SERVICE = "test.v1.ErrorsService"

# (class name, arguments) of each case, as JSON: `violations` are the positional
# FieldViolation / PreconditionViolation fields, everything else keyword arguments.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("InvalidArgument", {"violations": [["name", "must not be empty"]]}),
    ("InvalidArgument", {"violations": [[f"names[{i}]", "ж" * 200] for i in range(10)]}),
    ("InvalidArgument", {"violations": [["x" * 100, "a path cut to 64 bytes"]]}),
    ("OutOfRange", {"violations": [["page", "must be at most 7, got 9"]]}),
    ("FailedPrecondition", {"violations": [["STATE", "orders/o-1", "already shipped"]]}),
    ("FailedPrecondition", {"violations": [["T" * 80, "s" * 100, "é" * 300]] * 9}),
    ("NotFound", {"resource_type": "order", "resource_name": "o-1"}),
    ("NotFound", {"resource_type": "order", "resource_name": "😀" * 40, "owner": "user:ada"}),
    ("NotFound", {"resource_type": "r" * 300, "resource_name": "x" * 300}),
    (
        "AlreadyExists",
        {
            "resource_type": "type.googleapis.com/acme.orders.v1.Order",
            "resource_name": "o-1",
            "description": "order o-1 exists: pick another id",
        },
    ),
    (
        "PermissionDenied",
        {
            "message": "only the buyer may cancel",
            "reason": "NOT_ORDER_OWNER",
            "metadata": {"order": "o-1"},
        },
    ),
    (
        "Unauthenticated",
        {
            "message": "the session has expired",
            "reason": "SESSION_EXPIRED",
            "domain": "orders.acme.example",
        },
    ),
    (
        "Aborted",
        {
            "message": "changed meanwhile",
            "reason": "VERSION_MISMATCH",
            "metadata": {"found": "ж" * 200},
        },
    ),
    (
        "Unimplemented",
        {"message": "ж" * 300, "reason": "GIFT_WRAP_UNSUPPORTED", "domain": "d" * 100},
    ),
    ("ResourceExhausted", {"message": "a stream may carry at most 3 names"}),
    ("Unavailable", {"message": "x" * 600}),
    ("DeadlineExceeded", {"message": "the inventory did not answer in time"}),
]
VIOLATION_TYPES = {
    "InvalidArgument": FieldViolation,
    "OutOfRange": FieldViolation,
    "FailedPrecondition": PreconditionViolation,
}


def build(kind: str, arguments: dict[str, Any]) -> ServiceError:
    """The error a case describes, built from acme_common's public names."""
    error_type = getattr(acme_common, kind)
    if kind in VIOLATION_TYPES:
        violations = (VIOLATION_TYPES[kind](*fields) for fields in arguments["violations"])
        error: ServiceError = error_type(*violations)
        return error
    built: ServiceError = error_type(**arguments)
    return built


def sent_status(error: ServiceError) -> status_pb2.Status:
    details = dict(error.to_status().trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(details, bytes)
    return status_pb2.Status.FromString(details)


def render() -> str:
    """The cases file: each case's input and the google.rpc.Status it becomes (proto3 JSON)."""
    cases = [
        {
            "error": kind,
            "arguments": arguments,
            "status": json_format.MessageToDict(sent_status(build(kind, arguments))),
        }
        for kind, arguments in CASES
    ]
    return json.dumps(cases, indent=1, ensure_ascii=False) + "\n"


def test_the_go_cases_are_what_acme_common_answers() -> None:
    assert CASES_FILE.read_text(encoding="utf-8") == render(), (
        "acme_common's errors answer differently: run `python libs/common/tests/"
        "test_error_vocabulary.py`, then `go test ./...` in libs/common-go"
    )


async def raise_case(request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    kind, arguments = CASES[int(request)]
    raise build(kind, arguments)


def add_errors_service(server: grpc.aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Raise": grpc.unary_unary_rpc_method_handler(raise_case)}
    )
    server.add_generic_rpc_handlers((handler,))


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    settings = ServerSettings(grpc_host="127.0.0.1", grpc_port=0, grpc_grace_period=1)
    host = ServiceHost(settings, [Service(SERVICE, add_errors_service)])
    await host.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            yield channel
    finally:
        await host.stop()


@pytest.mark.parametrize(
    "index", range(len(CASES)), ids=[f"{i}-{kind}" for i, (kind, _) in enumerate(CASES)]
)
async def test_each_error_reaches_a_client_with_its_code_message_and_detail(
    channel: grpc.aio.Channel, index: int
) -> None:
    kind, arguments = CASES[index]
    raised = build(kind, arguments)
    method = channel.unary_unary(f"/{SERVICE}/Raise", None, None)
    with pytest.raises(grpc.aio.AioRpcError) as answer:
        await method(str(index).encode(), timeout=5)
    assert answer.value.code() == raised.code
    assert answer.value.details() == raised.message
    received = status_details(answer.value)
    assert received is not None
    assert received == sent_status(raised)
    assert [detail.TypeName() for detail in received.details] == [
        detail.DESCRIPTOR.full_name for detail in raised.details()
    ]


if __name__ == "__main__":
    CASES_FILE.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {CASES_FILE.relative_to(ROOT)}\n")
