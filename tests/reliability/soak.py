"""The production soak, a reliability scenario (`nox -s soak -- --minutes N`; a report over
minutes, not a pytest suite): caller -> two greeters as compose runs them, for N minutes (10 or
more for the report), in cycles of steady mixed load followed by an idle period longer than the
keepalive interval, with cancellations, expired deadlines, every stream kind, and one greeter
restarted under load.

Every connection to a greeter (caller's and the load's own) passes through an HTTP/2 tap
that counts GOAWAY frames by error code. The report gives each process's RSS after the first
load phase and at the end, the GOAWAYs, the ERROR lines of every log, and the calls: per kind,
the codes the client saw and the codes the servers logged, and the calls lost (a status the
kind does not allow, such as UNAVAILABLE, which a retry could have saved).
The services are started in the production configuration the bench uses
(bench/servers/launch.py). Writes .soak/soak.json and .soak/soak.md; logs in .soak/logs/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import grpc

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import ClientSettings, create_channel
from acme_devkit.http2_tap import Http2Tap, http2_tap
from bench import procs
from bench.procs import ServerProcess
from bench.servers import launch

OUT = procs.REPO / ".soak"

LOAD_SECONDS = 40.0  # each cycle: this long under load, then
IDLE_SECONDS = 100.0  # this long idle (caller pings greeters every 30 s: 3 pings per idle)
RATE = 60.0  # calls/s of each kind of unary traffic during load
STREAM_RATE = 10.0  # calls/s of each streaming kind
MAX_CALLS = 400_000  # a hard bound on the whole soak's calls
RSS_EVERY = 5.0  # seconds between RSS samples

# What each kind of call may end with; anything else is a lost call.
ALLOWED: dict[str, set[str]] = {
    "Introduce": {"OK"},
    "IntroduceAll": {"OK"},
    "Introduce, 2 ms deadline": {"OK", "DEADLINE_EXCEEDED"},
    "Introduce, cancelled": {"OK", "CANCELLED"},
    "SayHelloLanguages": {"OK"},
    "GreetMany": {"OK"},
    "GreetMany, deadline mid-stream": {"DEADLINE_EXCEEDED"},
    "Chat": {"OK"},
    "Chat, cancelled mid-stream": {"CANCELLED"},
}


@dataclass
class Tally:
    """What the load saw: codes per kind of call."""

    codes: dict[str, Counter[str]] = field(default_factory=dict)
    calls: int = 0

    def add(self, kind: str, code: str) -> None:
        self.codes.setdefault(kind, Counter())[code] += 1
        self.calls += 1


def unexpected(client_codes: dict[str, dict[str, int]], *, lost: bool) -> dict[str, dict[str, int]]:
    """Codes a kind does not allow: of kinds meant to succeed (lost=True: calls lost, which a
    retry might have saved) or of kinds meant to fail (lost=False: a different failure)."""
    return {
        kind: {code: n for code, n in codes.items() if code not in ALLOWED[kind]}
        for kind, codes in client_codes.items()
        if set(codes) - ALLOWED[kind] and (ALLOWED[kind] == {"OK"}) == lost
    }


def code_of(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code().name
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    return type(error).__name__


class Load:
    """The soak's clients: caller's RPCs and greeter's streams at fixed rates."""

    def __init__(self, caller: str, greeters: str, token: str, tally: Tally) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.caller_channel = grpc.aio.insecure_channel(
            caller, options=[("grpc.enable_http_proxy", 0)]
        )
        settings = ClientSettings(target=greeters)
        # Built as caller builds its own: round_robin, health checking, retries, keepalive.
        self.greeter_channel = create_channel(
            settings, retry_services=["acme.greeter.v1.GreeterService"]
        )
        self.caller = caller_pb2_grpc.CallerServiceStub(self.caller_channel)
        self.greeter = greeter_pb2_grpc.GreeterServiceStub(self.greeter_channel)
        self.tally = tally
        self.tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        await self.caller_channel.close(None)
        await self.greeter_channel.close(None)

    async def _record(self, kind: str, call: Awaitable[str | None]) -> None:
        try:
            code = await call
            self.tally.add(kind, code or "OK")
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as error:
            self.tally.add(kind, code_of(error))

    def _spawn(self, kind: str, make: Callable[[], Awaitable[str | None]]) -> None:
        task = asyncio.ensure_future(self._record(kind, make()))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run_for(self, seconds: float) -> None:
        """Every kind of call at its rate for `seconds`, then wait for the calls in flight."""
        kinds: list[tuple[str, float, Callable[[], Awaitable[str | None]]]] = [
            ("Introduce", RATE, self.introduce),
            ("IntroduceAll", RATE / 6, self.introduce_all),
            ("Introduce, 2 ms deadline", RATE / 3, self.introduce_expiring),
            ("Introduce, cancelled", RATE / 3, self.introduce_cancelled),
            ("SayHelloLanguages", STREAM_RATE, self.languages),
            ("GreetMany", STREAM_RATE, self.greet_many),
            ("GreetMany, deadline mid-stream", STREAM_RATE / 2, self.greet_many_expiring),
            ("Chat", STREAM_RATE, self.chat),
            ("Chat, cancelled mid-stream", STREAM_RATE / 2, self.chat_cancelled),
        ]
        loop = asyncio.get_running_loop()
        started = loop.time()
        next_at = {kind: started for kind, _, _ in kinds}
        while loop.time() - started < seconds and self.tally.calls < MAX_CALLS:
            now = loop.time()
            for kind, rate, make in kinds:
                while next_at[kind] <= now:
                    self._spawn(kind, make)
                    next_at[kind] += 1 / rate
            await asyncio.sleep(0.01)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=15)

    async def introduce(self) -> str | None:
        await self.caller.Introduce(
            caller_pb2.IntroduceRequest(name="Ada"), metadata=self.metadata, timeout=5
        )
        return None

    async def introduce_all(self) -> str | None:
        reply = await self.caller.IntroduceAll(
            caller_pb2.IntroduceAllRequest(names=["Ada", "Alan", "Grace", "Linus"]),
            metadata=self.metadata,
            timeout=5,
        )
        return None if reply.failed == 0 else "SOME_INTRODUCTIONS_FAILED"

    async def introduce_expiring(self) -> str | None:
        # Often expires in caller while its Greeter call is pending (the path of issue 8).
        await self.caller.Introduce(
            caller_pb2.IntroduceRequest(name="Ada"), metadata=self.metadata, timeout=0.002
        )
        return None

    async def introduce_cancelled(self) -> str | None:
        call = self.caller.Introduce(
            caller_pb2.IntroduceRequest(name="Ada"), metadata=self.metadata, timeout=5
        )
        await asyncio.sleep(0.001)
        call.cancel()
        await call
        return None

    async def languages(self) -> str | None:
        call = self.greeter.SayHelloLanguages(
            greeter_pb2.SayHelloLanguagesRequest(name="Ada"), metadata=self.metadata, timeout=5
        )
        async for _ in call:
            pass
        return None

    async def greet_many(self) -> str | None:
        call = self.greeter.GreetMany(None, metadata=self.metadata, timeout=5)
        for name in ("Ada", "Alan", "Grace"):
            await call.write(greeter_pb2.GreetManyRequest(name=name))
        await call.done_writing()
        await call
        return None

    async def greet_many_expiring(self) -> str | None:
        call = self.greeter.GreetMany(None, metadata=self.metadata, timeout=0.3)
        await call.write(greeter_pb2.GreetManyRequest(name="Ada"))
        await asyncio.sleep(0.5)  # never half-closes: the deadline ends it
        await call
        return None

    async def chat(self) -> str:
        call = self.greeter.Chat(None, metadata=self.metadata, timeout=5)
        for name in ("Ada", "Alan"):
            await call.write(greeter_pb2.ChatRequest(name=name))
            await call.read()
        await call.done_writing()
        code: grpc.StatusCode = await call.code()
        return code.name

    async def chat_cancelled(self) -> str:
        call = self.greeter.Chat(None, metadata=self.metadata, timeout=5)
        await call.write(greeter_pb2.ChatRequest(name="Ada"))
        await call.read()
        call.cancel()
        code: grpc.StatusCode = await call.code()
        return code.name


