"""Requests the handler must not see: bytes that do not parse (INVALID_ARGUMENT on `request`
instead of grpc's generic INTERNAL deserialization failure) and messages that break their
contract's rules (validation.py). The tolerant deserializer hands the handler wrapper a
RefusedRequest in place of the message, and reject_malformed raises its error; an
unauthenticated call is refused before its bytes are parsed at all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acme_common._call.validation import Check
from acme_common._errors import FieldViolation, InvalidArgument

Deserializer = Callable[[bytes], Any]


@dataclass(frozen=True)
class RefusedRequest:
    """Stands in for a request the handler must not see: the error the call is answered with
    (an InvalidArgument; any other exception is a server fault, answered INTERNAL)."""

    error: Exception


def malformed(reason: str) -> RefusedRequest:
    """A request whose bytes did not parse, for reason (e.g. "DecodeError: truncated")."""
    return RefusedRequest(
        InvalidArgument(FieldViolation("request", f"not a valid protobuf message ({reason})"))
    )


def tolerant(deserialize: Deserializer | None, check: Check | None = None) -> Deserializer | None:
    """A deserializer that returns a RefusedRequest instead of raising, and in place of a
    message that check refuses (None stays None: grpc then hands the handler the raw bytes;
    no check: every message that parses is handed on)."""
    if deserialize is None:
        return None
    parse = deserialize
    if check is None:

        def tolerant_deserialize(data: bytes) -> Any:
            try:
                return parse(data)
            except Exception as error:  # protobuf raises DecodeError, upb sometimes others
                return malformed(f"{type(error).__name__}: {error}")

        return tolerant_deserialize
    refuses = check

    def checked_deserialize(data: bytes) -> Any:
        try:
            message = parse(data)
        except Exception as error:  # as above
            return malformed(f"{type(error).__name__}: {error}")
        refusal = refuses(message)
        return message if refusal is None else RefusedRequest(refusal)

    return checked_deserialize


def reject_malformed(request: Any) -> None:
    """Raise the error of a RefusedRequest (InvalidArgument: INVALID_ARGUMENT with a field
    violation on `request` for bytes that do not parse, or the violations of the rules a
    message breaks); anything else passes."""
    if type(request) is RefusedRequest:
        raise request.error
