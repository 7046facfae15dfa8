"""Where the time goes: profile servers under h2load load, and measure the stack part by part.

    python -m bench.profile                      # py-spy on rows 2 and 3, 10 s each
    python -m bench.profile --rows 3 --seconds 20 --native
    python -m bench.profile --ablation           # CPU per call with each part switched off
    nox -s bench -- ...                          # (the harness itself; this is separate)
    uv run python -m bench.profile ...           # from a developer shell

`record` (the default) starts the row's server, drives it with h2load (saturating, like the
harness), attaches `py-spy record --format speedscope` for --seconds and `py-spy dump` once,
and writes under .bench/profile/: rowN.speedscope.json (open in https://www.speedscope.app),
rowN.dump.txt, and rowN.summary.txt: samples grouped by component (access log, metrics, auth,
request id, handler, per-call path, grpc/asyncio machinery) and the top lines by self time,
each also as µs per call (share of samples x server CPU per call measured meanwhile).

`--ablation` measures CPU µs per call and throughput of the greeter with one part of the
stack off at a time (interleaved runs, median), which gives each part's cost by difference.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench import h2load, procs
from bench.procs import REPO, ServerProcess
from bench.servers import launch

OUT = REPO / ".bench" / "profile"

# The per-call path's own modules (_call/handlers.py composes the others).
PER_CALL_PARTS = ("handlers", "observation", "access_log", "error_status", "malformed")

# (component, test on a "function (file:line)" frame); a sample belongs to the first component
# found walking from its leaf towards the root (json.dumps called by logging: "access log").
COMPONENTS: list[tuple[str, Callable[[str], bool]]] = [
    ("access log: logging + JsonFormatter + stderr write",
     lambda f: "/logging/" in f or "acme_common/_logs.py" in f or "/json/" in f
     or "RequestIdFilter" in f or "datetime" in f),
    ("metrics: prometheus_client", lambda f: "prometheus_client" in f),
    ("auth: bearer token check", lambda f: "acme_common/_call/auth.py" in f or "hmac.py" in f),
    ("request id: metadata scan + uuid4", lambda f: "request_ids.py" in f or "uuid.py" in f),
    ("handler: servicer + greeting rule",
     lambda f: "greeter/rules.py" in f or f.startswith("SayHello (")
     or f.startswith("GreeterService.SayHello (")),
    ("per-call path: its own lines (wrapping, context.peer/code, bookkeeping)",
     lambda f: any(f"acme_common/_call/{name}.py" in f for name in PER_CALL_PARTS)),
]  # fmt: skip
MACHINERY = "grpc aio (Cython + C-core) and asyncio, on the event loop"
IDLE_LEAVES = ("Selector.select (",)  # the event loop in epoll_wait: mostly waiting


@dataclass
class Variant:
    """One server configuration of the ablation."""

    name: str
    start: Callable[[Path, str], ServerProcess]
    token: bool = True
    runs: list[dict[str, Any]] = field(default_factory=list)


def _variant_greeter(name: str, logs: Path, token: str, *flags: str, **env: str) -> ServerProcess:
    server = launch.greeter(name, logs, token, extra_env=env)
    server.argv = launch.python("bench.servers.greeter_variant", *flags)
    return server


def variants() -> list[Variant]:
    return [
        Variant("bare grpc.aio (row 2)", lambda logs, _t: launch.aio_server(logs), token=False),
        Variant("greeter full stack (row 3)", lambda logs, t: launch.greeter("v-full", logs, t)),
        Variant(
            "  - access log (LOG_LEVEL=WARNING)",
            lambda logs, t: launch.greeter("v-nolog", logs, t, log_level="WARNING"),
        ),
        Variant(
            "  - auth (AUTH_TOKENS empty)",
            lambda logs, _t: launch.greeter("v-noauth", logs, ""),
            token=False,
        ),
        Variant(
            "  - metrics (prometheus no-op)",
            lambda logs, t: _variant_greeter("v-nometrics", logs, t, "--metrics", "off"),
        ),
        Variant(
            "  - the whole per-call path (handlers as registered)",
            lambda logs, t: _variant_greeter("v-nowrapping", logs, t, "--wrapping", "off"),
        ),
    ]


# ------------------------------------------------------------------------------- record
def start_row(row: str, logs: Path, token: str) -> tuple[ServerProcess, str | None]:
    """The server of a harness row (1-3), started and answering; and the token it wants."""
    if row == "1":
        server, wanted = launch.sync_server(logs), None
    elif row == "2":
        server, wanted = launch.aio_server(logs), None
    elif row == "3":
        server, wanted = launch.greeter("profile-row3", logs, token), token
    else:
        raise SystemExit(f"cannot profile row {row!r}: choose 1, 2 or 3 (one process each)")
    server.start()
    server.wait_ready(lambda: launch.say_hello_problem(server, wanted), timeout=60.0)
    return server, wanted


def summarize_speedscope(
    path: Path, main_tid: int, main_us_per_call: float | None, top: int = 25
) -> str:
    """The main (event loop) thread's busy samples by component, by our functions
    (inclusive) and by line (self); each share also as µs per call of that thread's CPU."""
    data = json.loads(path.read_text())
    frames = [
        f"{f['name']} ({f.get('file', '?')}:{f.get('line', '?')})" for f in data["shared"]["frames"]
    ]
    functions = [f"{f['name']} ({f.get('file', '?')})" for f in data["shared"]["frames"]]
    main = next((p for p in data["profiles"] if f"Thread {main_tid} " in p["name"]), None)
    if main is None:
        return f"no samples of the main thread {main_tid}\n"
    by_component: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_lines: Counter[str] = Counter()
    busy = idle = 0.0
    for stack, weight in zip(main["samples"], main["weights"], strict=True):
        names = [frames[index] for index in stack]  # root first
        if not names or any(leaf in names[-1] for leaf in IDLE_LEAVES):
            idle += weight
            continue
        busy += weight
        self_lines[names[-1]] += weight
        for function in {functions[index] for index in stack}:
            if "/acme_common/" in function or "/greeter/" in function:
                inclusive[function] += weight
        component = next(
            (label for name in reversed(names) for label, test in COMPONENTS if test(name)),
            MACHINERY,
        )
        by_component[component] += weight
    if not busy:
        return "no busy samples (is the server under load? py-spy needs ptrace)\n"

    def cost(weight: float) -> str:
        share = weight / busy
        per_call = "" if main_us_per_call is None else f"{share * main_us_per_call:7.1f} µs/call"
        return f"{share * 100:5.1f} % {per_call}"

    lines = [
        f"main thread: {busy:.1f} s of busy samples, shares x its measured CPU per call "
        f"({main_us_per_call or 0:.1f} µs); {idle:.1f} s more in epoll_wait (waiting, or syscall "
        "time: excluded; py-spy cannot tell them apart, /proc's stime can)",
        "",
        "By component (innermost matching frame):",
        *(f"  {cost(weight)}  {name}" for name, weight in by_component.most_common()),
        "",
        "Our functions, inclusive:",
        *(f"  {cost(weight)}  {name}" for name, weight in inclusive.most_common(15)),
        "",
        f"Top {top} lines by self time:",
        *(f"  {cost(weight)}  {name}" for name, weight in self_lines.most_common(top)),
    ]
    return "\n".join(lines) + "\n"