class TapThread:
    """HTTP/2 taps in front of the greeters, on an event loop of their own thread."""

    def __init__(self, upstreams: Sequence[str]) -> None:
        self.upstreams = upstreams
        self.taps: list[Http2Tap] = []
        self.addresses: list[str] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        contexts = [http2_tap(upstream) for upstream in self.upstreams]
        for context in contexts:
            address, tap = await context.__aenter__()
            self.addresses.append(address)
            self.taps.append(tap)
        self._ready.set()
        await self._stop.wait()
        for context in contexts:
            await context.__aexit__(None, None, None)

    def __enter__(self) -> TapThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the HTTP/2 taps did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def goaways(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for tap in self.taps:
            for frame in tap.seen("GOAWAY"):
                debug = frame.debug_data.decode(errors="replace")
                found[f"{frame.direction} {frame.error} {debug}".strip()] += 1
        return found


def error_lines(path: Path) -> list[str]:
    """A log's ERROR lines: JSON records at level ERROR and grpc core's `E` lines."""
    found: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("level") in ("ERROR", "CRITICAL"):
                found.append(line[:300])
        elif line[:1] == "E" and line[1:5].isdigit():
            found.append(line[:300])
    return found


def logged_codes(paths: Sequence[Path]) -> dict[str, Counter[str]]:
    """The access-log codes per method in these logs."""
    codes: dict[str, Counter[str]] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if '"rpc"' not in line:  # a cheap filter before parsing
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict) or record.get("message") != "rpc":
                continue
            method = str(record.get("method", "")).rsplit("/", 1)[-1]
            codes.setdefault(method, Counter())[str(record.get("code"))] += 1
    return codes


