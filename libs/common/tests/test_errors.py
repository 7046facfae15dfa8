"""errors: bounded statuses whatever text a client sent, and their rich details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from acme_common._errors import (
    ERROR_DOMAIN,
    MAX_DESCRIPTION_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_NAME_BYTES,
    MAX_VIOLATIONS,
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
    ServiceError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    echo,
    field_violations,
    truncate,
)

HUGE = "ж" * 100_000  # 200 000 bytes of UTF-8

# Each error built from the largest input a client could make it carry.
HOSTILE: list[ServiceError] = [
    InvalidArgument(*(FieldViolation(HUGE, HUGE) for _ in range(50))),
    OutOfRange(*(FieldViolation(HUGE, HUGE) for _ in range(50))),
    FailedPrecondition(*(PreconditionViolation(HUGE, HUGE, HUGE) for _ in range(50))),
    NotFound(resource_type=HUGE, resource_name=HUGE, owner=HUGE),
    AlreadyExists(resource_type=HUGE, resource_name=HUGE, owner=HUGE, description=HUGE),
    *(
        kind(
            HUGE,
            reason="R" * 63,
            domain=HUGE,
            metadata={f"k{i}" + "x" * 62: HUGE for i in range(8)},
        )
        for kind in (PermissionDenied, Unauthenticated, Aborted, Unimplemented)
    ),
    ResourceExhausted(HUGE),
    Unavailable(HUGE),
    DeadlineExceeded(HUGE),
]


def status_of(error: ServiceError) -> status_pb2.Status:
    """The google.rpc.Status error sends (grpc-status-details-bin)."""
    details = dict(error.to_status().trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(details, bytes)
    return status_pb2.Status.FromString(details)


def test_echo_repeats_short_text_and_cuts_long_text() -> None:
    assert echo("fr") == "'fr'"
    cut = echo("x" * 8000)
    assert cut.startswith("'" + "x" * 32 + "'")
    assert cut.endswith("(8000 characters)")


def test_truncate_cuts_utf8_at_a_character_boundary() -> None:
    assert truncate("short", 10) == "short"
    cut = truncate("é" * 100, 11)
    assert cut.endswith("…")
    assert len(cut.encode()) <= 11
    assert set(cut[:-1]) == {"é"}


def test_statuses_stay_bounded_whatever_the_input() -> None:
    huge = "ж" * 100_000
    error = InvalidArgument(*(FieldViolation(f"names[{i}]", huge) for i in range(50)))
    assert len(error.message.encode()) <= MAX_MESSAGE_BYTES
    assert error.message.endswith("and 42 more")
    assert len(error.violations) == MAX_VIOLATIONS
    assert all(len(v.description.encode()) <= MAX_DESCRIPTION_BYTES for v in error.violations)
    status = error.to_status()
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert len(details) < 4096
    parsed = status_pb2.Status.FromString(details)
    assert [v.field for v in field_violations(parsed)] == [f"names[{i}]" for i in range(8)]
    assert len(ResourceExhausted(huge).message.encode()) <= MAX_MESSAGE_BYTES


@pytest.mark.parametrize("error", HOSTILE, ids=lambda error: type(error).__name__)
def test_every_status_stays_under_4_kib_whatever_the_input(error: ServiceError) -> None:
    status = status_of(error)
    assert len(status.SerializeToString()) < 4096
    assert len(status.message.encode()) <= MAX_MESSAGE_BYTES
    assert status.code == error.code.value[0]


def test_not_found_names_the_resource_in_its_message_and_resource_info() -> None:
    error = NotFound(resource_type="order", resource_name="o-1", owner="user:ada")
    assert (error.code, error.message) == (grpc.StatusCode.NOT_FOUND, "order 'o-1' not found")
    [detail] = status_of(error).details
    info = error_details_pb2.ResourceInfo()
    assert detail.Unpack(info)
    assert info == error_details_pb2.ResourceInfo(
        resource_type="order", resource_name="o-1", owner="user:ada", description=error.message
    )


def test_a_long_resource_name_is_echoed_in_the_message_and_cut_in_the_detail() -> None:
    error = AlreadyExists(resource_type="order", resource_name="x" * 5000)
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert error.message == f"order {echo('x' * 5000)} already exists"
    assert len(error.resource_name.encode()) <= MAX_DESCRIPTION_BYTES
    assert error.resource_name.endswith("…")


def test_a_resource_description_replaces_the_default_message() -> None:
    error = AlreadyExists(resource_type="order", resource_name="o-1", description="pick another id")
    assert error.message == "pick another id"


def test_failed_precondition_lists_its_violations() -> None:
    error = FailedPrecondition(
        PreconditionViolation("STATE", "orders/o-1", "the order is already shipped"),
        PreconditionViolation("TOS", "user:ada", "the terms are not accepted"),
    )
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        error.message
        == "orders/o-1: the order is already shipped; user:ada: the terms are not accepted"
    )
    [detail] = status_of(error).details
    failure = error_details_pb2.PreconditionFailure()
    assert detail.Unpack(failure)
    assert [(v.type, v.subject, v.description) for v in failure.violations] == [
        ("STATE", "orders/o-1", "the order is already shipped"),
        ("TOS", "user:ada", "the terms are not accepted"),
    ]


def test_precondition_types_and_subjects_are_cut_to_names() -> None:
    [kept] = FailedPrecondition(PreconditionViolation("T" * 100, "s" * 100, "d")).violations
    assert len(kept.type.encode()) <= MAX_NAME_BYTES
    assert len(kept.subject.encode()) <= MAX_NAME_BYTES


def test_out_of_range_carries_bad_request_under_its_own_code() -> None:
    error = OutOfRange(FieldViolation("page", "must be at most 7, got 9"))
    assert (error.code, error.message) == (
        grpc.StatusCode.OUT_OF_RANGE,
        "page: must be at most 7, got 9",
    )
    assert field_violations(status_of(error)) == [
        FieldViolation("page", "must be at most 7, got 9")
    ]
    assert not isinstance(error, InvalidArgument)  # `except InvalidArgument` does not catch it


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
        (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
        (Aborted, grpc.StatusCode.ABORTED),
        (Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
    ],
)
def test_error_info_errors_carry_reason_domain_and_metadata(
    kind: type[PermissionDenied], code: grpc.StatusCode
) -> None:
    error = kind("no", reason="NOT_ORDER_OWNER", metadata={"order": "o-1", "found": "x" * 999})
    assert (error.code, error.message) == (code, "no")
    [detail] = status_of(error).details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert (info.reason, info.domain) == ("NOT_ORDER_OWNER", ERROR_DOMAIN)
    assert info.metadata["order"] == "o-1"
    assert len(info.metadata["found"].encode()) <= MAX_DESCRIPTION_BYTES
    other = kind("no", reason="SESSION_EXPIRED", domain="orders.acme.example")
    assert other.domain == "orders.acme.example"


@pytest.mark.parametrize(
    ("reason", "metadata", "complaint"),
    [
        ("not owner", {}, "not UPPER_SNAKE_CASE"),
        ("A" * 64, {}, "not UPPER_SNAKE_CASE"),
        ("NOT_OWNER_", {}, "not UPPER_SNAKE_CASE"),
        ("NOT_OWNER", {"Order": "o-1"}, "'Order' is not lowerCamelCase"),
        ("NOT_OWNER", {"k" * 65: "v"}, "is not lowerCamelCase"),
        ("NOT_OWNER", {f"k{i}": "v" for i in range(9)}, "9 entries, at most 8"),
    ],
)
def test_a_reason_or_metadata_out_of_aip_193_form_is_a_programming_error(
    reason: str, metadata: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        PermissionDenied("no", reason=reason, metadata=metadata)


def test_errors_without_a_detail_of_their_own_send_none() -> None:
    for error in (ResourceExhausted("x"), Unavailable("x"), DeadlineExceeded("x")):
        assert list(status_of(error).details) == []
