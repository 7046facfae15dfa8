"""errors: bounded statuses whatever text a client sent, and their rich details."""

from __future__ import annotations

import grpc
from google.rpc import status_pb2

from acme_common._errors import (
    MAX_DESCRIPTION_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_VIOLATIONS,
    FieldViolation,
    InvalidArgument,
    ResourceExhausted,
    echo,
    field_violations,
    truncate,
)


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