def thread_table(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], calls: float
) -> tuple[str, float | None, int | None]:
    """Per-thread CPU over the profile window; also the main thread's µs per call and tid."""
    lines = ["CPU by thread over the profiled window (/proc/<pid>/task/*/stat):"]
    main_tid = min(after) if after else None
    main_us = None
    for tid, (name, seconds) in sorted(after.items()):
        used = seconds - before.get(tid, (name, 0.0))[1]
        if used <= 0:
            continue
        per_call = used / calls * 1e6 if calls else 0.0
        if tid == main_tid:
            main_us = per_call
        role = " (main: event loop)" if tid == main_tid else ""
        lines.append(f"  {tid:>8} {name:<16} {used:6.2f} s {per_call:7.1f} µs/call{role}")
    return "\n".join(lines) + "\n", main_us, main_tid


def drive(
    h2: str,
    server: ServerProcess,
    wanted: str | None,
    args: argparse.Namespace,
    body: Path,
    row: str,
    result: dict[str, h2load.H2loadResult],
) -> None:
    """h2load on server for the profile's duration (+ margins); the result into result."""
    result["h2load"] = h2load.run(
        h2,
        f"http://{server.address}{launch.SAY_HELLO}",
        body,
        h2load.grpc_headers(wanted),
        clients=args.h2load_clients,
        streams=args.h2load_streams,
        warmup=1.0,
        duration=args.seconds + 1.0,
        log_file=OUT / f"h2load-row{row}.log",
        cpu_pids=[server.pid],
    )


