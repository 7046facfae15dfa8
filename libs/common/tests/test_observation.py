"""Per-call bookkeeping: metrics at start and end, the status code a call ended with, the
request id fallback, the checked request stream and the access-log line."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2
from prometheus_client import REGISTRY

from acme_common._call.malformed import malformed
from acme_common._call.observation import Observation, status_code
from acme_common._call.request_ids import current_request_id
from acme_common._call.stream_end import StreamCut, StreamEnd
from acme_common._errors import InvalidArgument
from acme_common._metrics import method_labels
from acme_common._settings import ServerSettings

SETTINGS = ServerSettings(instance_name="replica-1", access_log="all")


def never() -> bool:
    return False


def always() -> bool:
    return True


def sample(name: str, full_method: str, grpc_type: str, **more: str) -> float:
    kind, service, method = method_labels(full_method, grpc_type)
    labels = {"grpc_type": kind, "grpc_service": service, "grpc_method": method, **more}
    return REGISTRY.get_sample_value(name, labels) or 0.0


def observation(method: str, grpc_type: str = "unary") -> Observation:
    return Observation(method, grpc_type, SETTINGS, tracing=False, shutting_down=never)


@pytest.mark.parametrize(
    ("error", "context_kwargs", "shutting_down", "expected"),
    [
        (None, {}, never, grpc.StatusCode.OK),
        (None, {"code": grpc.StatusCode.NOT_FOUND}, never, grpc.StatusCode.NOT_FOUND),
        (StreamCut(StreamEnd.DEADLINE), {}, always, grpc.StatusCode.DEADLINE_EXCEEDED),
        (asyncio.CancelledError(), {}, never, grpc.StatusCode.CANCELLED),
        (
            asyncio.CancelledError(),
            {"time_remaining": 0.0},
            never,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        ),
        (asyncio.CancelledError(), {"time_remaining": 5.0}, always, grpc.StatusCode.UNAVAILABLE),
        (GeneratorExit(), {}, never, grpc.StatusCode.CANCELLED),
        (RuntimeError(), {"code": grpc.StatusCode.INTERNAL}, never, grpc.StatusCode.INTERNAL),
    ],
)
def test_status_code(
    error: BaseException | None,
    context_kwargs: dict[str, Any],
    shutting_down: Callable[[], bool],
    expected: grpc.StatusCode,
    make_context: Callable[..., Any],
) -> None:
    assert status_code(make_context(**context_kwargs), error, shutting_down) is expected


def test_a_unary_call_is_counted_once_and_logged_once(
    make_context: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="acme.access")
    method = "/test.observation.v1.Service/Unary"
    observed = observation(method)
    context = make_context()

    def call() -> None:  # in a context of its own, as grpc runs each RPC in a task
        started, request = observed.begin("request", context)
        assert request == "request"
        assert sample("grpc_server_in_flight", method, "unary") == 1
        observed.end(started, context, None)

    contextvars.copy_context().run(call)
    assert sample("grpc_server_started_total", method, "unary") == 1
    assert sample("grpc_server_msg_received_total", method, "unary") == 1
    assert sample("grpc_server_in_flight", method, "unary") == 0
    assert sample("grpc_server_handled_total", method, "unary", grpc_code="OK") == 1
    assert sample("grpc_server_handling_seconds_count", method, "unary") == 1
    [line] = caplog.records
    assert (line.method, line.code, line.instance) == (method, "OK", "replica-1")  # type: ignore[attr-defined]


def test_begin_takes_the_request_id_from_the_context_when_none_is_set(
    make_context: Callable[..., Any],
) -> None:
    context = make_context((("x-request-id", "req-9"),))
    observed = observation("/test.observation.v1.Service/Direct")

    def begin_in_a_new_task_context() -> str | None:
        current_request_id.set(None)
        observed.begin("request", context)
        return current_request_id.get()

    assert contextvars.copy_context().run(begin_in_a_new_task_context) == "req-9"


async def requests(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def test_checked_stream_counts_messages_and_ends_on_half_close(
    make_context: Callable[..., Any],
) -> None:
    method = "/test.observation.v1.Service/ClientStream"
    observed = observation(method, "client_stream")
    messages = [wrappers_pb2.StringValue(value=name) for name in ("a", "b")]
    _, stream = observed.begin(requests(*messages), make_context())
    assert [message async for message in stream] == messages
    assert sample("grpc_server_msg_received_total", method, "client_stream") == 2


async def test_checked_stream_rejects_a_malformed_message(
    make_context: Callable[..., Any],
) -> None:
    observed = observation("/test.observation.v1.Service/Malformed", "bidi_stream")
    _, stream = observed.begin(requests("ok", malformed("bad")), make_context())
    assert await anext(stream) == "ok"
    with pytest.raises(InvalidArgument):
        await anext(stream)


async def test_a_cut_stream_raises_stream_cut(make_context: Callable[..., Any]) -> None:
    observed = observation("/test.observation.v1.Service/Cut", "client_stream")
    _, stream = observed.begin(requests("a"), make_context(time_remaining=0.0, cut=True))
    with pytest.raises(StreamCut) as raised:
        _ = [message async for message in stream]
    assert raised.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
