"""OpenTelemetry tracing, off by default: when on, a span per RPC, with the context propagated
to the services this one calls (opentelemetry-instrumentation-grpc's interceptors)."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter


def span_processor(exporter: str) -> SpanProcessor | None:
    """A batching processor for the named exporter; None for "none"."""
    if exporter == "console":
        return BatchSpanProcessor(ConsoleSpanExporter())
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return BatchSpanProcessor(OTLPSpanExporter())
    return None


def configure_tracing(exporter: str, service_name: str) -> TracerProvider | None:
    """Install a global TracerProvider exporting to `exporter`; None (no cost) when "none"."""
    processor = span_processor(exporter)
    if processor is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return provider


def server_interceptors(provider: TracerProvider | None) -> list[Any]:
    """The tracing server interceptor, when tracing is on."""
    if provider is None:
        return []
    return [aio_server_interceptor(tracer_provider=provider)]  # type: ignore[no-untyped-call]


def client_interceptors(provider: TracerProvider | None) -> list[Any]:
    """The tracing client interceptors (context propagation), when tracing is on."""
    if provider is None:
        return []
    return list(aio_client_interceptors(tracer_provider=provider))  # type: ignore[no-untyped-call]


def current_trace_id() -> str | None:
    """Hex trace id of the active span, if tracing is on and a span is active."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
