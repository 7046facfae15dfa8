"""Caller's rules: Greeter's failures translated into statuses that make sense to Caller's own
clients."""

from __future__ import annotations

import grpc

from acme_common.errors import (
    DeadlineExceeded,
    InvalidArgument,
    ServiceError,
    Unavailable,
    field_violations,
    status_details,
)


def translate_greeter_error(error: grpc.aio.AioRpcError) -> ServiceError:
    """Invalid input stays INVALID_ARGUMENT (with its field violations), a deadline stays
    DEADLINE_EXCEEDED, an unreachable, overloaded or stopping greeter is UNAVAILABLE
    (retryable), and anything else is Greeter's fault, so INTERNAL for Caller's clients."""
    code = error.code()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        violations = field_violations(status_details(error))
        if violations:
            return InvalidArgument(*violations)
        failure = ServiceError(error.details() or "invalid argument")
        failure.code = code
        return failure
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded("greeter did not answer before the deadline")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return Unavailable(f"greeter is unavailable: {error.details()}")
    if code == grpc.StatusCode.CANCELLED:
        # Our own caller did not cancel (that would have cancelled this handler): a greeter
        # that is shutting down cancels calls racing its stop, so this one may be retried.
        return Unavailable("greeter cancelled the call (shutting down?)")
    return ServiceError(f"greeter failed with {code.name}")
