"""What status a failed RPC ends with: a ServiceError (errors.py) becomes its own status with
its details; a method the servicer does not implement (the generated base class's
NotImplementedError after UNIMPLEMENTED) is UNIMPLEMENTED; any other exception is logged with
its traceback and answered with a generic INTERNAL "internal error", so no internal detail
reaches the client."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import grpc

from acme_common._errors import ServiceError

# The access log's logger: an unhandled error is logged next to its RPC's access-log line.
log = logging.getLogger("acme.access")


async def abort_with_status(
    error: Exception, context: grpc.aio.ServicerContext[Any, Any], method: str
) -> NoReturn:
    """Abort the RPC of `method` with the status error deserves; always raises."""
    if isinstance(error, ServiceError):
        status = error.to_status()
        await context.abort(status.code, status.details, status.trailing_metadata)
    if isinstance(error, NotImplementedError) and context.code() is grpc.StatusCode.UNIMPLEMENTED:
        # A method of the contract the servicer does not override yet: grpc's generated base
        # class sets UNIMPLEMENTED, then raises. That is the client's answer, not a crash.
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "method not implemented")
    log.exception("unhandled error in %s", method, extra={"method": method})
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")
