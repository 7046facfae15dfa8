"""Every metric the docs name moves when its event happens, over real sockets: a test (or a
parametrized case) per metric, registered by `covers`, run at each place that serves it: the
grpc_server_* metrics of greeter called directly, of greeter under GRPC_WORKERS (the
supervisor's merged /metrics), of the gateway (the edge) and of greeter behind the gateway;
the grpc_client_* metrics of caller's channel to greeter and of the gateway's. Calls through
the gateway go as gRPC over h2c, unary ones as Connect JSON over HTTP/1.1 (what curl and
browsers send).

And the docs cannot drift from these tests: a metric the docs name that no test here covers
fails, as does a covered metric the docs do not name, or a family the processes serve that
the docs do not name."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import grpc
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from tests.processes import (
    CALLER_SERVICE,
    EOF,
    GREETER_SERVICE,
    HOST,
    RPC_TIMEOUT,
    ServiceFactory,
    free_port,
    open_channel,
)

from .gateway_http import post

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------ what the docs name

# The Markdown files that document the repo (a new service's README joins by its path).
DOC_FILES = (
    "README.md",
    "docs/*.md",
    "bench/README.md",
    "deploy/k8s/README.md",
    "services/*/README.md",
)

# A word is a metric's name when it has a namespace of this repo's metrics or ends as
# Prometheus names end (unit or kind: prometheus.io/docs/practices/naming); `name_*` names a
# family of them when it has a metric namespace (the repo's, or a runtime's or tool's the docs
# compare it with).
_WORD = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)*(?:_\*)?")
_NAMESPACES = ("grpc_server_", "grpc_client_", "gateway_")
_FAMILIES = ("grpc_", "gateway_", "process_", "python_", "go_", "envoy_")
_ENDINGS = ("_total", "_seconds", "_bytes", "_in_flight", "_info", "_ratio")
_HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")  # a histogram's series: named by its family

# Families the docs name that are not this repo's metrics, so no test here can move them.
NOT_OURS = {
    "envoy_cluster_grpc_*": "Envoy's statistics (docs/edge.md's comparison), served by none",
    "go_*": "client_golang's Go runtime families (greeter-go's README), not the repo's metrics",
    "python_*": "prometheus_client's runtime families, not the repo's metrics",
}


def metric_names(text: str) -> set[str]:
    """The metric names (and `family_*` wildcards) a Markdown text mentions; a histogram's
    series by the name of its family."""
    found: set[str] = set()
    for word in _WORD.findall(text):
        if word.endswith("_*"):
            if word.startswith(_FAMILIES):
                found.add(word)
            continue
        if word.startswith(_NAMESPACES + _FAMILIES):
            series = next((end for end in _HISTOGRAM_SERIES if word.endswith(end)), "")
            word = word.removesuffix(series)
        if "_" in word and (word.startswith(_NAMESPACES) or word.endswith(_ENDINGS)):
            found.add(word)
    return found


def documented_metrics() -> dict[str, list[str]]:
    """Each metric name (or wildcard) the docs mention -> the files that mention it."""
    where: dict[str, list[str]] = {}
    for pattern in DOC_FILES:
        for path in sorted(ROOT.glob(pattern)):
            for name in metric_names(path.read_text(encoding="utf-8")):
                where.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return where


# Each metric the tests below show moving -> the test that does.
COVERED: dict[str, str] = {}

TestT = TypeVar("TestT", bound=Callable[..., Awaitable[None]])


def covers(*metrics: str) -> Callable[[TestT], TestT]:
    """Registers test as the one that shows each of metrics moving when its event happens."""

    def register(test: TestT) -> TestT:
        for metric in metrics:
            assert metric not in COVERED, f"{metric} is covered twice"
            COVERED[metric] = test.__name__
        return test

    return register


# ------------------------------------------------------------------ the processes


@dataclass(frozen=True)
class Stack:
    """The processes by name: greeter, greeter-workers (GRPC_WORKERS=2), caller (-> greeter)
    and gateway (-> caller and greeter); their addresses and /metrics ports."""

    address: dict[str, str]
    metrics: dict[str, int]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    factory = ServiceFactory(tmp_path_factory.mktemp("metrics"))
    names = ("greeter", "greeter-workers", "caller", "gateway")
    metrics = {name: free_port() for name in names}
    env = {name: {"METRICS_PORT": str(port)} for name, port in metrics.items()}
    try:
        greeter = factory.start_greeter(env["greeter"])
        workers = factory.start_greeter({**env["greeter-workers"], "GRPC_WORKERS": "2"})
        caller = factory.start_caller(greeter.address, {**env["caller"], "GREETER_TIMEOUT": "5"})
        gateway = factory.start_gateway(
            {
                **env["gateway"],
                "GATEWAY_SERVICES": f"{CALLER_SERVICE},{GREETER_SERVICE}",
                "CALLER_TARGET": caller.address,
                "GREETER_TARGET": greeter.address,
            }
        )
        processes = (greeter, workers, caller, gateway)
        address = {name: process.address for name, process in zip(names, processes, strict=True)}
        yield Stack(address, metrics)
    finally:
        factory.stop_all()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape_text(metrics_port: int) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
    with opener.open(f"http://{HOST}:{metrics_port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    return text


async def scrape(metrics_port: int) -> Samples:
    """Every sample of a process's /metrics, by name and labels."""
    text = await asyncio.to_thread(scrape_text, metrics_port)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


