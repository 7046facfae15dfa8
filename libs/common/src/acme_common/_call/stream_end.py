"""How a client's request stream ended: a real half-close, or a cut (the client cancelled,
its deadline passed, or the server is shutting down), which grpc.aio does not say.

grpc.aio (1.85) turns a failed read into end-of-stream (callback_common.pyx.pxi,
`_receive_message`), so `async for request in requests` simply ends in every case, and
context.cancelled(), done() and code() stay False, False and None. The cancellation reaches
the handler only later, as a CancelledError that grpc injects at a later await, and only if
the handler is still awaiting something: a handler that returns right after its loop would
act on a truncated stream and be recorded as OK. The per-call path's checked request stream
(`Observation.checked`) ends only on a real half-close and raises StreamCut otherwise.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from typing import Any

import grpc

# A client whose own deadline timer fires first sends RST_STREAM(CANCEL), all the server
# gets, a few ms before the server's copy of the deadline runs out (6-7 ms on loopback).
DEADLINE_SLACK = 0.1  # seconds: a cut this close to the deadline counts as the deadline


class StreamEnd(enum.Enum):
    """Why a call's stream ended, as the status code it is recorded with."""

    HALF_CLOSE = grpc.StatusCode.OK
    CANCELLED = grpc.StatusCode.CANCELLED
    DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED
    SHUTDOWN = grpc.StatusCode.UNAVAILABLE  # what the client of a stopped server sees


class StreamCut(asyncio.CancelledError):
    """Raised instead of a normal end of the request stream when the call was cut; a
    CancelledError, so a handler stops as it would when grpc cancels it."""

    def __init__(self, end: StreamEnd) -> None:
        super().__init__(end.name)
        self.code: grpc.StatusCode = end.value


def _never() -> bool:
    return False


def cut_reason(context: Any, shutting_down: Callable[[], bool] = _never) -> StreamEnd:
    """Why a call known to be dead died. No I/O: safe in `except CancelledError` and after
    GeneratorExit (time_remaining() reads what grpc keeps until the call is freed)."""
    if shutting_down():
        return StreamEnd.SHUTDOWN
    remaining = context.time_remaining()  # None without a deadline; 0 once it passed
    if remaining is not None and remaining <= DEADLINE_SLACK:
        return StreamEnd.DEADLINE
    return StreamEnd.CANCELLED


async def stream_end(context: Any, shutting_down: Callable[[], bool] = _never) -> StreamEnd:
    """Call once the request stream has ended; probes the call with one more operation.

    send_initial_metadata(()) fails on a call grpc core has cancelled, and a cut stream only
    ends after core cancelled the call, so the answer follows from the order of events, not
    from timing (grpc's own watcher may inject CancelledError first: the same answer). When
    initial metadata is out already (a bidi call that replied), grpc refuses before any I/O
    and a second read() is the probe: the cancellation, queued ahead of it, arrives first.
    A handler can therefore not send initial metadata of its own after its request stream.
    """
    try:
        try:
            await context.send_initial_metadata(())
        except grpc.aio.UsageError:
            await context.read()
    except (asyncio.CancelledError, grpc.aio.BaseError):
        return cut_reason(context, shutting_down)
    return StreamEnd.HALF_CLOSE