def start(server: ServerProcess, probe: Callable[[], str | None]) -> ServerProcess:
    server.start()
    server.wait_ready(probe)
    return server


def run_soak(minutes: float, load_seconds: float, idle_seconds: float) -> dict[str, Any]:
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(16)
    drain = {"GRPC_DRAIN_DELAY": "1"}  # as compose: clients move away before the stop
    greeters = [launch.greeter(f"soak-greeter-{i}", logs, token, extra_env=drain) for i in range(2)]
    for greeter in greeters:
        start(greeter, partial(launch.health_problem, greeter))
    restarted: list[ServerProcess] = []
    with TapThread([g.address for g in greeters]) as taps:
        target = "ipv4:" + ",".join(taps.addresses)
        caller = launch.caller("soak-caller", logs, token, target)
        start(caller, lambda: launch.introduce_problem(caller, token))
        processes = {"caller": caller, "greeter-0": greeters[0], "greeter-1": greeters[1]}
        tally = Tally()
        rss: dict[str, list[tuple[float, int]]] = {}  # by process name
        started = time.monotonic()
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.wait(RSS_EVERY):
                for process in list(processes.values()):
                    kib = procs.status_kib(process.pid, "VmRSS")
                    if kib:
                        at = round(time.monotonic() - started, 1)
                        rss.setdefault(process.name, []).append((at, kib))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cycles = max(1, math.ceil(minutes * 60 / (load_seconds + idle_seconds)))

        async def drive() -> None:
            load = Load(caller.address, "ipv4:" + ",".join(taps.addresses), token, tally)
            try:
                for cycle in range(cycles):
                    print(
                        f"soak: cycle {cycle + 1}/{cycles}: load {load_seconds:.0f} s", flush=True
                    )
                    if cycle == cycles // 2:  # one greeter restarted under load
                        restart = asyncio.get_running_loop().run_in_executor(
                            None, restart_greeter, greeters, 0, restarted, processes
                        )
                        await load.run_for(load_seconds)
                        await restart
                    else:
                        await load.run_for(load_seconds)
                    print(f"soak: idle {idle_seconds:.0f} s", flush=True)
                    await asyncio.sleep(idle_seconds)
                await load.run_for(5.0)  # the idle connections still work
            finally:
                await load.close()

        try:
            asyncio.run(drive())
        finally:
            stop_sampling.set()
            sampler.join(10)
            goaways = taps.goaways()
            for process in processes.values():
                process.stop()
            for process in greeters:
                process.stop()
    all_processes = [caller, *greeters, *restarted]
    return {
        "minutes": round((time.monotonic() - started) / 60, 1),
        "cycles": cycles,
        "load_seconds": load_seconds,
        "idle_seconds": idle_seconds,
        "calls": tally.calls,
        "client_codes": {kind: dict(codes) for kind, codes in tally.codes.items()},
        "server_codes": {
            m: dict(c) for m, c in logged_codes([p.log_path for p in all_processes]).items()
        },
        "goaways": dict(goaways),
        "error_lines": {p.name: error_lines(p.log_path) for p in all_processes},
        "rss": {
            name: {
                "after_first_load_kib": next(
                    (kib for t, kib in samples if t >= min(load_seconds, samples[-1][0])), 0
                ),
                "end_kib": samples[-1][1] if samples else 0,
                "max_kib": max((kib for _, kib in samples), default=0),
                "samples": samples,
            }
            for name, samples in rss.items()
        },
    }


