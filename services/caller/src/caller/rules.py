"""Caller's rules: how many names one call may list (a server setting), and Greeter's failures
translated into statuses that make sense to Caller's own clients."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from acme_common import (
    DeadlineExceeded,
    FieldViolation,
    InvalidArgument,
    ServiceError,
    Unavailable,
    field_violations,
    status_details,
)


def check_names(names: Sequence[str], max_names: int) -> None:
    """InvalidArgument when there are more than max_names names. CALLER_MAX_NAMES is a server
    setting, so not a rule of the contract; the contract's own (at least one name, each at
    most 100 characters: proto/acme/caller/v1/caller.proto) are checked by libs/common before
    the servicer runs."""
    if len(names) > max_names:
        raise InvalidArgument(
            FieldViolation("names", f"must list 1 to {max_names} names, got {len(names)}")
        )


# Statuses whose message grpc core may have written about Caller's own connections (peer
# addresses, resolver and TLS errors): Caller's clients get a fixed text per code instead.
_FIXED_MESSAGES = {
    grpc.StatusCode.DEADLINE_EXCEEDED: "greeter did not answer before the deadline",
    grpc.StatusCode.UNAVAILABLE: "greeter is unavailable",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "greeter is overloaded",
    # Our own caller did not cancel (that would have cancelled this handler): a greeter that
    # is shutting down cancels calls racing its stop, so this one may be retried.
    grpc.StatusCode.CANCELLED: "greeter cancelled the call (shutting down?)",
}


def greeter_failure_message(error: grpc.aio.AioRpcError) -> str:
    """What Caller's clients read about a failed Greeter call: Greeter's own text for
    INVALID_ARGUMENT (its validation rules), else a fixed text per code, never grpc core's
    details (UNAVAILABLE, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED, CANCELLED ... can carry
    internal addresses)."""
    code = error.code()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return error.details() or "invalid argument"
    return _FIXED_MESSAGES.get(code, f"greeter failed with {code.name}")


def translate_greeter_error(error: grpc.aio.AioRpcError) -> ServiceError:
    """Invalid input stays INVALID_ARGUMENT (with its field violations), a deadline stays
    DEADLINE_EXCEEDED, an unreachable, overloaded or stopping greeter is UNAVAILABLE
    (retryable), and anything else is Greeter's fault, so INTERNAL for Caller's clients;
    the message is greeter_failure_message's."""
    code = error.code()
    message = greeter_failure_message(error)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        violations = field_violations(status_details(error))
        if violations:
            return InvalidArgument(*violations)
        failure = ServiceError(message)
        failure.code = code
        return failure
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(message)
    if code in _FIXED_MESSAGES:
        return Unavailable(message)
    return ServiceError(message)
