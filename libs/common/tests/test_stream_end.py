"""stream_end: why a call's request stream ended, from what the context says."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc

from acme_common._call.stream_end import (
    DEADLINE_SLACK,
    StreamCut,
    StreamEnd,
    cut_reason,
)

MakeContext = Callable[..., Any]


def test_a_cut_is_shutdown_deadline_or_cancellation(make_context: MakeContext) -> None:
    assert cut_reason(make_context(), lambda: True) is StreamEnd.SHUTDOWN
    assert cut_reason(make_context(time_remaining=0.0)) is StreamEnd.DEADLINE
    assert cut_reason(make_context(time_remaining=DEADLINE_SLACK / 2)) is StreamEnd.DEADLINE
    assert cut_reason(make_context(time_remaining=5.0)) is StreamEnd.CANCELLED
    assert cut_reason(make_context()) is StreamEnd.CANCELLED


def test_a_stream_cut_is_a_cancellation_carrying_its_code() -> None:
    cut = StreamCut(StreamEnd.DEADLINE)
    assert isinstance(cut, asyncio.CancelledError)
    assert cut.code is grpc.StatusCode.DEADLINE_EXCEEDED
