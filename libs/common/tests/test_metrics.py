"""Metric names and labels, and each method's children bound once, on both sides."""

from __future__ import annotations

import grpc
from prometheus_client import REGISTRY

from acme_common._metrics import ClientMethodMetrics, ServerMethodMetrics, method_labels


def sample(name: str, full_method: str, grpc_type: str, **more: str) -> float:
    kind, service, method = method_labels(full_method, grpc_type)
    labels = {"grpc_type": kind, "grpc_service": service, "grpc_method": method, **more}
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_method_labels() -> None:
    assert method_labels("/acme.greeter.v1.GreeterService/SayHello", "unary") == (
        "unary",
        "acme.greeter.v1.GreeterService",
        "SayHello",
    )


def test_server_children_carry_the_method_labels() -> None:
    method = "/test.metrics.v1.Server/Stream"
    bound = ServerMethodMetrics(method, "bidi_stream")
    bound.started.inc()
    bound.received.inc(3)
    bound.sent.inc(2)
    bound.in_flight.inc()
    bound.latency.observe(0.003)
    bound.handled(grpc.StatusCode.OK).inc()
    bound.handled(grpc.StatusCode.CANCELLED).inc()
    bound.handled(grpc.StatusCode.CANCELLED).inc()
    assert sample("grpc_server_started_total", method, "bidi_stream") == 1
    assert sample("grpc_server_msg_received_total", method, "bidi_stream") == 3
    assert sample("grpc_server_msg_sent_total", method, "bidi_stream") == 2
    assert sample("grpc_server_in_flight", method, "bidi_stream") == 1
    assert sample("grpc_server_handling_seconds_count", method, "bidi_stream") == 1
    assert sample("grpc_server_handling_seconds_bucket", method, "bidi_stream", le="0.005") == 1
    handled = "grpc_server_handled_total"
    assert sample(handled, method, "bidi_stream", grpc_code="OK") == 1
    assert sample(handled, method, "bidi_stream", grpc_code="CANCELLED") == 2


def test_handled_children_are_bound_once_per_code() -> None:
    bound = ServerMethodMetrics("/test.metrics.v1.Server/Once", "unary")
    assert bound.handled(grpc.StatusCode.OK) is bound.handled(grpc.StatusCode.OK)
    assert bound.handled(grpc.StatusCode.OK) is not bound.handled(grpc.StatusCode.INTERNAL)
    client = ClientMethodMetrics("/test.metrics.v1.Client/Once")
    assert client.handled(grpc.StatusCode.OK) is client.handled(grpc.StatusCode.OK)


def test_client_children_carry_the_method_labels() -> None:
    method = "/test.metrics.v1.Client/Call"
    bound = ClientMethodMetrics(method)
    bound.started.inc()
    bound.latency.observe(0.02)
    bound.handled(grpc.StatusCode.UNAVAILABLE).inc()
    assert sample("grpc_client_started_total", method, "unary") == 1
    assert sample("grpc_client_handling_seconds_count", method, "unary") == 1
    assert sample("grpc_client_handled_total", method, "unary", grpc_code="UNAVAILABLE") == 1
    assert sample("grpc_server_started_total", method, "unary") == 0  # the client side only
