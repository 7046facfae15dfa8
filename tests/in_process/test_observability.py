"""Metrics scraped over HTTP after known traffic, traces spanning caller and greeter, and the
access log's request and trace ids."""

from __future__ import annotations

import asyncio
import logging
import socket
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import serve_metrics
from tests.in_process.conftest import StartCaller, StartGreeter

GREETER = "acme.greeter.v1.GreeterService"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def metrics_url() -> str:
    """The process's /metrics endpoint, served the way serve() serves it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve_metrics(port, "127.0.0.1")
    return f"http://127.0.0.1:{port}/metrics"


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_count_known_traffic(
    start_greeter: StartGreeter, start_caller: StartCaller, metrics_url: str
) -> None:
    greeter = await start_greeter()
    caller = await start_caller(greeter.port)
    before = scrape(metrics_url)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{greeter.port}") as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        for name in ("Ada", "Alan", "Grace"):
            await stub.SayHello(greeter_pb2.SayHelloRequest(name=name), timeout=5)
        for name in ("", "x" * 101):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.SayHello(greeter_pb2.SayHelloRequest(name=name), timeout=5)
        request = greeter_pb2.SayHelloLanguagesRequest(name="Ada", languages=["en", "fr", "de"])
        assert len([reply async for reply in stub.SayHelloLanguages(request, timeout=5)]) == 3
        chat = stub.Chat(iter([greeter_pb2.ChatRequest(name=n) for n in "ABCD"]), timeout=5)
        assert len([reply async for reply in chat]) == 4
    async with grpc.aio.insecure_channel(f"127.0.0.1:{caller.port}") as channel:
        await caller_pb2_grpc.CallerServiceStub(channel).IntroduceAll(
            caller_pb2.IntroduceAllRequest(names=["Ada", "Alan"]), timeout=5
        )
    after = scrape(metrics_url)

    unary = {"grpc_type": "unary", "grpc_service": GREETER, "grpc_method": "SayHello"}
    # 3 direct successes + 2 from caller's fan-out; 2 invalid.
    assert delta(before, after, "grpc_server_handled_total", **unary, grpc_code="OK") == 5
    assert (
        delta(before, after, "grpc_server_handled_total", **unary, grpc_code="INVALID_ARGUMENT")
        == 2
    )
    assert delta(before, after, "grpc_server_started_total", **unary) == 7
    assert delta(before, after, "grpc_server_handling_seconds_count", **unary) == 7
    assert after[("grpc_server_in_flight", frozenset(unary.items()))] == 0
    stream = {"grpc_type": "server_stream", "grpc_service": GREETER}
    assert (
        delta(
            before, after, "grpc_server_msg_sent_total", **stream, grpc_method="SayHelloLanguages"
        )
        == 3
    )
    bidi = {"grpc_type": "bidi_stream", "grpc_service": GREETER, "grpc_method": "Chat"}
    assert delta(before, after, "grpc_server_msg_received_total", **bidi) == 4
    assert delta(before, after, "grpc_server_msg_sent_total", **bidi) == 4
    client = {"grpc_type": "unary", "grpc_service": GREETER, "grpc_method": "SayHello"}
    assert delta(before, after, "grpc_client_handled_total", **client, grpc_code="OK") == 2
    assert delta(before, after, "grpc_client_handling_seconds_count", **client) == 2
    caller_fanout = {
        "grpc_type": "unary",
        "grpc_service": "acme.caller.v1.CallerService",
        "grpc_method": "IntroduceAll",
    }
    assert delta(before, after, "grpc_server_handled_total", **caller_fanout, grpc_code="OK") == 1


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def server_span(finished: tuple[ReadableSpan, ...], rpc: str) -> ReadableSpan:
    return next(span for span in finished if span.name == rpc and span.kind.name == "SERVER")


async def test_one_trace_spans_caller_and_greeter(
    start_greeter: StartGreeter,
    start_caller: StartCaller,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider, exporter = spans
    caplog.set_level(logging.INFO, logger="acme.access")
    greeter = await start_greeter(tracer_provider=provider)
    caller = await start_caller(greeter.port, tracer_provider=provider)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{caller.port}") as channel:
        await caller_pb2_grpc.CallerServiceStub(channel).Introduce(
            caller_pb2.IntroduceRequest(name="Ada"), timeout=5
        )
    finished = exporter.get_finished_spans()
    caller_span = server_span(finished, "/acme.caller.v1.CallerService/Introduce")
    greeter_span = server_span(finished, f"/{GREETER}/SayHello")
    client_span = next(span for span in finished if span.kind.name == "CLIENT")
    trace_id = caller_span.context.trace_id
    assert greeter_span.context.trace_id == trace_id
    assert client_span.context.trace_id == trace_id
    assert greeter_span.parent is not None
    assert greeter_span.parent.span_id == client_span.context.span_id
    logged_trace_ids = {
        record.__dict__.get("trace_id") for record in caplog.records if record.name == "acme.access"
    }
    assert logged_trace_ids == {format(trace_id, "032x")}


async def test_request_id_is_taken_logged_and_propagated(
    start_greeter: StartGreeter, start_caller: StartCaller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="acme.access")
    greeter = await start_greeter()
    caller = await start_caller(greeter.port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{caller.port}") as channel:
        stub = caller_pb2_grpc.CallerServiceStub(channel)
        await stub.Introduce(
            caller_pb2.IntroduceRequest(name="Ada"),
            timeout=5,
            metadata=(("x-request-id", "req-1234"),),
        )
        await stub.Introduce(caller_pb2.IntroduceRequest(name="Ada"), timeout=5)
    lines = [vars(record) for record in caplog.records if record.name == "acme.access"]
    by_method: dict[str, list[str]] = {}
    for line in lines:
        assert {"method", "code", "duration_ms", "peer", "instance", "request_id"} <= line.keys()
        by_method.setdefault(line["method"], []).append(line["request_id"])
    introduced = by_method["/acme.caller.v1.CallerService/Introduce"]
    greeted = by_method[f"/{GREETER}/SayHello"]
    assert introduced[0] == "req-1234"
    assert len(introduced[1]) == 32  # generated when the client sent none
    assert greeted == introduced  # caller passed both on to greeter


@pytest.mark.parametrize(
    ("access_log", "logged"),
    [("all", ["OK", "INVALID_ARGUMENT"]), ("errors", ["INVALID_ARGUMENT"]), ("off", [])],
)
async def test_access_log_setting_chooses_which_calls_get_a_line(
    start_greeter: StartGreeter,
    caplog: pytest.LogCaptureFixture,
    access_log: str,
    logged: list[str],
) -> None:
    caplog.set_level(logging.INFO, logger="acme.access")
    greeter = await start_greeter(access_log=access_log)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{greeter.port}") as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        await stub.SayHello(greeter_pb2.SayHelloRequest(name="Ada"), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.SayHello(greeter_pb2.SayHelloRequest(name=""), timeout=5)
        # The server writes its line just after it sent the status the client already has.
        await asyncio.sleep(0.2)
    codes = [
        getattr(record, "code", None) for record in caplog.records if record.name == "acme.access"
    ]
    assert codes == logged
