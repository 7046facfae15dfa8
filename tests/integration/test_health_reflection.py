"""grpc.health.v1 and server reflection on both services, as probes and tools use them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from acme_common import check_health
from tests.processes import (
    CALLER_SERVICE,
    GREETER_SERVICE,
    RPC_TIMEOUT,
    ServiceProcess,
    open_channel,
)

pytestmark = pytest.mark.integration

CHANNELZ_SERVICE = "grpc.channelz.v1.Channelz"  # on the main port unless turned off

HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
SERVING = health_pb2.HealthCheckResponse.SERVING

# (fixture name, application service, proto file of that service)
SERVICES = [
    pytest.param("greeter", GREETER_SERVICE, "acme/greeter/v1/greeter.proto", id="greeter"),
    pytest.param("caller", CALLER_SERVICE, "acme/caller/v1/caller.proto", id="caller"),
]


def running(request: pytest.FixtureRequest, fixture: str) -> ServiceProcess:
    service = request.getfixturevalue(fixture)
    assert isinstance(service, ServiceProcess)
    return service


async def reflect(address: str, request: Any) -> Any:
    """The single ServerReflectionResponse to one request on the bidi reflection stream."""
    async with open_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([request]), timeout=RPC_TIMEOUT)
        responses = [response async for response in call]
        assert await call.code() == grpc.StatusCode.OK
    assert len(responses) == 1
    return responses[0]


@pytest.mark.parametrize(("fixture", "app_service", "proto_file"), SERVICES)
async def test_health_reports_serving_for_the_server_and_its_service(
    request: pytest.FixtureRequest, fixture: str, app_service: str, proto_file: str
) -> None:
    service = running(request, fixture)
    async with open_channel(service.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ["", app_service]:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=name), timeout=RPC_TIMEOUT
            )
            assert reply.status == SERVING, f"{name!r} is {reply.status}"


@pytest.mark.parametrize(("fixture", "app_service", "proto_file"), SERVICES)
async def test_health_answers_not_found_for_an_unknown_service(
    request: pytest.FixtureRequest, fixture: str, app_service: str, proto_file: str
) -> None:
    service = running(request, fixture)
    async with open_channel(service.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Check(
                health_pb2.HealthCheckRequest(service="acme.nope.v1.NopeService"),
                timeout=RPC_TIMEOUT,
            )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_probe_reports_status_names(greeter: ServiceProcess) -> None:
    assert check_health(greeter.address, "", timeout=RPC_TIMEOUT) == "SERVING"
    assert check_health(greeter.address, GREETER_SERVICE, timeout=RPC_TIMEOUT) == "SERVING"
    assert check_health(greeter.address, "unknown.Service", timeout=RPC_TIMEOUT) == ("NOT_FOUND")
    # The command container HEALTHCHECKs run (libs/common's console script).
    probe = Path(sys.executable).with_name("grpc-health-probe")
    command = [str(probe), "--addr", greeter.address, "--timeout", "5"]
    assert subprocess.run(command, capture_output=True, timeout=60, check=False).returncode == 0


@pytest.mark.parametrize(("fixture", "app_service", "proto_file"), SERVICES)
async def test_reflection_lists_the_app_health_reflection_and_channelz_services(
    request: pytest.FixtureRequest, fixture: str, app_service: str, proto_file: str
) -> None:
    service = running(request, fixture)
    response = await reflect(
        service.address, reflection_pb2.ServerReflectionRequest(list_services="")
    )
    names = {entry.name for entry in response.list_services_response.service}
    assert names == {app_service, HEALTH_SERVICE, REFLECTION_SERVICE, CHANNELZ_SERVICE}


@pytest.mark.parametrize(("fixture", "app_service", "proto_file"), SERVICES)
async def test_reflection_returns_the_file_descriptor_of_the_app_service(
    request: pytest.FixtureRequest, fixture: str, app_service: str, proto_file: str
) -> None:
    service = running(request, fixture)
    response = await reflect(
        service.address,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=app_service),
    )
    serialized = list(response.file_descriptor_response.file_descriptor_proto)
    assert serialized, f"no file descriptor in {response}"
    files = {
        parsed.name: parsed
        for parsed in (descriptor_pb2.FileDescriptorProto.FromString(raw) for raw in serialized)
    }
    assert proto_file in files
    package, _, service_name = app_service.rpartition(".")
    described = files[proto_file]
    assert described.package == package
    assert service_name in [entry.name for entry in described.service]


async def test_reflection_reports_an_unknown_symbol(greeter: ServiceProcess) -> None:
    response = await reflect(
        greeter.address,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="acme.nope.v1.Nope"),
    )
    assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
