"""The Greeter contract (cases.toml) held against every implementation of
acme.greeter.v1.GreeterService that a services/<name>/service.toml declares: each case's
replies, status, message, BadRequest violations and access-log line; health, reflection, the
metrics' names and labels, the `serving` line, the trace id and the drain.

Where an implementation differs on purpose, its service.toml says so ([[tolerated]], with
the reason) and the test holds it to that value instead; a tolerance the implementation no
longer needs fails, so the table stays true. Nothing is skipped silently: an implementation
that cannot be built here (no Go toolchain) is skipped with a banner, and fails under
ACME_REQUIRE_GO_TOOLS=1 (its build's require_variable)."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from acme_devkit.ports import HOST, free_port
from acme_devkit.processes import ServiceError, ServiceProcess
from tests.contracts.greeter.cases import RPC_TIMEOUT, SERVICE, Case, contract, run
from tests.implementations import Builds, Implementation, Pattern, implementations, matches

pytestmark = pytest.mark.integration

CONTRACT = contract()
IMPLEMENTATIONS = implementations(SERVICE)
LOG_WAIT = 10.0  # seconds an access line may take to appear
NO_LINE_WAIT = 0.3  # seconds to wait before saying a call got no access line
ABSENT = "absent"  # a log field's value when the line has no such field

by_implementation = pytest.mark.parametrize(
    "server", IMPLEMENTATIONS, indirect=True, ids=[i.name for i in IMPLEMENTATIONS]
)


@dataclass
class Server:
    implementation: Implementation
    process: ServiceProcess
    metrics_port: int

    def access_lines(self) -> list[dict[str, Any]]:
        return [r for r in self.process.log_records() if r.get("logger") == "acme.access"]

    def check(self, check: str, contract_value: object, actual: object) -> None:
        """actual is the contract's value, or the one this implementation's service.toml
        tolerates at check (and then must not be the contract's: the tolerance is stale)."""
        hold(self.implementation, check, contract_value, actual)


def hold(
    implementation: Implementation, check: str, contract_value: object, actual: object
) -> None:
    tolerance = implementation.tolerated.get(check)
    if tolerance is None:
        assert matches(contract_value, actual), (
            f"{implementation.name} at {check}: {actual!r}, the contract says {contract_value!r}"
        )
        return
    assert not matches(contract_value, actual), (
        f"{implementation.name} at {check} now gives the contract's value {actual!r}: "
        f"remove the tolerance from {implementation.directory.name}/service.toml"
    )
    assert matches(tolerance.actual, actual), (
        f"{implementation.name} at {check}: {actual!r}, neither the contract's "
        f"{contract_value!r} nor the tolerated {tolerance.actual!r} ({tolerance.reason})"
    )


def start(
    implementation: Implementation,
    builds: Builds,
    log_path: Path,
    env: dict[str, str],
) -> ServiceProcess:
    """implementation as a process on a free loopback port, with the contract's settings and
    env; SERVING (or the test fails with its log)."""
    port = free_port()
    settings = {**CONTRACT.server_env, **env, "GRPC_HOST": HOST, "GRPC_PORT": str(port)}
    process = ServiceProcess(
        implementation.name, builds.command(implementation), log_path, settings, port
    )
    try:
        return process.start().wait_ready()
    except ServiceError as error:
        pytest.fail(str(error))


@contextmanager
def own_server(
    implementation: Implementation, builds: Builds, directory: Path, env: dict[str, str]
) -> Iterator[Server]:
    """A process of implementation with env over the contract's settings, for one test."""
    metrics_port = free_port()
    settings = {**env, "METRICS_PORT": str(metrics_port)}
    process = start(implementation, builds, directory / "server.log", settings)
    try:
        yield Server(implementation, process, metrics_port)
    finally:
        code = process.stop()
    assert code == 0, f"{implementation.name} exited {code}; log:\n{process.log_text()}"


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest,
    implementation_builds: Builds,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """One process of the implementation for the module's cases (they leave it unchanged)."""
    implementation: Implementation = request.param
    directory = tmp_path_factory.mktemp(f"contract-{implementation.name}")
    with own_server(implementation, implementation_builds, directory, {}) as served:
        yield served


async def access_line(server: Server, case: Case, before: int) -> dict[str, Any] | None:
    """The access line the call of case wrote after the first `before` lines (None when the
    case expects none, after checking that none came)."""
    if not case.log:
        await asyncio.sleep(NO_LINE_WAIT)
        extra = server.access_lines()[before:]
        assert extra == [], f"{case.id}: expected no access line, got {extra}"
        return None
    deadline = time.monotonic() + LOG_WAIT
    while len(lines := server.access_lines()) <= before:
        assert time.monotonic() < deadline, f"{case.id}: no access line within {LOG_WAIT} s"
        await asyncio.sleep(0.02)
    assert len(lines) == before + 1, f"{case.id}: more than one access line: {lines[before:]}"
    return lines[before]


@by_implementation
@pytest.mark.parametrize("case", CONTRACT.cases, ids=[case.id for case in CONTRACT.cases])
async def test_case(
    server: Server, case: Case, implementation_builds: Builds, tmp_path: Path
) -> None:
    if not case.env:
        await check_case(server, case)
        return
    with own_server(server.implementation, implementation_builds, tmp_path, case.env) as own:
        await check_case(own, case)


async def check_case(server: Server, case: Case) -> None:
    before = len(server.access_lines())
    async with grpc.aio.insecure_channel(server.process.address) as channel:
        outcome = await run(channel, case)

    assert outcome.code == case.code, f"{case.id}: {outcome}"
    if case.replies is not None:
        assert outcome.replies == case.replies
    if case.reply_count is not None:
        assert len(outcome.replies) == case.reply_count
    if case.message is not None:
        server.check(f"case/{case.id}/message", case.message, outcome.message)
    if case.violations is not None or case.code == "INVALID_ARGUMENT":
        server.check(f"case/{case.id}/violations", case.violations or [], outcome.violations)

    line = await access_line(server, case, before)
    if line is None:
        return
    access = CONTRACT.sections["log"]["access"]
    assert sorted(line) == sorted(access["fields"])
    assert (line["logger"], line["level"], line["message"]) == (
        access["logger"],
        access["level"],
        "rpc",
    )
    assert (line["method"], line["code"]) == (case.path, case.code)
    assert line["instance"] == CONTRACT.server_env["INSTANCE_NAME"]
    assert matches(access["peer"], line["peer"]), line
    assert isinstance(line["duration_ms"], int | float), line
    if case.logged_request_id == "generated":
        assert matches(access["generated_request_id"], line["request_id"]), line
        assert line["request_id"] != case.request_id
    else:
        assert line["request_id"] == case.request_id


@by_implementation
async def test_health_is_open_and_serving(server: Server) -> None:
    health = CONTRACT.sections["health"]
    async with grpc.aio.insecure_channel(server.process.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)  # no token: probes have none
        for name in health["serving"]:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=name), timeout=RPC_TIMEOUT
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
        for name in health["not_found"]:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=RPC_TIMEOUT)
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND, name


