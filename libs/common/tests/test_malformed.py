"""Malformed requests: the tolerant deserializer and their INVALID_ARGUMENT."""

from __future__ import annotations

import pytest
from google.protobuf import wrappers_pb2

from acme_common._call.malformed import MalformedRequest, reject_malformed, tolerant
from acme_common._errors import FieldViolation, InvalidArgument


def test_tolerant_deserializer_parses_what_parses() -> None:
    parse = tolerant(wrappers_pb2.StringValue.FromString)
    assert parse is not None
    message = wrappers_pb2.StringValue(value="Ada")
    assert parse(message.SerializeToString()) == message


def test_tolerant_deserializer_returns_malformed_request_instead_of_raising() -> None:
    parse = tolerant(wrappers_pb2.StringValue.FromString)
    assert parse is not None
    result = parse(b"\xff\xff\xff")
    assert isinstance(result, MalformedRequest)
    assert result.reason.startswith("DecodeError: ")


def test_no_deserializer_stays_none() -> None:
    assert tolerant(None) is None


def test_reject_malformed_raises_invalid_argument_on_request() -> None:
    with pytest.raises(InvalidArgument) as raised:
        reject_malformed(MalformedRequest("DecodeError: truncated"))
    status = raised.value.to_status()
    assert status.details == "request: not a valid protobuf message (DecodeError: truncated)"
    assert raised.value.violations == (
        FieldViolation("request", "not a valid protobuf message (DecodeError: truncated)"),
    )


def test_reject_malformed_lets_anything_else_pass() -> None:
    for request in (wrappers_pb2.StringValue(value="x"), b"raw", None):
        reject_malformed(request)
