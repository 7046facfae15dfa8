"""Caller's rules: which name lists it takes, and Greeter's failures translated into statuses
that make sense to Caller's own clients."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from acme_common.errors import (
    DeadlineExceeded,
    FieldViolation,
    InvalidArgument,
    ServiceError,
    Unavailable,
    field_violations,
    status_details,
)

# IntroduceAll repeats each name in its reply: longer names would let a request of a few MiB
# ask for a reply past the message limit. Greeter's own limit is the same.
MAX_NAME_LENGTH = 100


def check_names(names: Sequence[str], max_names: int) -> None:
    """InvalidArgument unless there are 1 to max_names names of at most MAX_NAME_LENGTH
    characters each (one violation per name that is too long)."""
    if not 1 <= len(names) <= max_names:
        raise InvalidArgument(
            FieldViolation("names", f"must list 1 to {max_names} names, got {len(names)}")
        )
    too_long = [
        FieldViolation(
            f"names[{index}]", f"must be at most {MAX_NAME_LENGTH} characters, got {len(name)}"
        )
        for index, name in enumerate(names)
        if len(name) > MAX_NAME_LENGTH
    ]
    if too_long:
        raise InvalidArgument(*too_long)


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
