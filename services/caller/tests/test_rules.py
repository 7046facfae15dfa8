"""How Greeter's failures are reported to Caller's clients."""

from __future__ import annotations

import grpc
import pytest

from acme_common import FieldViolation, InvalidArgument, field_violations
from caller.rules import check_names, greeter_failure_message, translate_greeter_error


def greeter_error(
    code: grpc.StatusCode, details: str, trailing: grpc.aio.Metadata | None = None
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), trailing or grpc.aio.Metadata(), details, None
    )


@pytest.mark.parametrize(
    ("greeter_code", "caller_code"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INVALID_ARGUMENT),
        (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.DEADLINE_EXCEEDED),
        (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE),
        (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE),
        (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL),
        (grpc.StatusCode.INTERNAL, grpc.StatusCode.INTERNAL),
        (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL),
    ],
)
def test_status_mapping(greeter_code: grpc.StatusCode, caller_code: grpc.StatusCode) -> None:
    translated = translate_greeter_error(greeter_error(greeter_code, "boom"))
    assert translated.code == caller_code
    assert translated.message


def test_field_violations_survive_the_hop() -> None:
    status = InvalidArgument(FieldViolation("name", "must not be empty")).to_status()
    error = greeter_error(status.code, status.details, grpc.aio.Metadata(*status.trailing_metadata))
    translated = translate_greeter_error(error)
    assert isinstance(translated, InvalidArgument)
    assert translated.violations == (FieldViolation("name", "must not be empty"),)
    assert field_violations(None) == []


CORE_TEXT = "connections to all backends failing; last error: UNKNOWN: ipv4:10.1.2.3:50051"


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ],
)
def test_grpc_core_text_never_reaches_callers_clients(code: grpc.StatusCode) -> None:
    error = greeter_error(code, CORE_TEXT)
    for message in (greeter_failure_message(error), translate_greeter_error(error).message):
        assert "10.1.2.3" not in message
        assert message.startswith("greeter ")


def test_greeters_validation_message_stays() -> None:
    error = greeter_error(grpc.StatusCode.INVALID_ARGUMENT, "name: must not be empty")
    assert greeter_failure_message(error) == "name: must not be empty"


def test_name_lists_are_checked_against_the_setting() -> None:
    check_names(["Ada"] * 3, max_names=3)
    with pytest.raises(InvalidArgument) as raised:
        check_names(["Ada"] * 4, max_names=3)
    assert raised.value.violations == (FieldViolation("names", "must list 1 to 3 names, got 4"),)
