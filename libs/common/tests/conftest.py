"""A stand-in ServicerContext for the unit tests of the interceptor's parts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest


class FakeContext:
    """What the interceptor's parts ask of a grpc.aio.ServicerContext; abort() records its
    arguments and raises AbortError, as grpc does."""

    def __init__(
        self,
        metadata: tuple[tuple[str, str], ...] = (),
        *,
        code: grpc.StatusCode | None = None,
        time_remaining: float | None = None,
        cut: bool = False,
    ) -> None:
        self.metadata = metadata
        self._code = code
        self.remaining = time_remaining
        self.cut = cut  # the call died: its request stream ended without a half-close
        self.aborted: tuple[grpc.StatusCode, str, Any] | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:54321"

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def time_remaining(self) -> float | None:
        return self.remaining

    async def send_initial_metadata(self, _metadata: Any) -> None:
        if self.cut:  # what grpc does on a call its core has cancelled
            raise asyncio.CancelledError

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> None:
        self.aborted = (code, details, trailing_metadata)
        self._code = code
        raise grpc.aio.AbortError()


@pytest.fixture
def make_context() -> Callable[..., Any]:
    """FakeContext(metadata=(), *, code=None, time_remaining=None, cut=False)."""
    return FakeContext
