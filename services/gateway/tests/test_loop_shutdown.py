"""accept_shutdown_timeout: the asyncio loop takes the `timeout` pyvoy passes when it ends
its loop, whatever the Python version (3.11's asyncio has no such parameter; pyvoy then
panicked at every stop with EVENT_LOOP=asyncio)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.asgi import accept_shutdown_timeout


def test_the_default_executor_shuts_down_with_the_timeout_pyvoy_passes() -> None:
    loop = asyncio.new_event_loop()
    try:
        accept_shutdown_timeout(loop)
        loop.run_until_complete(loop.run_in_executor(None, sum, [1, 2]))  # an executor to end
        shutdown: Any = loop.shutdown_default_executor  # typeshed's 3.11 signature has no timeout
        loop.run_until_complete(shutdown(300.0))  # as pyvoy calls it
        with pytest.raises(RuntimeError, match="shutdown"):  # the executor is gone
            loop.run_until_complete(loop.run_in_executor(None, sum, [1, 2]))
    finally:
        loop.close()
