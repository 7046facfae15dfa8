"""Requests the handler must not see: the tolerant deserializer, what it hands on in place of
bytes that do not parse or of a message a check refuses, and the error raised for them."""

from __future__ import annotations

import pytest
from google.protobuf import wrappers_pb2

from acme_common._call.malformed import RefusedRequest, malformed, reject_malformed, tolerant
from acme_common._errors import FieldViolation, InvalidArgument

Text = wrappers_pb2.StringValue


def refuse_x(message: Text) -> Exception | None:
    if message.value == "x":
        return InvalidArgument(FieldViolation("value", "must not be x"))
    return None


def test_tolerant_deserializer_parses_what_parses() -> None:
    parse = tolerant(Text.FromString)
    assert parse is not None
    message = Text(value="Ada")
    assert parse(message.SerializeToString()) == message


def test_tolerant_deserializer_returns_a_refused_request_instead_of_raising() -> None:
    parse = tolerant(Text.FromString)
    assert parse is not None
    result = parse(b"\xff\xff\xff")
    assert isinstance(result, RefusedRequest)
    assert isinstance(result.error, InvalidArgument)
    [violation] = result.error.violations
    assert violation.field == "request"
    assert violation.description.startswith("not a valid protobuf message (DecodeError: ")


def test_no_deserializer_stays_none() -> None:
    assert tolerant(None) is None
    assert tolerant(None, refuse_x) is None


def test_a_check_refuses_what_it_refuses_and_hands_on_the_rest() -> None:
    parse = tolerant(Text.FromString, refuse_x)
    assert parse is not None
    assert parse(Text(value="y").SerializeToString()) == Text(value="y")
    refused = parse(Text(value="x").SerializeToString())
    assert isinstance(refused, RefusedRequest)
    with pytest.raises(InvalidArgument) as raised:
        reject_malformed(refused)
    assert raised.value.violations == (FieldViolation("value", "must not be x"),)
    assert isinstance(parse(b"\xff\xff\xff"), RefusedRequest)  # unparsed: never checked


def test_reject_malformed_raises_invalid_argument_on_request() -> None:
    with pytest.raises(InvalidArgument) as raised:
        reject_malformed(malformed("DecodeError: truncated"))
    status = raised.value.to_status()
    assert status.details == "request: not a valid protobuf message (DecodeError: truncated)"
    assert raised.value.violations == (
        FieldViolation("request", "not a valid protobuf message (DecodeError: truncated)"),
    )


def test_reject_malformed_lets_anything_else_pass() -> None:
    for request in (Text(value="x"), b"raw", None):
        reject_malformed(request)
