"""ADMIN_PORT: a second, plaintext port serving health, reflection and channelz, the main port
optionally without them; channelz shows the server, its listen sockets and the calls it
served; the admin port's health follows the drain."""

from __future__ import annotations

import asyncio
import signal

import grpc
import pytest
from grpc_channelz.v1 import channelz_pb2, channelz_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from tests.processes import (
    GREETER_SERVICE,
    HOST,
    RPC_TIMEOUT,
    ServiceFactory,
    free_port,
    open_channel,
)

pytestmark = pytest.mark.integration

CALLS = 7


async def list_services(address: str) -> list[str]:
    async with open_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in stub.ServerReflectionInfo(iter([request]), timeout=RPC_TIMEOUT):
            return [service.name for service in reply.list_services_response.service]
    return []


async def test_the_admin_port_serves_health_reflection_and_channelz(
    services: ServiceFactory,
) -> None:
    admin = free_port()
    greeter = services.start_greeter({"ADMIN_PORT": str(admin)})
    admin_address = f"{HOST}:{admin}"
    async with open_channel(greeter.address) as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        for _ in range(CALLS):
            await stub.SayHello(greeter_pb2.SayHelloRequest(name="Ada"), timeout=RPC_TIMEOUT)
    async with open_channel(admin_address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=GREETER_SERVICE), timeout=RPC_TIMEOUT
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        servers = await channelz_pb2_grpc.ChannelzStub(channel).GetServers(
            channelz_pb2.GetServersRequest(), timeout=RPC_TIMEOUT
        )
    ports = {}
    for server in servers.server:
        for socket_ref in server.listen_socket:
            ports[socket_ref.name] = server
    main = [s for s in servers.server if any(str(greeter.port) in r.name for r in s.listen_socket)]
    assert main, f"channelz lists no server listening on {greeter.port}: {list(ports)}"
    # The calls it served: ours (the test harness's health checks count too).
    assert main[0].data.calls_succeeded >= CALLS
    assert main[0].data.calls_started >= main[0].data.calls_succeeded
    assert GREETER_SERVICE in await list_services(admin_address)
    assert "grpc.channelz.v1.Channelz" in await list_services(greeter.address)


async def test_the_main_port_can_keep_reflection_and_channelz_to_itself(
    services: ServiceFactory,
) -> None:
    admin = free_port()
    greeter = services.start_greeter(
        {"ADMIN_PORT": str(admin), "ADMIN_SERVICES_ON_MAIN_PORT": "false"}
    )
    async with open_channel(greeter.address) as channel:
        # Nothing written: a write racing the refusal is reported INTERNAL by grpcio's client.
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            timeout=RPC_TIMEOUT
        )
        assert await call.code() == grpc.StatusCode.UNIMPLEMENTED
    assert GREETER_SERVICE in await list_services(f"{HOST}:{admin}")


async def test_health_on_the_admin_port_follows_the_drain(services: ServiceFactory) -> None:
    admin = free_port()
    greeter = services.start_greeter({"ADMIN_PORT": str(admin), "GRPC_DRAIN_DELAY": "2"})
    async with open_channel(f"{HOST}:{admin}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="")
        assert (await stub.Check(request, timeout=RPC_TIMEOUT)).status == 1  # SERVING
        greeter.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        reply = await stub.Check(request, timeout=RPC_TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert await greeter.wait_exit_async() == 0


async def test_the_admin_port_has_the_main_ports_limits(services: ServiceFactory) -> None:
    """Reachable without a token, it holds the same memory budget: GRPC_MAX_CONCURRENT_RPCS
    calls at once (health Watch streams included) and GRPC_MAX_MESSAGE_BYTES per message."""
    admin = free_port()
    greeter = services.start_greeter({"ADMIN_PORT": str(admin), "GRPC_MAX_CONCURRENT_RPCS": "3"})
    async with open_channel(f"{HOST}:{admin}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest()
        watches = [stub.Watch(request, timeout=RPC_TIMEOUT) for _ in range(3)]
        for watch in watches:
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for watch in watches:
            watch.cancel()
        await asyncio.sleep(0.2)
        huge = health_pb2.HealthCheckRequest(service="x" * 300_000)  # > 256 KiB
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await stub.Check(huge, timeout=RPC_TIMEOUT)
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert greeter.returncode is None
