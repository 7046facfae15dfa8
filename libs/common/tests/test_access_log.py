"""The access log: one line per RPC with its fields; ACCESS_LOG=all|errors|off; probes at
DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider

from acme_common._call.access_log import AccessLog
from acme_common._call.request_ids import current_request_id

METHOD = "/test.v1.Service/Method"
OK, FAILED = grpc.StatusCode.OK, grpc.StatusCode.INTERNAL


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog, capturing the access log down to DEBUG."""
    caplog.set_level(logging.DEBUG, logger="acme.access")
    return caplog


def test_line_fields(make_context: Callable[..., Any], access: pytest.LogCaptureFixture) -> None:
    token = current_request_id.set("req-1")
    try:
        access_log = AccessLog(METHOD, instance="replica-1", which="all", tracing=False)
        access_log.record(OK, 0.0012345, make_context(), None)
    finally:
        current_request_id.reset(token)
    [line] = access.records
    assert (line.name, line.levelno, line.getMessage()) == ("acme.access", logging.INFO, "rpc")
    fields = {
        key: getattr(line, key)
        for key in ("method", "code", "duration_ms", "peer", "instance", "request_id")
    }
    assert fields == {
        "method": METHOD,
        "code": "OK",
        "duration_ms": 1.234,
        "peer": "ipv4:127.0.0.1:54321",
        "instance": "replica-1",
        "request_id": "req-1",
    }
    assert not hasattr(line, "trace_id")


@pytest.mark.parametrize(
    ("which", "logged"),
    [("all", ["OK", "INTERNAL"]), ("errors", ["INTERNAL"]), ("off", [])],
)
def test_which_calls_get_a_line(
    which: str,
    logged: list[str],
    make_context: Callable[..., Any],
    access: pytest.LogCaptureFixture,
) -> None:
    access_log = AccessLog(METHOD, instance="i", which=which, tracing=False)
    for code in (OK, FAILED):
        access_log.record(code, 0.001, make_context(), None)
    assert [line.code for line in access.records] == logged  # type: ignore[attr-defined]


def test_probes_are_logged_at_debug(
    make_context: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="acme.access")
    probe = AccessLog("/grpc.health.v1.Health/Check", instance="i", which="all", tracing=False)
    assert probe.level == logging.DEBUG
    probe.record(OK, 0.001, make_context(), None)
    assert caplog.records == []  # below INFO: not even formatted
    caplog.set_level(logging.DEBUG, logger="acme.access")
    probe.record(OK, 0.001, make_context(), None)
    assert [record.levelno for record in caplog.records] == [logging.DEBUG]


def test_a_freed_call_has_no_peer(access: pytest.LogCaptureFixture) -> None:
    class FreedCall:
        def peer(self) -> str:
            raise AssertionError("peer() of a freed call crashes grpcio")

    access_log = AccessLog(METHOD, instance="i", which="all", tracing=False)
    access_log.record(grpc.StatusCode.CANCELLED, 0.001, FreedCall(), GeneratorExit())
    [line] = access.records
    assert not hasattr(line, "peer")  # left out, not None: no line prints `peer=None`


def test_trace_id_when_tracing(
    make_context: Callable[..., Any], access: pytest.LogCaptureFixture
) -> None:
    access_log = AccessLog(METHOD, instance="i", which="all", tracing=True)
    access_log.record(OK, 0.001, make_context(), None)  # no active span
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("rpc") as span:
        access_log.record(OK, 0.001, make_context(), None)
    expected = format(span.get_span_context().trace_id, "032x")
    without_span, with_span = access.records
    assert not hasattr(without_span, "trace_id")  # left out, not None
    assert with_span.trace_id == expected  # type: ignore[attr-defined]
