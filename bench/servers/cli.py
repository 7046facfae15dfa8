"""What every reference server shares: its command line and its stop signals."""

from __future__ import annotations

import argparse
import asyncio
import signal


def arguments(description: str, *, loop_choice: bool = False) -> argparse.Namespace:
    """--host (default 127.0.0.1) and --port (required); --loop asyncio|uvloop if asked."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    if loop_choice:
        parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    return parser.parse_args()


def stop_requested() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (the harness stops servers with SIGTERM)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop
