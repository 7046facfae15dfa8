"""Service errors that handlers raise, and their translation into rich gRPC statuses.

Business logic raises these plain exceptions; the server interceptor turns them into a
google.rpc.Status (with BadRequest field violations for invalid input) that clients can read
back with grpcio-status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

# A status travels in HTTP/2 trailers, which grpc limits (max_metadata_size: 8 KiB soft,
# 16 KiB hard; between the two, calls fail at random): grpc-message is percent-encoded (up to
# 3 bytes per byte) and grpc-status-details-bin is base64 (4/3). These bounds keep any status
# under 4 KiB whatever a client sent, so a long input is answered with its own status (e.g.
# INVALID_ARGUMENT), never RESOURCE_EXHAUSTED "metadata size exceeds limit".
MAX_MESSAGE_BYTES = 512  # the status message
MAX_DESCRIPTION_BYTES = 256  # one field violation's description (and its field path)
MAX_VIOLATIONS = 8  # field violations sent; more are counted in the message
MAX_ECHO_CHARACTERS = 32  # of client text repeated in a message: see echo()


def echo(value: str, limit: int = MAX_ECHO_CHARACTERS) -> str:
    """Client-controlled text fit to repeat in an error message: its repr, cut to `limit`
    characters with the total length said, e.g. `'xxxx…' (8000 characters)`."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


def truncate(text: str, max_bytes: int) -> str:
    """text cut to at most max_bytes of UTF-8 (at a character boundary), `…` marking a cut."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max_bytes - 3].decode(errors="ignore") + "…"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (e.g. `names[3]`) and what is wrong with it."""

    field: str
    description: str


class ServiceError(Exception):
    """An expected failure with a gRPC status code and a message safe to show to the caller."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        message = truncate(message, MAX_MESSAGE_BYTES)
        super().__init__(message)
        self.message = message

    def to_status(self) -> grpc.Status:
        """The grpc.Status (code, message, rich details) to abort the RPC with."""
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        return rpc_status.to_status(status)


class InvalidArgument(ServiceError):
    """The request is malformed; carries BadRequest field violations."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, *violations: FieldViolation) -> None:
        kept = tuple(
            FieldViolation(
                truncate(v.field, MAX_DESCRIPTION_BYTES),
                truncate(v.description, MAX_DESCRIPTION_BYTES),
            )
            for v in violations[:MAX_VIOLATIONS]
        )
        more = f"; and {len(violations) - len(kept)} more" if len(violations) > len(kept) else ""
        listed = "; ".join(f"{v.field}: {v.description}" for v in kept)
        super().__init__(truncate(listed, MAX_MESSAGE_BYTES - len(more)) + more)
        self.violations = kept

    def to_status(self) -> grpc.Status:
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in self.violations
                ]
            )
        )
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message=self.message, details=[detail]
        )
        return rpc_status.to_status(status)


class ResourceExhausted(ServiceError):
    """A request exceeds a size or count limit of the service."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ServiceError):
    """A dependency cannot be reached right now; the call may be retried."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServiceError):
    """The work could not finish before the deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


def field_violations(status: status_pb2.Status | None) -> list[FieldViolation]:
    """The BadRequest field violations in a status read back with grpc_status's from_call."""
    if status is None:
        return []
    found: list[FieldViolation] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.extend(
                FieldViolation(v.field, v.description) for v in bad_request.field_violations
            )
    return found


def status_details(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The rich google.rpc.Status a server attached to a failed call, if any."""
    metadata = cast(Sequence[tuple[str, str | bytes]], error.trailing_metadata() or ())
    for key, value in metadata:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None
