"""How a client stream ends decides how it is recorded: a stream the client cancels, whose
deadline passes, or that the server's shutdown cuts is logged and counted CANCELLED,
DEADLINE_EXCEEDED or UNAVAILABLE (what its client sees), never OK, and its handler never
completes work on the truncated input (GreetMany sends no greeting)."""

from __future__ import annotations

import asyncio
import signal
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from tests.processes import (
    GREETER_SERVICE,
    RPC_TIMEOUT,
    ServiceFactory,
    ServiceProcess,
    free_port,
    open_channel,
)

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from acme.greeter.v1.greeter_pb2_grpc import GreeterServiceAsyncStub as Stub


def metric(metrics_port: int, name: str, method: str, code: str | None = None) -> float:
    """One grpc_server_* sample of a Greeter method on /metrics (0 if absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith(name + "{")
            and f'grpc_method="{method}"' in line
            and (code is None or f'grpc_code="{code}"' in line)
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def greet_many(stub: Stub, request_id: str, how: str) -> None:
    """A GreetMany that sends two names, then ends as `how` says."""
    timeout = 1.0 if how == "deadline" else RPC_TIMEOUT
    call = stub.GreetMany(None, metadata=(("x-request-id", request_id),), timeout=timeout)
    for name in ("Ada", "Alan"):
        await call.write(greeter_pb2.GreetManyRequest(name=name))
    if how == "half-close":
        await call.done_writing()
        assert (await call).message == "Hello, Ada and Alan!"
        return
    await asyncio.sleep(0.2)
    if how == "cancel":
        call.cancel()
    assert await call.code() != grpc.StatusCode.OK


async def chat(stub: Stub, request_id: str, how: str) -> None:
    """A Chat that sends two names and reads their replies, then ends as `how` says."""
    timeout = 1.0 if how == "deadline" else RPC_TIMEOUT
    call = stub.Chat(None, metadata=(("x-request-id", request_id),), timeout=timeout)
    for name in ("Ada", "Alan"):
        await call.write(greeter_pb2.ChatRequest(name=name))
        assert isinstance(await call.read(), greeter_pb2.ChatResponse)
    if how == "half-close":
        await call.done_writing()
        assert await call.code() == grpc.StatusCode.OK
        return
    await asyncio.sleep(0.2)
    if how == "cancel":
        call.cancel()
    assert await call.code() != grpc.StatusCode.OK


CALLS: dict[str, Callable[[Stub, str, str], Awaitable[None]]] = {
    "GreetMany": greet_many,
    "Chat": chat,
}


@pytest.fixture(scope="module")
def metrics_greeter(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServiceProcess, int]]:
    """One greeter with /metrics for every test of this module, and its metrics port."""
    factory = ServiceFactory(tmp_path_factory.mktemp("stream-ends"))
    metrics_port = free_port()
    greeter = factory.start_greeter({"METRICS_PORT": str(metrics_port)})
    try:
        yield greeter, metrics_port
    finally:
        factory.stop_all()


@pytest.mark.parametrize("method", list(CALLS))
@pytest.mark.parametrize(
    ("how", "code"),
    [
        ("half-close", "OK"),
        ("cancel", "CANCELLED"),
        ("deadline", "DEADLINE_EXCEEDED"),
    ],
)
async def test_a_stream_is_recorded_as_it_ended(
    metrics_greeter: tuple[ServiceProcess, int], method: str, how: str, code: str
) -> None:
    greeter, metrics_port = metrics_greeter
    request_id = f"{method}-{how}-{uuid.uuid4().hex[:8]}"
    handled = metric(metrics_port, "grpc_server_handled_total", method, code)
    sent = metric(metrics_port, "grpc_server_msg_sent_total", method)
    async with open_channel(greeter.address) as channel:
        await CALLS[method](greeter_pb2_grpc.GreeterServiceStub(channel), request_id, how)
    line = await greeter.wait_for_record(request_id=request_id, message="rpc")
    assert line["code"] == code, line
    assert line["method"] == f"/{GREETER_SERVICE}/{method}"
    await asyncio.sleep(0.1)  # the metrics are updated with the log line; scrape after it
    assert metric(metrics_port, "grpc_server_handled_total", method, code) == handled + 1
    if method == "GreetMany":  # its one reply is sent only for a stream the client finished
        assert metric(metrics_port, "grpc_server_msg_sent_total", method) == sent + (
            1 if how == "half-close" else 0
        )


@pytest.mark.parametrize("method", list(CALLS))
async def test_a_stream_cut_by_shutdown_is_recorded_unavailable(
    services: ServiceFactory, method: str
) -> None:
    greeter = services.start_greeter({"GRPC_GRACE_PERIOD": "0.5"})
    request_id = f"{method}-shutdown-{uuid.uuid4().hex[:8]}"
    async with open_channel(greeter.address) as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        metadata = (("x-request-id", request_id),)
        call: Any
        if method == "GreetMany":
            call = stub.GreetMany(None, metadata=metadata, timeout=RPC_TIMEOUT)
            await call.write(greeter_pb2.GreetManyRequest(name="Ada"))
        else:
            call = stub.Chat(None, metadata=metadata, timeout=RPC_TIMEOUT)
            await call.write(greeter_pb2.ChatRequest(name="Ada"))
            assert isinstance(await call.read(), greeter_pb2.ChatResponse)
        # The call must have reached the handler before the stop (a GreetMany sends nothing
        # back until it ends): give the server a moment.
        await asyncio.sleep(0.5)
        greeter.send_signal(signal.SIGTERM)
        assert await call.code() != grpc.StatusCode.OK
    assert await greeter.wait_exit_async() == 0
    line = await greeter.wait_for_record(request_id=request_id, message="rpc")
    assert line["code"] == "UNAVAILABLE", line
