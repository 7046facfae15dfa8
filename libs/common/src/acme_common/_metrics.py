"""Prometheus metrics in the grpc_server_* / grpc_client_* naming of go-grpc-prometheus, and
the per-method bookkeeping of both sides: each method's labelled children, bound once."""

from __future__ import annotations

import logging
import os
from typing import Any

import grpc
from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

log = logging.getLogger("acme.metrics")
# The *_created series double the output and nobody graphs them.
disable_created_metrics()  # type: ignore[no-untyped-call]

_LABELS = ("grpc_type", "grpc_service", "grpc_method")
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

SERVER_STARTED = Counter("grpc_server_started", "RPCs started on the server.", _LABELS)
SERVER_HANDLED = Counter(
    "grpc_server_handled", "RPCs completed on the server, by status code.", (*_LABELS, "grpc_code")
)
SERVER_HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time to complete an RPC on the server.",
    _LABELS,
    buckets=_BUCKETS,
)
SERVER_IN_FLIGHT = Gauge(
    "grpc_server_in_flight", "RPCs being served now.", _LABELS, multiprocess_mode="livesum"
)
SERVER_MSG_RECEIVED = Counter(
    "grpc_server_msg_received", "Stream messages received by the server.", _LABELS
)
SERVER_MSG_SENT = Counter("grpc_server_msg_sent", "Stream messages sent by the server.", _LABELS)

CLIENT_STARTED = Counter("grpc_client_started", "RPCs started by the client.", _LABELS)
CLIENT_HANDLED = Counter(
    "grpc_client_handled", "RPCs completed by the client, by status code.", (*_LABELS, "grpc_code")
)
CLIENT_HANDLING_SECONDS = Histogram(
    "grpc_client_handling_seconds",
    "Time until the client received the RPC's status.",
    _LABELS,
    buckets=_BUCKETS,
)


def method_labels(full_method: str, grpc_type: str) -> tuple[str, str, str]:
    """`/pkg.Service/Method` -> (grpc_type, "pkg.Service", "Method")."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return grpc_type, service, method


class _HandledByCode:
    """A method's `*_handled` counter children, one per status code, made when first met."""

    def __init__(self, counter: Counter, labels: tuple[str, str, str]) -> None:
        self._counter = counter
        self._labels = labels
        self._children: dict[grpc.StatusCode, Any] = {}

    def __call__(self, code: grpc.StatusCode) -> Any:
        """The child of code (a Counter child: `.inc()`)."""
        child = self._children.get(code)
        if child is None:
            child = self._children[code] = self._counter.labels(*self._labels, code.name)
        return child


class _Unrecorded:
    """Stands in for a metric child that is not updated (ServerMethodMetrics, recorded=False)."""

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


_UNRECORDED: Any = _Unrecorded()


class ServerMethodMetrics:
    """One served method's grpc_server_* children; the handled ones per status code, as met.
    recorded=False: none is updated (a bench variant measures what updating them costs)."""

    def __init__(self, method: str, grpc_type: str, *, recorded: bool = True) -> None:
        self.labels = method_labels(method, grpc_type)
        if not recorded:
            self.started = self.in_flight = self.latency = _UNRECORDED
            self.received = self.sent = _UNRECORDED
            self.handled: Any = lambda _code: _UNRECORDED
            return
        self.started = SERVER_STARTED.labels(*self.labels)
        self.in_flight = SERVER_IN_FLIGHT.labels(*self.labels)
        self.latency = SERVER_HANDLING_SECONDS.labels(*self.labels)
        self.received = SERVER_MSG_RECEIVED.labels(*self.labels)
        self.sent = SERVER_MSG_SENT.labels(*self.labels)
        self.handled = _HandledByCode(SERVER_HANDLED, self.labels)


class ClientMethodMetrics:
    """One called (unary) method's grpc_client_* children; handled ones per status code."""

    def __init__(self, method: str) -> None:
        self.labels = method_labels(method, "unary")
        self.started = CLIENT_STARTED.labels(*self.labels)
        self.latency = CLIENT_HANDLING_SECONDS.labels(*self.labels)
        self.handled = _HandledByCode(CLIENT_HANDLED, self.labels)


def serve_metrics(port: int, host: str) -> None:
    """Expose /metrics on host:port from a background thread (port 0 = disabled). Workers
    under a supervisor (PROMETHEUS_MULTIPROC_DIR set) leave that to the supervisor."""
    if port and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        start_http_server(port, addr=host)
        log.info("metrics", extra={"address": f"{host}:{port}", "path": "/metrics"})
