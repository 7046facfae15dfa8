"""The event loop a service runs on (EVENT_LOOP): uvloop (libuv, the default) or the standard
library's asyncio loop. grpc.aio works on both; which one actually runs is logged in the
`serving` line (`event_loop`), so a deployment and the tests can check it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

EventLoop = Literal["uvloop", "asyncio"]
T = TypeVar("T")


def loop_factory(name: EventLoop) -> Callable[[], asyncio.AbstractEventLoop]:
    """What creates a new loop of that kind."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_on_loop(main: Coroutine[Any, Any, T], name: EventLoop) -> T:
    """asyncio.run(main) on a new loop of that kind."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)


def running_loop_name() -> EventLoop:
    """Which kind of loop runs the calling coroutine (RuntimeError outside one)."""
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.partition(".")[0] == "uvloop" else "asyncio"
