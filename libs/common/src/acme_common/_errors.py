"""Service errors that business rules raise, and their translation into rich gRPC statuses.

A rule raises one of these plain exceptions; the server's per-call path (_call/error_status.py)
ends the RPC with its google.rpc.Status: the code, a bounded message and the detail Google's
error model gives that code (AIP-193, google/rpc/error_details.proto; the detail per code is
the table of cloud.google.com/apis/design/errors), which clients read back with grpcio-status
(`status_details`). Which class, code and detail, and what the gateway makes of each
(Connect code, HTTP status): docs/errors.md. libs/common-go's rpcerr is the Go twin (the same
errors, bounds and details).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, cast

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

# A status travels in HTTP/2 trailers, which grpc limits (max_metadata_size: 8 KiB soft,
# 16 KiB hard; between the two, calls fail at random): grpc-message is percent-encoded (up to
# 3 bytes per byte) and grpc-status-details-bin is base64 (4/3). These bounds keep any status
# under 4 KiB whatever a client sent, so a long input is answered with its own status (e.g.
# INVALID_ARGUMENT), never RESOURCE_EXHAUSTED "metadata size exceeds limit".
MAX_MESSAGE_BYTES = 512  # the status message
# one violation's description, an ErrorInfo metadata value, each field of a ResourceInfo
MAX_DESCRIPTION_BYTES = 256
# a field path, a precondition violation's type and subject, an ErrorInfo's domain
MAX_NAME_BYTES = 64
MAX_VIOLATIONS = 8  # violations sent; more are counted in the message
MAX_ECHO_CHARACTERS = 32  # of client text repeated in a message: see echo()

# ErrorInfo (AIP-193): `reason` is UPPER_SNAKE_CASE of at most 63 characters, unique within
# `domain`; metadata keys match [a-z][a-zA-Z0-9-_]+ (ideally lowerCamelCase), at most 64
# characters. Both are constants of the code that raises, so a bad one is a programming error
# (ValueError), not a status.
MAX_REASON_CHARACTERS = 63
MAX_METADATA_KEY_CHARACTERS = 64
MAX_METADATA_ENTRIES = 8
_REASON = re.compile(r"[A-Z][A-Z0-9_]+[A-Z0-9]")
_METADATA_KEY = re.compile(r"[a-z][a-zA-Z0-9\-_]+")
ERROR_DOMAIN = "acme.example"  # ErrorInfo.domain when the rule names none


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


def _listing(lines: Sequence[str], unsent: int) -> str:
    """The message of an error that lists violations: `a: why; b: why`, within
    MAX_MESSAGE_BYTES, the violations not sent counted (`; and 3 more`)."""
    more = f"; and {unsent} more" if unsent else ""
    return truncate("; ".join(lines), MAX_MESSAGE_BYTES - len(more)) + more


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (e.g. `names[3]`), what is wrong with it and,
    optionally, the id of the rule it breaks (e.g. `string.max_len`, a protovalidate rule id;
    google.rpc.BadRequest.FieldViolation.reason)."""

    field: str
    description: str
    reason: str = ""


@dataclass(frozen=True)
class PreconditionViolation:
    """One unmet precondition (google.rpc.PreconditionFailure.Violation): its type, a
    service-specific constant (e.g. `STATE`), its subject, what failed it (e.g.
    `orders/o-1`), and how it failed (e.g. `the order is already shipped`)."""

    type: str
    subject: str
    description: str


