"""Calls that end while caller's Greeter call is still pending leave no native memory behind.

grpcio leaks about 1 KiB of native memory (the Python heap stays flat) for every outgoing
call that is cancelled while in flight through call.cancel() (grpc/grpc#43360): once, every
caller call that missed its deadline in front of a slow greeter did. Caller runs here in this
process (built as run_service builds it: caller.service.build), so glibc's count of bytes in use
(mallinfo2) shows the growth exactly, free of RSS noise; the test's own calls end by grpc's
deadline, which does not leak."""

from __future__ import annotations

import asyncio
import ctypes
import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import grpc
import pytest

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2
from acme_common import Runtime, ServiceHost
from caller.service import build
from caller.settings import CallerSettings, GreeterClientSettings
from tests.processes import HOST, stand_in_greeter

pytestmark = pytest.mark.integration

CALLS = 1500  # calls per round
ROUNDS = 4  # the first rounds fill grpc's and the allocator's pools: the last one is measured
CONCURRENCY = 100
DEADLINE = 0.15  # seconds: the client's deadline on caller; the slow greeter takes 1 s
BYTES_PER_CALL = 150  # growth allowed per call: noise is < 50, the leak was ~1,000


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def native_bytes_in_use() -> int:
    """Bytes malloc has handed out and not got back (glibc >= 2.33 mallinfo2)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


async def slow_say_hello(
    request: greeter_pb2.SayHelloRequest, context: grpc.aio.ServicerContext[object, object]
) -> greeter_pb2.SayHelloResponse:
    if request.name == "slow":
        await asyncio.sleep(1.0)
    return greeter_pb2.SayHelloResponse(message=f"Hello, {request.name}!", served_by="stand-in")


@pytest.fixture
async def caller_address() -> AsyncIterator[str]:
    async with stand_in_greeter(slow_say_hello) as greeter:
        settings = CallerSettings(grpc_host=HOST, grpc_port=0, grpc_grace_period=1)
        async with AsyncExitStack() as exit_stack:
            runtime = Runtime([GreeterClientSettings(target=greeter)], None, exit_stack)
            host = ServiceHost(settings, [build(settings, runtime)])
            await host.start()
            try:
                yield f"{HOST}:{host.port}"
            finally:
                await host.stop()


async def introduce(
    stub: caller_pb2_grpc.CallerServiceAsyncStub, name: str, count: int, deadline: float
) -> set[str]:
    """count Introduce calls, CONCURRENCY at a time; the set of codes they ended with."""
    codes: set[str] = set()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with limit:
            try:
                await stub.Introduce(caller_pb2.IntroduceRequest(name=name), timeout=deadline)
                codes.add("OK")
            except grpc.aio.AioRpcError as error:
                codes.add(error.code().name)

    await asyncio.gather(*(one() for _ in range(count)))
    return codes


@pytest.mark.parametrize(
    ("name", "deadline", "code"),
    [("slow", DEADLINE, "DEADLINE_EXCEEDED"), ("Ada", 10.0, "OK")],
    ids=["deadline-while-greeter-pending", "completed"],
)
async def test_calls_leave_no_native_memory_however_they_end(
    caller_address: str, name: str, deadline: float, code: str
) -> None:
    growth: list[int] = []  # bytes per call, round by round
    async with grpc.aio.insecure_channel(caller_address) as channel:
        stub = caller_pb2_grpc.CallerServiceStub(channel)
        for _ in range(ROUNDS):
            gc.collect()
            before = native_bytes_in_use()
            assert await introduce(stub, name, CALLS, deadline) == {code}
            await asyncio.sleep(0.3)  # the last calls' completions
            gc.collect()
            growth.append((native_bytes_in_use() - before) // CALLS)
    assert growth[-1] < BYTES_PER_CALL, f"bytes per call, round by round: {growth}"
