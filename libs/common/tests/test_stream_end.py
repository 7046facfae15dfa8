"""stream_end: why a call's request stream ended, from what the context says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from acme_common.stream_end import (
    DEADLINE_SLACK,
    StreamCut,
    StreamEnd,
    checked_requests,
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


async def two_requests() -> AsyncIterator[str]:
    yield "Ada"
    yield "Alan"


async def test_a_half_closed_stream_ends_and_a_cut_one_raises(make_context: MakeContext) -> None:
    assert [r async for r in checked_requests(two_requests(), make_context())] == ["Ada", "Alan"]
    cut = make_context(time_remaining=0.0, cut=True)
    seen: list[str] = []

    async def consume() -> None:
        async for request in checked_requests(two_requests(), cut):
            seen.append(request)

    with pytest.raises(StreamCut) as raised:
        await consume()
    assert seen == ["Ada", "Alan"]  # what arrived is delivered, then the cut is raised
    assert raised.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
