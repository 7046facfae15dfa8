"""Python grpc.aio load generator: a fixed number of concurrent callers on one channel for a
fixed time (after a warm-up), bounded in requests too; prints one JSON object on stdout.

    python -m bench.load_client --target 127.0.0.1:50051 --mode unary --concurrency 16 \
        --warmup 1 --duration 5 --token bench-token

Modes: `unary` (GreeterService.SayHello), `introduce` (CallerService.Introduce, the
caller -> greeter chain) and `stream` (GreeterService.SayHelloLanguages with
--stream-messages messages per call). `--rate R` paces the calls to R per second (open loop,
for the soak) instead of calling back to back. `--cpu-pid PID` (repeatable) also reports the
CPU seconds of those process trees over exactly the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from bench import procs
from greeter.rules import TEMPLATES

CALL_TIMEOUT = 10.0  # seconds: bounds how long the run can outlast its duration
CHANNEL_OPTIONS: list[tuple[str, Any]] = [("grpc.enable_http_proxy", 0)]

Call = Callable[[], Awaitable[int]]  # one RPC; returns how many response messages it got


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def make_call(
    mode: str, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], args: Any
) -> Call:
    """The RPC each concurrent caller repeats."""
    if mode == "introduce":
        caller = caller_pb2_grpc.CallerServiceStub(channel)
        introduce = caller_pb2.IntroduceRequest(name=args.name)

        async def call_introduce() -> int:
            await caller.Introduce(introduce, timeout=CALL_TIMEOUT, metadata=metadata)
            return 1

        return call_introduce
    greeter = greeter_pb2_grpc.GreeterServiceStub(channel)
    if mode == "stream":
        languages = sorted(TEMPLATES)
        tags = [languages[i % len(languages)] for i in range(args.stream_messages)]
        languages_request = greeter_pb2.SayHelloLanguagesRequest(name=args.name, languages=tags)

        async def call_stream() -> int:
            received = 0
            async for _reply in greeter.SayHelloLanguages(
                languages_request, timeout=CALL_TIMEOUT, metadata=metadata
            ):
                received += 1
            return received

        return call_stream
    hello = greeter_pb2.SayHelloRequest(name=args.name)

    async def call_unary() -> int:
        await greeter.SayHello(hello, timeout=CALL_TIMEOUT, metadata=metadata)
        return 1

    return call_unary


@dataclass
class Window:
    """The measured window and what happened in it (times in perf_counter_ns)."""

    start: int
    end: int
    max_requests: int
    interval_ns: int  # 0 = closed loop
    issued: int = 0
    next_send: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    messages: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def record(self, started: int, finished: int, messages: int, error: str | None) -> None:
        if started < self.start or finished > self.end:
            return  # warm-up, or finished after the window closed
        if error is None:
            self.latencies_ns.append(finished - started)
            self.messages += messages
        else:
            self.errors[error] += 1


async def caller_loop(call: Call, window: Window) -> None:
    while True:
        now = time.perf_counter_ns()
        if now >= window.end or window.issued >= window.max_requests:
            return
        if window.interval_ns:
            send_at = max(window.next_send, now)
            window.next_send = send_at + window.interval_ns
            if send_at >= window.end:
                return
            if send_at > now:
                await asyncio.sleep((send_at - now) / 1e9)
        window.issued += 1
        started = time.perf_counter_ns()
        messages, error = 0, None
        try:
            messages = await call()
        except grpc.aio.AioRpcError as failure:
            error = failure.code().name
        window.record(started, time.perf_counter_ns(), messages, error)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    metadata: tuple[tuple[str, str], ...] = ()
    if args.token:
        metadata = (("authorization", f"Bearer {args.token}"),)
    async with grpc.aio.insecure_channel(args.target, options=CHANNEL_OPTIONS) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=CALL_TIMEOUT)
        call = make_call(args.mode, channel, metadata, args)
        await call()  # sanity: one call must succeed (raises AioRpcError otherwise)

        begin = time.perf_counter_ns()
        window = Window(
            start=begin + int(args.warmup * 1e9),
            end=begin + int((args.warmup + args.duration) * 1e9),
            max_requests=args.max_requests,
            interval_ns=int(1e9 / args.rate) if args.rate else 0,
            next_send=begin,
        )
        callers = [asyncio.create_task(caller_loop(call, window)) for _ in range(args.concurrency)]
        await asyncio.sleep(args.warmup)
        cpu_before = procs.cpu_snapshot(args.cpu_pid)
        client_before = time.process_time()
        await asyncio.sleep(max(0.0, (window.end - time.perf_counter_ns()) / 1e9))
        cpu_after = procs.cpu_snapshot(args.cpu_pid)
        client_cpu = time.process_time() - client_before
        await asyncio.wait_for(asyncio.gather(*callers), timeout=CALL_TIMEOUT + 5)

    latencies_ms = sorted(value / 1e6 for value in window.latencies_ns)
    duration = (window.end - window.start) / 1e9
    completed = len(latencies_ms)
    return {
        "generator": "python-aio",
        "mode": args.mode,
        "target": args.target,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "warmup_s": args.warmup,
        "duration_s": duration,
        "requests": completed,
        "errors": sum(window.errors.values()),
        "error_codes": dict(window.errors),
        "rps": completed / duration,
        "messages": window.messages,
        "messages_per_s": window.messages / duration,
        "p50_ms": percentile(latencies_ms, 0.50),
        "p90_ms": percentile(latencies_ms, 0.90),
        "p99_ms": percentile(latencies_ms, 0.99),
        "max_ms": latencies_ms[-1] if latencies_ms else 0.0,
        "server_cpu_s": procs.cpu_delta(cpu_before, cpu_after) if args.cpu_pid else None,
        "server_cpu_by_pid": procs.cpu_by_process(cpu_before, cpu_after),
        "client_cpu_s": client_cpu,
        "hit_request_cap": window.issued >= window.max_requests,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port (loopback only)")
    parser.add_argument("--mode", choices=["unary", "introduce", "stream"], default="unary")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="hard cap")
    parser.add_argument("--rate", type=float, default=0.0, help="calls/s; 0 = back to back")
    parser.add_argument("--token", default="", help="bearer token to send")
    parser.add_argument("--name", default="Ada")
    parser.add_argument("--stream-messages", type=int, default=1000)
    parser.add_argument("--cpu-pid", type=int, action="append", default=[])
    args = parser.parse_args(argv)
    host = args.target.rpartition(":")[0]
    if host not in ("127.0.0.1", "localhost", "[::1]"):
        parser.error("only loopback targets are allowed")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = asyncio.run(run(args))
    except grpc.aio.AioRpcError as failure:
        print(
            f"load_client: sanity call failed: {failure.code().name}: {failure.details()}",
            file=sys.stderr,
        )
        return 3
    except TimeoutError:
        print(f"load_client: {args.target} not reachable", file=sys.stderr)
        return 3
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
