"""MessageCount at its edges, where the real-socket tests cannot look: a client that goes
away mid-stream still gets the forwarding's cleanup run (the inner stream is closed, not left
to the garbage collector) and counts only the replies it took; a request that fails to be
read is not counted. (The counts of whole calls over real sockets:
tests/integration/test_metrics_documented.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from prometheus_client import REGISTRY

from gateway.observation import EdgeObservation, MessageCount

SERVICE = "acme.test.v1.MessageCountService"


def context(method: str) -> Any:
    """What MessageCount reads of connectrpc's RequestContext: the method."""
    info: MethodInfo[Any, Any] = MethodInfo(
        name=method,
        service_name=SERVICE,
        input=object,
        output=object,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=StreamType.BIDI_STREAM,
    )
    return SimpleNamespace(method=info)


def count(metric: str, method: str) -> float | None:
    labels = {"grpc_type": "bidi_stream", "grpc_service": SERVICE, "grpc_method": method}
    return REGISTRY.get_sample_value(metric, labels)


async def requests(*names: str, failure: Exception | None = None) -> AsyncIterator[str]:
    for name in names:
        yield name
    if failure is not None:
        raise failure


async def test_a_client_gone_mid_stream_closes_the_forwarding() -> None:
    closed: list[bool] = []

    async def forwarding(incoming: AsyncIterator[str], _ctx: Any) -> AsyncIterator[str]:
        try:
            async for name in incoming:
                yield f"hello {name}"
        finally:
            closed.append(True)  # where the forwarding cancels its call downstream

    counting = MessageCount(EdgeObservation(instance="i", which="off"))
    replies = counting.intercept_bidi_stream(
        forwarding, requests("a", "b", "c"), context("GoneMidStream")
    )
    assert await anext(replies) == "hello a"
    assert await anext(replies) == "hello b"
    await replies.aclose()  # type: ignore[attr-defined]  # the client went away
    assert closed == [True]
    assert (
        count("grpc_server_msg_sent_total", "GoneMidStream") == 1
    )  # "hello b" was not written yet
    assert count("grpc_server_msg_received_total", "GoneMidStream") == 2


async def test_a_request_that_fails_to_be_read_is_not_counted() -> None:
    async def forwarding(incoming: AsyncIterator[str], _ctx: Any) -> AsyncIterator[str]:
        async for name in incoming:
            yield name

    counting = MessageCount(EdgeObservation(instance="i", which="off"))
    replies = counting.intercept_bidi_stream(
        forwarding, requests("a", failure=ValueError("too large")), context("ReadFails")
    )
    with pytest.raises(ValueError, match="too large"):
        _ = [reply async for reply in replies]
    assert count("grpc_server_msg_received_total", "ReadFails") == 1
    assert count("grpc_server_msg_sent_total", "ReadFails") == 1
