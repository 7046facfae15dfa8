"""The bookkeeping of each call of one method: grpc_server_* metrics at its start and end,
the request id when the interceptor did not set one, the checked request stream (parsed
messages only; a cut stream raises StreamCut, stream_end.py says why), the status code the
call ended with and its access-log line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

import grpc

from acme_common import _metrics
from acme_common._call.access_log import AccessLog
from acme_common._call.malformed import reject_malformed
from acme_common._call.request_ids import current_request_id, request_id_from
from acme_common._call.stream_end import StreamCut, StreamEnd, cut_reason, stream_end

if TYPE_CHECKING:
    from acme_common._settings import ServerSettings


# The context grpc.aio hands a servicer's method (generic in request and response types).
ServicerContext = grpc.aio.ServicerContext[Any, Any]

_OK = grpc.StatusCode.OK


def status_code(
    context: ServicerContext, error: BaseException | None, shutting_down: Callable[[], bool]
) -> grpc.StatusCode:
    """The status a call ended with, given what its handler raised: the cut a StreamCut
    carries; for a cancelled handler (or a generator closed early) why the call died; else
    what the call's context says (an abort's code), OK when it says nothing."""
    if isinstance(error, StreamCut):
        return error.code
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return cut_reason(context, shutting_down).value
    return cast("grpc.StatusCode | None", context.code()) or _OK


class Observation:
    """Starts and ends the bookkeeping of each call of one method (of one grpc type)."""

    def __init__(
        self,
        method: str,
        grpc_type: str,
        settings: ServerSettings,
        *,
        tracing: bool,
        shutting_down: Callable[[], bool],
        metrics: bool = True,
    ) -> None:
        """metrics: whether the grpc_server_* metrics are updated (bench/ turns them off)."""
        self.method = method
        self.shutting_down = shutting_down  # the server cancels what remains
        self.request_streaming = grpc_type in ("client_stream", "bidi_stream")
        self.response_streaming = grpc_type in ("server_stream", "bidi_stream")
        self.metrics = _metrics.ServerMethodMetrics(method, grpc_type, recorded=metrics)
        self.access_log = AccessLog(
            method, instance=settings.instance_name, which=settings.access_log, tracing=tracing
        )

    def begin(self, request: Any, context: ServicerContext) -> tuple[float, Any]:
        """Start bookkeeping; returns the start time and the request (or checked stream)."""
        if current_request_id.get() is None:  # not set by intercept_service: called directly
            metadata = cast("Sequence[tuple[str, str | bytes]]", context.invocation_metadata())
            current_request_id.set(request_id_from(metadata))
        self.metrics.started.inc()
        self.metrics.in_flight.inc()
        if self.request_streaming:
            return perf_counter(), self.checked(request, context)
        self.metrics.received.inc()
        return perf_counter(), request

    async def checked(
        self, requests: AsyncIterator[Any], context: ServicerContext
    ) -> AsyncIterator[Any]:
        """The request stream, parsed messages only; ends only when the client half-closed
        it, else raises StreamCut."""
        try:
            async for request in requests:
                reject_malformed(request)
                self.metrics.received.inc()
                yield request
        except StreamCut:
            raise
        except asyncio.CancelledError:  # grpc's watcher won the race while a read was pending
            raise StreamCut(cut_reason(context, self.shutting_down)) from None
        end = await stream_end(context, self.shutting_down)
        if end is not StreamEnd.HALF_CLOSE:
            raise StreamCut(end)

    def end(self, started: float, context: ServicerContext, error: BaseException | None) -> None:
        """End bookkeeping of a call begun at started, whose handler raised error (or None)."""
        elapsed = perf_counter() - started
        code = status_code(context, error, self.shutting_down)
        self.metrics.handled(code).inc()
        self.metrics.latency.observe(elapsed)
        self.metrics.in_flight.dec()
        self.access_log.record(code, elapsed, context, error)
