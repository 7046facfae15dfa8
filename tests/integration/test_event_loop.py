"""EVENT_LOOP chooses the loop a service runs on, the `serving` line says which one runs, and
`pytest --event-loop` (nox -s tests_other_loop) really moves the whole suite to that loop:
the session's service processes and its in-process tests."""

from __future__ import annotations

import grpc
import pytest

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import running_loop_name
from acme_devkit.environment import harness_event_loop
from tests.processes import (
    CHANNEL_OPTIONS,
    RPC_TIMEOUT,
    ServiceFactory,
    ServiceProcess,
)

pytestmark = pytest.mark.integration


async def say_hello(service: ServiceProcess) -> str:
    async with grpc.aio.insecure_channel(service.address, options=CHANNEL_OPTIONS) as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        reply = await stub.SayHello(greeter_pb2.SayHelloRequest(name="Ada"), timeout=RPC_TIMEOUT)
    return reply.message


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_event_loop_setting_chooses_the_loop(services: ServiceFactory, loop: str) -> None:
    greeter = services.start_greeter({"EVENT_LOOP": loop})
    serving = await greeter.wait_for_log("serving")
    assert serving["event_loop"] == loop
    assert await say_hello(greeter) == "Hello, Ada!"


async def test_service_processes_run_on_the_harness_loop(services: ServiceFactory) -> None:
    """Without EVENT_LOOP from the test, a service runs on the session's loop: the default,
    or --event-loop's (fails if acme_devkit drops the option or the service ignores it)."""
    greeter = services.start_greeter()
    serving = await greeter.wait_for_log("serving")
    assert serving["event_loop"] == harness_event_loop()
    assert await say_hello(greeter) == "Hello, Ada!"


async def test_in_process_tests_run_on_the_harness_loop() -> None:
    assert running_loop_name() == harness_event_loop()
