"""tracing: off by default (no interceptor at all), or an OpenTelemetry provider."""

from __future__ import annotations

from acme_common._tracing import (
    client_interceptors,
    configure_tracing,
    current_trace_id,
    server_interceptors,
)


def test_tracing_off_installs_nothing() -> None:
    assert configure_tracing("none", "test") is None
    assert server_interceptors(None) == []
    assert client_interceptors(None) == []
    assert current_trace_id() is None


def test_tracing_on_gives_interceptors_and_trace_ids() -> None:
    provider = configure_tracing("console", "test")
    assert provider is not None
    assert len(server_interceptors(provider)) == 1
    assert len(client_interceptors(provider)) == 4  # one per RPC kind
    with provider.get_tracer("test").start_as_current_span("span"):
        trace_id = current_trace_id()
    assert trace_id is not None
    assert len(trace_id) == 32
    provider.shutdown()