class ServiceError(Exception):
    """An expected failure with a gRPC status code and a message safe to show to the caller
    (cut to MAX_MESSAGE_BYTES). Subclass it for a code of your own: set `code`, and override
    `details()` to attach google.rpc detail messages."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        message = truncate(message, MAX_MESSAGE_BYTES)
        super().__init__(message)
        self.message = message

    def details(self) -> tuple[Message, ...]:
        """The detail messages (google.rpc error details) the status carries: none here."""
        return ()

    def to_status(self) -> grpc.Status:
        """The grpc.Status (code, message, rich details) to abort the RPC with."""
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        for detail in self.details():
            status.details.add().Pack(detail)
        return rpc_status.to_status(status)


class _BadRequest(ServiceError):
    """An error about fields of the request, each a FieldViolation: the message lists them
    (at most MAX_VIOLATIONS, each bounded; the rest are counted), and so does the status's
    google.rpc.BadRequest."""

    def __init__(self, *violations: FieldViolation) -> None:
        kept = tuple(
            FieldViolation(
                truncate(v.field, MAX_NAME_BYTES),
                truncate(v.description, MAX_DESCRIPTION_BYTES),
                truncate(v.reason, MAX_NAME_BYTES),
            )
            for v in violations[:MAX_VIOLATIONS]
        )
        lines = [f"{v.field}: {v.description}" for v in kept]
        super().__init__(_listing(lines, len(violations) - len(kept)))
        self.violations = kept

    def details(self) -> tuple[Message, ...]:
        field_violations = [
            error_details_pb2.BadRequest.FieldViolation(
                field=v.field, description=v.description, reason=v.reason
            )
            for v in self.violations
        ]
        return (error_details_pb2.BadRequest(field_violations=field_violations),)


class InvalidArgument(_BadRequest):
    """The request is malformed whatever the state of the system: INVALID_ARGUMENT with
    google.rpc.BadRequest field violations (paths cut to MAX_NAME_BYTES, descriptions to
    MAX_DESCRIPTION_BYTES), e.g.
    `InvalidArgument(FieldViolation("name", "must not be empty"))`."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class OutOfRange(_BadRequest):
    """A field is past the valid range of the current state (a page past the last one, an
    offset past the end): OUT_OF_RANGE with google.rpc.BadRequest field violations, the detail
    Google's error model gives OUT_OF_RANGE. A value no state could accept is InvalidArgument."""

    code = grpc.StatusCode.OUT_OF_RANGE