GRPC_TYPES = {
    "SayHello": "unary",
    "SayHelloLanguages": "server_stream",
    "GreetMany": "client_stream",
    "Chat": "bidi_stream",
}


def labels(method: str) -> dict[str, str]:
    """The labels of one of greeter's methods."""
    return {"grpc_type": GRPC_TYPES[method], "grpc_service": GREETER_SERVICE, "grpc_method": method}


SAY_HELLO = labels("SayHello")


def value(samples: Samples, name: str, of: dict[str, str]) -> float:
    return samples.get((name, frozenset(of.items())), 0.0)


# ------------------------------------------------------------------ places and calls


def greeter_stub(channel: grpc.aio.Channel) -> greeter_pb2_grpc.GreeterServiceAsyncStub:
    return greeter_pb2_grpc.GreeterServiceStub(channel)


async def grpc_say_hello(address: str, name: str) -> str:
    """SayHello over gRPC; the gRPC name of its status."""
    async with open_channel(address) as channel:
        request = greeter_pb2.SayHelloRequest(name=name)
        try:
            await greeter_stub(channel).SayHello(request, timeout=RPC_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return "OK"


def _connect_json_say_hello(address: str, name: str) -> str:
    body = json.dumps({"name": name}).encode()
    path = f"/{GREETER_SERVICE}/SayHello"
    response = post(address, path, body, {"content-type": "application/json"})
    if response.status == 200:
        return "OK"
    code: str = response.json()["code"]
    return "CANCELLED" if code == "canceled" else code.upper()


async def connect_json_say_hello(address: str, name: str) -> str:
    """SayHello as Connect JSON (HTTP/1.1, as curl sends it); the gRPC name of its status."""
    return await asyncio.to_thread(_connect_json_say_hello, address, name)


async def introduce(address: str, name: str) -> str:
    """Caller's IntroduceAll of one name, which calls greeter's SayHello whatever the name
    (caller checks only a name's length itself; Introduce would refuse an empty name before
    calling greeter): the gRPC name of that SayHello's status, as caller reports it."""
    async with open_channel(address) as channel:
        stub = caller_pb2_grpc.CallerServiceStub(channel)
        reply = await stub.IntroduceAll(
            caller_pb2.IntroduceAllRequest(names=[name]), timeout=RPC_TIMEOUT
        )
    return reply.introductions[0].error_code or "OK"


@dataclass(frozen=True)
class Place:
    """Where calls go and whose metrics are read: say_hello(name) makes one call that ends in
    one SayHello of greeter's (the gRPC name of its status returned); streams are called over
    gRPC at address (the gateway speaks it over h2c too)."""

    say_hello: Callable[[str], Awaitable[str]]
    metrics_port: int
    address: str

    async def scrape(self) -> Samples:
        return await scrape(self.metrics_port)


# Places whose grpc_server_* metrics count greeter's methods: greeter called directly, with
# GRPC_WORKERS, the gateway (its own metrics), greeter behind the gateway.
SERVER_PLACES = ("greeter", "greeter-workers", "gateway", "greeter-behind-gateway")
# Places whose channel's grpc_client_* metrics count the calls to greeter's SayHello.
CLIENT_PLACES = ("caller-to-greeter", "gateway-to-greeter")


def place(name: str, stack: Stack) -> Place:
    """The place of SERVER_PLACES or CLIENT_PLACES called name."""
    if name in ("greeter", "greeter-workers"):
        address = stack.address[name]
        return Place(partial(grpc_say_hello, address), stack.metrics[name], address)
    if name == "caller-to-greeter":
        caller = stack.address["caller"]
        return Place(partial(introduce, caller), stack.metrics["caller"], caller)
    gateway = stack.address["gateway"]
    metrics = stack.metrics["greeter" if name == "greeter-behind-gateway" else "gateway"]
    return Place(partial(connect_json_say_hello, gateway), metrics, gateway)


@pytest.fixture(params=SERVER_PLACES)
def server(request: pytest.FixtureRequest, stack: Stack) -> Place:
    return place(request.param, stack)


async def hello_ok_and_refused(place: Place) -> None:
    """Two SayHello calls: one answered OK, one INVALID_ARGUMENT (an empty name)."""
    assert await place.say_hello("Ada") == "OK"
    assert await place.say_hello("") == "INVALID_ARGUMENT"


async def streams(place: Place) -> None:
    """SayHelloLanguages with 3 replies, GreetMany with 3 requests, Chat with 4 of each."""
    async with open_channel(place.address) as channel:
        stub = greeter_stub(channel)
        asked = greeter_pb2.SayHelloLanguagesRequest(name="Ada", languages=["en", "fr", "de"])
        assert len([r async for r in stub.SayHelloLanguages(asked, timeout=RPC_TIMEOUT)]) == 3
        names = [greeter_pb2.GreetManyRequest(name=name) for name in ("Ada", "Alan", "Grace")]
        greeted = await stub.GreetMany(iter(names), timeout=RPC_TIMEOUT)
        assert greeted.count == 3
        chat = stub.Chat(iter([greeter_pb2.ChatRequest(name=n) for n in "ABCD"]), timeout=5)
        assert len([reply async for reply in chat]) == 4


Moves = Callable[[str, dict[str, str]], float]  # (sample name, labels) -> how far it moved


async def moves_over(place: Place, *events: Callable[[Place], Awaitable[None]]) -> Moves:
    """How far each sample of place's /metrics moved over events."""
    before = await place.scrape()
    for event in events:
        await event(place)
    after = await place.scrape()
    return lambda name, of: value(after, name, of) - value(before, name, of)


def started_twice(moves: Moves, counter: str) -> None:
    assert moves(counter, SAY_HELLO) == 2


def handled_ok_and_refused(moves: Moves, counter: str) -> None:
    assert moves(counter, {**SAY_HELLO, "grpc_code": "OK"}) == 1
    assert moves(counter, {**SAY_HELLO, "grpc_code": "INVALID_ARGUMENT"}) == 1


def observed_twice(moves: Moves, histogram: str) -> None:
    assert moves(f"{histogram}_count", SAY_HELLO) == 2
    assert moves(f"{histogram}_bucket", {**SAY_HELLO, "le": "+Inf"}) == 2
    assert moves(f"{histogram}_sum", SAY_HELLO) > 0  # durations are positive


# The metrics of whole calls: how each moves over hello_ok_and_refused.
CALL_METRICS: dict[str, Callable[[Moves, str], None]] = {
    "grpc_server_started_total": started_twice,
    "grpc_server_handled_total": handled_ok_and_refused,
    "grpc_server_handling_seconds": observed_twice,
    "grpc_client_started_total": started_twice,
    "grpc_client_handled_total": handled_ok_and_refused,
    "grpc_client_handling_seconds": observed_twice,
}


@pytest.mark.parametrize(
    ("metric", "at"),
    [
        (metric, at)
        for metric in CALL_METRICS
        for at in (SERVER_PLACES if metric.startswith("grpc_server_") else CLIENT_PLACES)
    ],
)
@covers(*CALL_METRICS)
async def test_metric_of_calls(metric: str, at: str, stack: Stack) -> None:
    moves = await moves_over(place(at, stack), hello_ok_and_refused)
    CALL_METRICS[metric](moves, metric)


@covers("grpc_server_in_flight")
async def test_grpc_server_in_flight(server: Place) -> None:
    async with open_channel(server.address) as channel:
        chat = greeter_stub(channel).Chat(None, timeout=RPC_TIMEOUT)
        await chat.write(greeter_pb2.ChatRequest(name="Ada"))
        assert await chat.read() is not EOF  # the call is being served
        during = await server.scrape()
        await chat.done_writing()
        assert await chat.read() is EOF
        assert await chat.code() == grpc.StatusCode.OK
    after = await server.scrape()
    assert value(during, "grpc_server_in_flight", labels("Chat")) == 1
    assert value(after, "grpc_server_in_flight", labels("Chat")) == 0


# How far the message counters move over hello_ok_and_refused and streams, per method: the
# refused SayHello's request was received too, and it sent no reply.
MESSAGE_METRICS = {
    "grpc_server_msg_received_total": {
        "SayHello": 2,
        "SayHelloLanguages": 1,
        "GreetMany": 3,
        "Chat": 4,
    },
    "grpc_server_msg_sent_total": {
        "SayHello": 1,
        "SayHelloLanguages": 3,
        "GreetMany": 1,
        "Chat": 4,
    },
}


@pytest.mark.parametrize("metric", MESSAGE_METRICS)
@covers(*MESSAGE_METRICS)
async def test_message_metric(metric: str, server: Place) -> None:
    moves = await moves_over(server, hello_ok_and_refused, streams)
    counted = {method: moves(metric, labels(method)) for method in MESSAGE_METRICS[metric]}
    assert counted == MESSAGE_METRICS[metric]


# ------------------------------------------------------------------ docs <-> tests


def drift(documented: dict[str, list[str]], covered: Iterable[str]) -> list[str]:
    """What keeps the docs and the tests apart: a named metric without a test, a tested one
    the docs do not name, a family (`name_*`) matching no tested metric (unless NOT_OURS)."""
    problems: list[str] = []
    tested = set(covered)
    names = {name for name in documented if not name.endswith("_*")}
    problems += [f"{name} ({documented[name]}) has no test" for name in sorted(names - tested)]
    problems += [f"{name} is tested but the docs do not name it" for name in sorted(tested - names)]
    for family in sorted(name for name in documented if name.endswith("_*")):
        matched = any(name.startswith(family.removesuffix("*")) for name in tested)
        if matched == (family in NOT_OURS):
            said = "is not ours but matches" if matched else "matches no"
            problems.append(f"{family} ({documented[family]}) {said} tested metric")
    return problems


def test_the_docs_name_exactly_the_metrics_the_tests_show_moving() -> None:
    assert drift(documented_metrics(), COVERED) == []


def test_drift_is_found() -> None:
    """drift() itself, on a documented metric with no test, a tested one not documented and
    a family with no tested metric."""
    documented = {**documented_metrics(), "orders_created_total": ["docs/x.md"]}
    documented["orders_*"] = ["docs/x.md"]
    del documented["grpc_server_in_flight"]
    assert drift(documented, COVERED) == [
        "orders_created_total (['docs/x.md']) has no test",
        "grpc_server_in_flight is tested but the docs do not name it",
        "orders_* (['docs/x.md']) matches no tested metric",
    ]


def family_names(families: Iterable[Any]) -> set[str]:
    """The names metrics are known by (a counter's with its `_total`)."""
    return {f"{f.name}_total" if f.type == "counter" else f.name for f in families}


def test_every_family_the_processes_serve_is_documented(stack: Stack) -> None:
    """What prometheus_client adds to every process on its own (process_*, python_*) aside."""
    runtime = (
        prometheus_client.PROCESS_COLLECTOR,
        prometheus_client.PLATFORM_COLLECTOR,
        prometheus_client.GC_COLLECTOR,
    )
    theirs = family_names(family for collector in runtime for family in collector.collect())
    documented = documented_metrics().keys()
    for place, port in stack.metrics.items():
        served = family_names(text_string_to_metric_families(scrape_text(port)))
        ours = served - theirs
        assert ours, f"{place} serves no metric of its own"
        assert ours <= documented, f"{place} serves undocumented metrics: {ours - documented}"


def test_the_scan_finds_metric_names_as_the_docs_write_them() -> None:
    """metric_names() itself: names in tables, prose and code spans, histogram series by
    their family, wildcards; settings, labels and proto options are no metrics."""
    text = (
        "| `grpc_server_started_total` | counter |\n"
        "with labels `grpc_code` and `grpc_type`; `METRICS_PORT`; `go_package`; acme_common\n"
        "orders_created_total counts; see grpc_client_handling_seconds_bucket and the\n"
        "`grpc_server_*` family, `process_resident_memory_bytes`, `gateway_open_connections`,\n"
        "`tests/integration/test_gateway_*.py`, `python_gc_objects_collected_total`."
    )
    assert metric_names(text) == {
        "grpc_server_started_total",
        "orders_created_total",
        "grpc_client_handling_seconds",
        "grpc_server_*",
        "process_resident_memory_bytes",
        "gateway_open_connections",
        "python_gc_objects_collected_total",
    }