async def reflect(address: str, request: Any) -> Any:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)  # no token
        call = stub.ServerReflectionInfo(iter([request]), timeout=RPC_TIMEOUT)
        (response,) = [response async for response in call]
    return response


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=[i.name for i in IMPLEMENTATIONS])
async def test_reflection_is_open_and_lists_the_services(
    implementation: Implementation, implementation_builds: Builds, tmp_path: Path
) -> None:
    reflection = CONTRACT.sections["reflection"]
    with own_server(implementation, implementation_builds, tmp_path, reflection["env"]) as server:
        await check_reflection(server, reflection)


async def check_reflection(server: Server, reflection: dict[str, Any]) -> None:
    listed = await reflect(
        server.process.address, reflection_pb2.ServerReflectionRequest(list_services="")
    )
    names = sorted(entry.name for entry in listed.list_services_response.service)
    server.check("reflection/services", sorted(reflection["services"]), names)

    described = await reflect(
        server.process.address,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE),
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    (greeter,) = [f for f in files if f.name == reflection["file"]]
    assert [s.name for s in greeter.service] == [SERVICE.rpartition(".")[2]]


def metric_samples(port: int) -> dict[str, list[dict[str, str]]]:
    """The label sets of every sample of /metrics, by family name."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=RPC_TIMEOUT) as answer:
        text = answer.read().decode()
    return {
        family.name: [dict(sample.labels) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


@by_implementation
async def test_metrics_names_and_labels(server: Server) -> None:
    metrics = CONTRACT.sections["metrics"]
    # One call of each method, and one call ending with each code the cases know.
    chosen: dict[str, Case] = {}
    for case in CONTRACT.cases:
        if case.log and case.raw is None and not case.env:
            chosen.setdefault(case.rpc, case)
            chosen.setdefault(case.code, case)
    async with grpc.aio.insecure_channel(server.process.address) as channel:
        for case in chosen.values():
            assert (await run(channel, case)).code == case.code

    # prometheus_client names counter families without _total.
    families = {
        name.removesuffix("_total"): samples
        for name, samples in metric_samples(server.metrics_port).items()
    }
    for family in metrics["families"]:
        samples = [
            s
            for s in families.get(family.removesuffix("_total"), [])
            if s.get("grpc_service") == SERVICE
        ]
        assert samples, f"{family}: no samples of {SERVICE}"
        for labels in samples:
            assert set(metrics["labels"]) <= set(labels), (family, labels)
        types = {s["grpc_method"]: s["grpc_type"] for s in samples}
        assert types == metrics["types"], family

    handled = families[metrics["code_label"]["family"].removesuffix("_total")]
    label = metrics["code_label"]["label"]
    expected = {case.code: case.code for case in chosen.values()}
    tolerated = server.implementation.tolerated.get("metrics/grpc_code")
    spellings = {
        code: {code, tolerated.actual[code]} if tolerated and code in tolerated.actual else {code}
        for code in expected
    }
    observed = {}
    for case in chosen.values():
        values = {s[label] for s in handled if s.get("grpc_method") == case.rpc} & spellings[
            case.code
        ]
        assert len(values) == 1, f"{case.rpc} {case.code}: {values}"
        observed[case.code] = values.pop()
    server.check("metrics/grpc_code", expected, observed)


@by_implementation
def test_serving_line(server: Server) -> None:
    serving = CONTRACT.sections["log"]["serving"]
    (line,) = [r for r in server.process.log_records() if r.get("message") == "serving"]
    assert line["logger"] == serving["logger"]
    assert line["address"] == server.process.address
    for field in serving["fields"]:
        if field == "event_loop":
            server.check(
                "log/serving/event_loop", Pattern("uvloop|asyncio"), line.get(field, ABSENT)
            )
        else:
            assert field in line, (field, line)
    assert {key: line[key] for key in serving["values"]} == serving["values"]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=[i.name for i in IMPLEMENTATIONS])
async def test_access_line_carries_the_trace_id_with_tracing_on(
    implementation: Implementation, implementation_builds: Builds, tmp_path: Path
) -> None:
    tracing = CONTRACT.sections["tracing"]
    process = start(implementation, implementation_builds, tmp_path / "server.log", tracing["env"])
    try:
        (case,) = [c for c in CONTRACT.cases if c.id == "SayHello/greets-and-names-its-instance"]
        async with grpc.aio.insecure_channel(process.address) as channel:
            assert (await run(channel, case)).code == "OK"
    finally:
        assert process.stop() == 0, process.log_text()
    (line,) = [r for r in process.log_records() if r.get("logger") == "acme.access"]
    hold(implementation, "log/access/trace_id", tracing["trace_id"], line.get("trace_id", ABSENT))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=[i.name for i in IMPLEMENTATIONS])
async def test_drain(
    implementation: Implementation, implementation_builds: Builds, tmp_path: Path
) -> None:
    drain = CONTRACT.sections["drain"]
    serving = CONTRACT.sections["health"]["serving"]
    process = start(implementation, implementation_builds, tmp_path / "server.log", drain["env"])
    (case,) = [c for c in CONTRACT.cases if c.id == "SayHello/greets-and-names-its-instance"]
    async with grpc.aio.insecure_channel(process.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert (await run(channel, case)).code == "OK"  # the connection is up before the signal
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + float(drain["env"]["GRPC_DRAIN_DELAY"]) / 2
        statuses: dict[str, int] = {}
        while time.monotonic() < deadline:
            for name in serving:
                reply = await health.Check(
                    health_pb2.HealthCheckRequest(service=name), timeout=RPC_TIMEOUT
                )
                statuses[name] = reply.status
            if set(statuses.values()) == {health_pb2.HealthCheckResponse.NOT_SERVING}:
                break
            await asyncio.sleep(0.02)
        assert statuses == dict.fromkeys(serving, health_pb2.HealthCheckResponse.NOT_SERVING)
        # Through the drain delay, calls are still answered (clients are moving away).
        assert (await run(channel, case)).code == "OK"
    code = process.wait_exit()
    assert code == 0, process.log_text()
    records = process.log_records()
    server_lines = [r["message"] for r in records if r.get("logger") == "acme.server"]
    assert server_lines[-len(drain["messages"]) :] == drain["messages"]
    (draining,) = [r for r in records if r["message"] == "draining"]
    assert {key: draining.get(key) for key in drain["draining"]} == drain["draining"]