class FailedPrecondition(ServiceError):
    """The system is not in the state the operation needs (AIP-193): FAILED_PRECONDITION with
    google.rpc.PreconditionFailure, e.g. `FailedPrecondition(PreconditionViolation("STATE",
    "orders/o-1", "the order is already shipped"))`. The message lists `subject: description`
    of each (at most MAX_VIOLATIONS; types and subjects cut to MAX_NAME_BYTES, descriptions
    to MAX_DESCRIPTION_BYTES; the rest counted)."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, *violations: PreconditionViolation) -> None:
        kept = tuple(
            PreconditionViolation(
                truncate(v.type, MAX_NAME_BYTES),
                truncate(v.subject, MAX_NAME_BYTES),
                truncate(v.description, MAX_DESCRIPTION_BYTES),
            )
            for v in violations[:MAX_VIOLATIONS]
        )
        lines = [f"{v.subject}: {v.description}" for v in kept]
        super().__init__(_listing(lines, len(violations) - len(kept)))
        self.violations = kept

    def details(self) -> tuple[Message, ...]:
        violations = [
            error_details_pb2.PreconditionFailure.Violation(
                type=v.type, subject=v.subject, description=v.description
            )
            for v in self.violations
        ]
        return (error_details_pb2.PreconditionFailure(violations=violations),)


class _ResourceError(ServiceError):
    """An error about one resource, with google.rpc.ResourceInfo: its type (e.g. `order`, or
    a type URL such as `type.googleapis.com/acme.orders.v1.Order`), its name, its owner
    (optional), each cut to MAX_DESCRIPTION_BYTES, and a description, which is the message
    too (when empty: `<type> '<name>' <outcome>`, the name echo()ed; cut to
    MAX_MESSAGE_BYTES)."""

    outcome: ClassVar[str]

    def __init__(
        self,
        *,
        resource_type: str,
        resource_name: str,
        owner: str = "",
        description: str = "",
    ) -> None:
        self.resource_type = truncate(resource_type, MAX_DESCRIPTION_BYTES)
        self.resource_name = truncate(resource_name, MAX_DESCRIPTION_BYTES)
        self.owner = truncate(owner, MAX_DESCRIPTION_BYTES)
        if not description:
            description = f"{self.resource_type} {echo(resource_name)} {self.outcome}"
        super().__init__(description)

    def details(self) -> tuple[Message, ...]:
        info = error_details_pb2.ResourceInfo(
            resource_type=self.resource_type,
            resource_name=self.resource_name,
            owner=self.owner,
            description=self.message,
        )
        return (info,)


class NotFound(_ResourceError):
    """The resource the request names does not exist: NOT_FOUND with google.rpc.ResourceInfo,
    e.g. `NotFound(resource_type="order", resource_name=order_id)` ("order 'o-1' not
    found")."""

    code = grpc.StatusCode.NOT_FOUND
    outcome = "not found"


class AlreadyExists(_ResourceError):
    """The resource the request would create exists already: ALREADY_EXISTS with
    google.rpc.ResourceInfo, e.g. `AlreadyExists(resource_type="order", resource_name=id)`."""

    code = grpc.StatusCode.ALREADY_EXISTS
    outcome = "already exists"


class _ErrorInfoError(ServiceError):
    """An error with google.rpc.ErrorInfo: `reason` (UPPER_SNAKE_CASE, at most 63
    characters, unique within `domain`), `domain` (empty: ERROR_DOMAIN; cut to
    MAX_NAME_BYTES) and `metadata` (at most MAX_METADATA_ENTRIES, keys lowerCamelCase of at
    most 64 characters, values cut to MAX_DESCRIPTION_BYTES), as AIP-193 defines them. A reason
    or key out of that form, or too many entries, raise ValueError: they are the code's
    constants, not the client's."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        domain: str = ERROR_DOMAIN,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        entries = dict(metadata or {})
        if len(reason) > MAX_REASON_CHARACTERS or not _REASON.fullmatch(reason):
            raise ValueError(
                f"ErrorInfo reason {echo(reason)} is not UPPER_SNAKE_CASE of at most "
                f"{MAX_REASON_CHARACTERS} characters (AIP-193)"
            )
        if len(entries) > MAX_METADATA_ENTRIES:
            raise ValueError(
                f"ErrorInfo metadata has {len(entries)} entries, at most "
                f"{MAX_METADATA_ENTRIES} are sent"
            )
        for key in entries:
            if len(key) > MAX_METADATA_KEY_CHARACTERS or not _METADATA_KEY.fullmatch(key):
                raise ValueError(
                    f"ErrorInfo metadata key {echo(key)} is not lowerCamelCase of at most "
                    f"{MAX_METADATA_KEY_CHARACTERS} characters (AIP-193)"
                )
        super().__init__(message)
        self.reason = reason
        self.domain = truncate(domain or ERROR_DOMAIN, MAX_NAME_BYTES)
        self.metadata = {
            key: truncate(value, MAX_DESCRIPTION_BYTES) for key, value in entries.items()
        }

    def details(self) -> tuple[Message, ...]:
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=self.domain, metadata=self.metadata
        )
        return (info,)


class PermissionDenied(_ErrorInfoError):
    """The caller may not do this (who they are is known): PERMISSION_DENIED with
    google.rpc.ErrorInfo, e.g. `PermissionDenied("only the buyer may cancel an order",
    reason="NOT_ORDER_OWNER", metadata={"order": order_id})`."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(_ErrorInfoError):
    """The request has no valid credentials for this operation: UNAUTHENTICATED with
    google.rpc.ErrorInfo, e.g. `Unauthenticated("the session has expired",
    reason="SESSION_EXPIRED")`. (A missing or wrong bearer token is refused before any rule
    runs: AUTH_TOKENS.)"""

    code = grpc.StatusCode.UNAUTHENTICATED


class Aborted(_ErrorInfoError):
    """The operation lost a concurrency conflict (a version check, a transaction abort) and
    may be retried from a fresh read: ABORTED with google.rpc.ErrorInfo, the detail Google's
    error model gives ABORTED, e.g. `Aborted("the order changed meanwhile",
    reason="VERSION_MISMATCH", metadata={"expected": "3", "found": "4"})`."""

    code = grpc.StatusCode.ABORTED


class Unimplemented(_ErrorInfoError):
    """The operation, or an option of it, is not supported by this service (yet):
    UNIMPLEMENTED with google.rpc.ErrorInfo (the design guide gives UNIMPLEMENTED no detail;
    AIP-193 asks an ErrorInfo of every error), e.g. `Unimplemented("gift wrapping is not
    offered", reason="GIFT_WRAP_UNSUPPORTED")`. A method the servicer does not define at all
    is UNIMPLEMENTED without it."""

    code = grpc.StatusCode.UNIMPLEMENTED


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
                FieldViolation(v.field, v.description, v.reason)
                for v in bad_request.field_violations
            )
    return found


def status_details(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The rich google.rpc.Status a server attached to a failed call, if any."""
    metadata = cast(Sequence[tuple[str, str | bytes]], error.trailing_metadata() or ())
    for key, value in metadata:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None
