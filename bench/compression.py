"""`nox -s bench -- --compression`: what gzip costs and saves, side by side in one run.

Two greeters (GRPC_COMPRESSION=none and =gzip), each behind an HTTP/2 tap that counts the bytes
of every DATA frame, get the same realistic calls from one client: SayHelloLanguages for a
name in every supported language repeated to 200 entries (200 small messages per call) and
GreetMany of 200 names (one larger reply). Reported per call: server CPU (µs, from /proc) and
reply bytes on the wire, and their ratios. Runs alternate between the two servers.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from collections.abc import Sequence
from functools import partial
from typing import Any

import grpc

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_devkit.http2_tap import TO_CLIENT, Http2Tap, http2_tap
from bench import procs
from bench.servers import launch
from greeter.rules import TEMPLATES

CALLS = 300  # per call kind, server and run
RUNS = 3
LANGUAGES = (sorted(TEMPLATES) * 40)[:200]
NAMES = [f"name{index}" for index in range(200)]


def reply_bytes(tap: Http2Tap) -> int:
    """Bytes of DATA frames the server sent (its replies, as they crossed the wire)."""
    return sum(
        frame.length
        for frame in tap.frames
        if frame.kind == "DATA" and frame.direction == TO_CLIENT
    )


async def drive(address: str, kind: str, calls: int) -> None:
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.enable_http_proxy", 0)]
    ) as channel:
        stub = greeter_pb2_grpc.GreeterServiceStub(channel)
        for _ in range(calls):
            if kind == "SayHelloLanguages x200":
                request = greeter_pb2.SayHelloLanguagesRequest(name="Ada", languages=LANGUAGES)
                async for _reply in stub.SayHelloLanguages(request, timeout=10):
                    pass
            else:
                await stub.GreetMany(
                    iter([greeter_pb2.GreetManyRequest(name=name) for name in NAMES]), timeout=10
                )


def measure(
    server: procs.ServerProcess, address: str, tap: Http2Tap, kind: str
) -> dict[str, float]:
    before_cpu = procs.cpu_snapshot([server.pid])
    before_bytes = reply_bytes(tap)
    asyncio.run(drive(address, kind, CALLS))
    cpu = procs.cpu_delta(before_cpu, procs.cpu_snapshot([server.pid]))
    return {"cpu_us": cpu / CALLS * 1e6, "bytes": (reply_bytes(tap) - before_bytes) / CALLS}


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__).parse_args(
        argv
    )
    logs = procs.REPO / ".bench" / "logs"
    servers = {
        setting: launch.greeter(
            f"compression-{setting}", logs, "unused", log_level="WARNING",
            extra_env={"GRPC_COMPRESSION": setting, "AUTH_TOKENS": ""},
        )
        for setting in ("none", "gzip")
    }  # fmt: skip
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    loop = asyncio.new_event_loop()
    taps: dict[str, tuple[str, Http2Tap]] = {}
    contexts: list[Any] = []
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        for setting, server in servers.items():
            server.start().wait_ready(partial(launch.health_problem, server))
            context = http2_tap(server.address)
            contexts.append(context)
            taps[setting] = asyncio.run_coroutine_threadsafe(context.__aenter__(), loop).result(10)
        for _ in range(RUNS):
            for kind in ("SayHelloLanguages x200", "GreetMany x200"):
                for setting, server in servers.items():
                    address, tap = taps[setting]
                    results.setdefault((kind, setting), []).append(
                        measure(server, address, tap, kind)
                    )
    finally:
        for context in contexts:
            asyncio.run_coroutine_threadsafe(context.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        for server in servers.values():
            server.stop()
    print("| call | compression | server CPU µs/call | reply bytes/call | gzip / none |")
    print("|---|---|---:|---:|---|")
    for kind in ("SayHelloLanguages x200", "GreetMany x200"):
        medians = {}
        for setting in ("none", "gzip"):
            runs = results[(kind, setting)]
            medians[setting] = {
                key: sorted(run[key] for run in runs)[len(runs) // 2] for key in ("cpu_us", "bytes")
            }
        for setting in ("none", "gzip"):
            m = medians[setting]
            ratio = (
                f"CPU {m['cpu_us'] / medians['none']['cpu_us']:.2f}x, "
                f"bytes {m['bytes'] / medians['none']['bytes']:.2f}x"
                if setting == "gzip"
                else ""
            )
            print(f"| {kind} | {setting} | {m['cpu_us']:,.0f} | {m['bytes']:,.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
