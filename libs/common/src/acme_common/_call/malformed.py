"""Requests whose bytes do not parse: answered INVALID_ARGUMENT by the interceptor instead of
grpc's generic INTERNAL deserialization failure. The tolerant deserializer hands the handler
wrapper a MalformedRequest in place of the message, and reject_malformed turns it into the
status; an unauthenticated call is refused before its bytes are parsed at all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acme_common._errors import FieldViolation, InvalidArgument

Deserializer = Callable[[bytes], Any]


@dataclass(frozen=True)
class MalformedRequest:
    """Stands in for a request whose bytes did not parse."""

    reason: str


def tolerant(deserialize: Deserializer | None) -> Deserializer | None:
    """A deserializer that returns MalformedRequest instead of raising (None stays None:
    grpc then hands the handler the raw bytes)."""
    if deserialize is None:
        return None
    parse = deserialize

    def tolerant_deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as error:  # protobuf raises DecodeError, upb sometimes others
            return MalformedRequest(f"{type(error).__name__}: {error}")

    return tolerant_deserialize


def reject_malformed(request: Any) -> None:
    """Raise InvalidArgument (a ServiceError: INVALID_ARGUMENT with a field violation on
    `request`) when request is a MalformedRequest."""
    if type(request) is MalformedRequest:
        raise InvalidArgument(
            FieldViolation("request", f"not a valid protobuf message ({request.reason})")
        )