def restart_greeter(
    greeters: list[ServerProcess],
    index: int,
    restarted: list[ServerProcess],
    processes: dict[str, ServerProcess],
) -> None:
    """SIGTERM one greeter a few seconds into a load phase (it drains: NOT_SERVING, then
    stops) and start a new one on the same port (its tap forwards there)."""
    time.sleep(5)
    old = greeters[index]
    old.stop()
    new = ServerProcess(
        f"{old.name}-restarted", old.argv, old.log_path.with_name(f"{old.name}-restarted.log"),
        env=old.env, port=old.port,
    )  # fmt: skip
    start(new, partial(launch.health_problem, new))
    restarted.append(old)
    greeters[index] = new
    processes[f"greeter-{index}"] = new


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Production soak: {result['minutes']} min, {result['cycles']} cycles of "
        f"{result['load_seconds']:.0f} s load + {result['idle_seconds']:.0f} s idle, "
        f"{result['calls']} calls, one greeter restarted under load.",
        "",
        "| process | RSS after the first load MiB | RSS at end MiB | growth | max MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rss in result["rss"].items():
        first, end = rss["after_first_load_kib"], rss["end_kib"]
        growth = f"{(end - first) / first * 100:+.1f} %" if first else "n/a"
        lines.append(
            f"| {name} | {first / 1024:.1f} | {end / 1024:.1f} | {growth} | "
            f"{rss['max_kib'] / 1024:.1f} |"
        )
    lines += ["", "| call kind | client saw | allowed |", "|---|---|---|"]
    for kind, codes in result["client_codes"].items():
        seen = ", ".join(f"{code} {n}" for code, n in sorted(codes.items()))
        lines.append(f"| {kind} | {seen} | {', '.join(sorted(ALLOWED[kind]))} |")
    lines += ["", "| method (server logs) | codes |", "|---|---|"]
    for method, codes in sorted(result["server_codes"].items()):
        lines.append(f"| {method} | {', '.join(f'{c} {n}' for c, n in sorted(codes.items()))} |")
    errors = {name: found for name, found in result["error_lines"].items() if found}
    graceful = {k: n for k, n in result["goaways"].items() if " NO_ERROR" in k}
    told_off = {k: n for k, n in result["goaways"].items() if " NO_ERROR" not in k}
    lines += [
        "",
        f"GOAWAY with an error code (e.g. ENHANCE_YOUR_CALM too_many_pings): {told_off or 'none'}",
        f"GOAWAY NO_ERROR (restart, max connection age): {graceful or 'none'}",
        f"ERROR log lines: {sum(len(v) for v in errors.values())}"
        + "".join(f"\n  {name}: {line}" for name, found in errors.items() for line in found[:5]),
        f"Calls lost (kinds meant to succeed that did not): "
        f"{unexpected(result['client_codes'], lost=True) or 'none'}",
        f"Calls meant to fail that failed otherwise: "
        f"{unexpected(result['client_codes'], lost=False) or 'none'}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nox -s soak --", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="length (default 10)")
    parser.add_argument("--load-seconds", type=float, default=LOAD_SECONDS)
    parser.add_argument("--idle-seconds", type=float, default=IDLE_SECONDS)
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    result = run_soak(args.minutes, args.load_seconds, args.idle_seconds)
    (OUT / "soak.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (OUT / "soak.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