def record(args: argparse.Namespace, token: str, body: Path, logs: Path, py_spy: str) -> None:
    h2 = h2load.find()
    if h2 is None:
        raise SystemExit("h2load is needed (apt-get install nghttp2-client, or run nox -s bench)")
    for row in args.rows.split(","):
        server, wanted = start_row(row.strip(), logs, token)
        try:
            stem = OUT / f"row{row}"
            result: dict[str, h2load.H2loadResult] = {}
            loader = threading.Thread(
                target=drive, args=(h2, server, wanted, args, body, row, result)
            )
            loader.start()
            time.sleep(1.5)
            spy = [
                py_spy,
                "record",
                "--pid",
                str(server.pid),
                "--duration",
                str(max(1, round(args.seconds))),
            ]
            spy += ["--rate", str(args.rate), "--format", "speedscope"]
            spy += ["--output", str(stem.with_suffix(".speedscope.json"))]
            if args.native:
                spy.append("--native")
            threads_before, window_start = procs.thread_cpu(server.pid), time.monotonic()
            with subprocess.Popen(  # noqa: S603 - py-spy on our own server
                spy, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            ) as recorder:
                time.sleep(args.seconds / 2)
                dump = subprocess.run(  # noqa: S603 - py-spy on our own server
                    [py_spy, "dump", "--pid", str(server.pid), "--locals"],
                    capture_output=True, text=True, timeout=30, check=False,
                )  # fmt: skip
                stem.with_suffix(".dump.txt").write_text(dump.stdout + dump.stderr)
                spy_output, _ = recorder.communicate(timeout=args.seconds + 60)
            threads_after, window = procs.thread_cpu(server.pid), time.monotonic() - window_start
            loader.join(timeout=args.seconds + 60)
            measured = result.get("h2load")
            speedscope = stem.with_suffix(".speedscope.json")
            if measured is None or not speedscope.exists():
                raise SystemExit(f"no h2load result or no profile; py-spy said:\n{spy_output}")
            calls = measured.rps * window  # steady state: h2load's rate over py-spy's window
            threads, main_us, main_tid = thread_table(threads_before, threads_after, calls)
            header = (
                f"row {row}: {server.name} under h2load: {measured.rps:,.0f} req/s while "
                f"profiled ({measured.server_cpu_s / measured.requests * 1e6:.0f} µs CPU/call, "
                f"all threads)\n\n{threads}\n"
            )
            profile = summarize_speedscope(speedscope, main_tid or server.pid, main_us)
            summary = header + profile
            stem.with_suffix(".summary.txt").write_text(summary)
            print(summary)
            print(f"profile: wrote {speedscope}, {stem.with_suffix('.dump.txt')}, "
                  f"{stem.with_suffix('.summary.txt')}\n")  # fmt: skip
        finally:
            server.stop()


# ----------------------------------------------------------------------------- ablation
def ablation(args: argparse.Namespace, token: str, body: Path, logs: Path) -> None:
    h2 = h2load.find()
    if h2 is None:
        raise SystemExit("h2load is needed (apt-get install nghttp2-client, or run nox -s bench)")
    chosen = variants()
    servers: list[tuple[Variant, ServerProcess]] = []
    try:
        for variant in chosen:
            servers.append((variant, variant.start(logs, token).start()))
        for variant, server in servers:
            wanted = token if variant.token else None
            server.wait_ready(partial(launch.say_hello_problem, server, wanted), 60.0)
        for run in range(args.runs):
            for variant, server in servers:
                result = h2load.run(
                    h2,
                    f"http://{server.address}{launch.SAY_HELLO}",
                    body,
                    h2load.grpc_headers(token if variant.token else None),
                    clients=args.h2load_clients,
                    streams=args.h2load_streams,
                    warmup=1.0,
                    duration=args.seconds,
                    log_file=OUT / "h2load-ablation.log",
                    cpu_pids=[server.pid],
                )
                cpu_us = result.server_cpu_s / result.requests * 1e6 if result.requests else 0.0
                variant.runs.append({"rps": result.rps, "cpu_us": cpu_us, "errors": result.errors})
                print(f"ablation: run {run + 1} {variant.name.strip():<40} {result.rps:8.0f} req/s"
                      f"  {cpu_us:6.1f} µs/call  errors {result.errors}", flush=True)  # fmt: skip
    finally:
        for _variant, server in servers:
            server.stop()
    full = statistics.median(run["cpu_us"] for run in chosen[1].runs)
    lines = [
        f"Ablation: h2load -c{args.h2load_clients} -m{args.h2load_streams}, {args.runs} "
        f"interleaved runs of {args.seconds:g} s, median. Cost = full stack minus variant.",
        "",
        "| variant | req/s | server CPU µs/call | cost of the part, µs/call |",
        "|---|---:|---:|---:|",
    ]
    for variant in chosen:
        rps = statistics.median(run["rps"] for run in variant.runs)
        cpu = statistics.median(run["cpu_us"] for run in variant.runs)
        part = f"{full - cpu:.0f}" if variant.name.startswith("  ") else ""
        lines.append(f"| {variant.name.strip()} | {rps:,.0f} | {cpu:.0f} | {part} |")
    text = "\n".join(lines) + "\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ablation.md").write_text(text)
    (OUT / "ablation.json").write_text(
        json.dumps([{"name": v.name.strip(), "runs": v.runs} for v in chosen], indent=2)
    )
    print("\n" + text + f"\nprofile: wrote {OUT / 'ablation.md'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--rows", default="2,3", help="harness rows to profile (1-3)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per profile/run")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames)")
    parser.add_argument("--ablation", action="store_true", help="part-by-part CPU per call")
    parser.add_argument("--runs", type=int, default=3, help="ablation: runs per variant")
    parser.add_argument("--h2load-clients", type=int, default=8)
    parser.add_argument("--h2load-streams", type=int, default=8)
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 300:
        parser.error("--seconds must be in (0, 300]")
    OUT.mkdir(parents=True, exist_ok=True)
    logs = OUT / "logs"
    body = OUT / "sayhello.grpc"
    body.write_bytes(h2load.grpc_frame(launch.say_hello_bytes()))
    token = "profile-" + str(time.time_ns())
    if args.ablation:
        ablation(args, token, body, logs)
        return 0
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("py-spy not found: it is a dev dependency (uv sync, or nox -s bench)")
    record(args, token, body, logs, py_spy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
