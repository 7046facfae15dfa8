"""gRPC statuses as Connect errors: the same code (Connect's codes are gRPC's, in snake case,
connectrpc.com/docs/protocol#error-codes; connectrpc answers each with its HTTP status, e.g.
not_found 404), the service's message (unless grpc core may have written it, see _OPAQUE), and
every detail of its google.rpc.Status (grpc-status-details-bin) passed on, so a validation
error reaches the browser as invalid_argument with its google.rpc.BadRequest field violations.
A detail whose type the gateway knows also gets its JSON form (`debug`: gateway.details).
docs/errors.md lists the mapping."""

from __future__ import annotations

import logging

import grpc
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from acme_common import status_details
from gateway.details import error_detail

log = logging.getLogger("acme.gateway")

# Codes whose message grpc core may have written about the gateway's own connections
# (addresses, resolver errors): unless the service sent the status (see _from_service), the
# client gets a fixed text, the log the original.
_OPAQUE = {
    grpc.StatusCode.UNAVAILABLE: "the service is unavailable",
    grpc.StatusCode.UNKNOWN: "the service failed",
    grpc.StatusCode.INTERNAL: "the service failed",
}

_REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


def connect_code(code: grpc.StatusCode) -> Code:
    """The Connect code of a gRPC status code (CANCELLED is spelt `canceled` there)."""
    if code is grpc.StatusCode.CANCELLED:
        return Code.CANCELED
    return Code[code.name]


def grpc_code_name(code: Code) -> str:
    """The gRPC name of a Connect code (`canceled` -> CANCELLED), for logs and metrics."""
    return "CANCELLED" if code is Code.CANCELED else code.name


def _from_service(error: grpc.aio.AioRpcError) -> bool:
    """Whether the service itself sent this status: it came with trailing metadata (its
    google.rpc.Status in grpc-status-details-bin, or trailers of its own), which only a
    server's answer carries; a status grpc core makes up about the gateway's connection
    (unreachable, reset, ...) has none."""
    return bool(error.trailing_metadata())


def connect_error(
    error: grpc.aio.AioRpcError, service: str, *, own_credentials: bool = False
) -> ConnectError:
    """The Connect error that answers a failed gRPC call to service. own_credentials: the
    call carried the gateway's own token (not the client's), so a refusal of it by the
    service's token check (a status without details) is the gateway's misconfiguration and
    gets a WARNING; a rule's refusal (PermissionDenied, Unauthenticated: with an ErrorInfo)
    is the client's answer."""
    code = error.code()
    message = error.details() or ""
    status = status_details(error)
    details = [error_detail(any) for any in status.details] if status is not None else []
    if own_credentials and code in _REFUSED and not details:
        log.warning(
            "the service refused the gateway's own credentials (<NAME>_AUTH_TOKEN?)",
            extra={"service": service, "code": code.name, "detail": message[:512]},
        )
    opaque = _OPAQUE.get(code)
    if opaque is not None and not _from_service(error):
        log.warning(
            "downstream call failed",
            extra={"service": service, "code": code.name, "detail": message[:512]},
        )
        message = f"{opaque}: {service}"
    return ConnectError(connect_code(code), message, details)
