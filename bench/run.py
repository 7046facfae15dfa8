"""`nox -s bench` / `python -m bench`: start each server as its own process, drive it from
another process (h2load for raw capacity, bench.load_client for a real Python grpc.aio
client), repeat every row `--runs` times interleaved (run 1 of every row, then run 2, ...) so
that the machine's noise hits all rows alike, and report medians, ratios within the same
session, a soak of our greeter and PASS/MISS lines for the targets (a report: MISS does not
fail the session; only a broken harness or a server that cannot be measured does).

Writes .bench/results.json and .bench/results.md; server logs in .bench/logs/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import grpc

from bench import compression, h2load, plot, procs, report, toolchain
from bench.model import Config, Row
from bench.procs import REPO, ServerError, ServerProcess
from bench.servers import launch

# Results and logs; ACME_BENCH_OUT moves them (the harness smoke test writes to a temp dir).
OUT = Path(os.environ.get("ACME_BENCH_OUT", REPO / ".bench"))


# What h2load sends per row: (path, body file in OUT, content type). "grpc" is SayHello as one
# gRPC frame; the Connect JSON requests need the HTTP edge (rows 10j, 10c); only h2load sends them.
H2LOAD_REQUESTS = {
    "grpc": (launch.SAY_HELLO, "sayhello.grpc", "application/grpc"),
    "json": (launch.SAY_HELLO, "sayhello.json", "application/json"),
    "json-introduce": (launch.INTRODUCE, "introduce.json", "application/json"),
}


def write_h2load_bodies() -> None:
    """The request bodies of H2LOAD_REQUESTS, in OUT."""
    (OUT / "sayhello.grpc").write_bytes(h2load.grpc_frame(launch.say_hello_bytes()))
    json_body = json.dumps({"name": launch.NAME}).encode()
    (OUT / "sayhello.json").write_bytes(json_body)
    (OUT / "introduce.json").write_bytes(json_body)


# ------------------------------------------------------------------------------ metrics
def scrape_handled(port: int | None, method: str) -> dict[str, float]:
    """grpc_server_handled_total of method (its name: SayHello) by grpc_code, from /metrics
    ({} if no port); greeter-go's codes (grpc-go's names: `Canceled`) under the Python names."""
    if port is None:
        return {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    with opener.open(f"http://{procs.HOST}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("grpc_server_handled_total{") and f'grpc_method="{method}"' in line:
            labels, _, value = line.rpartition(" ")
            code = labels.split('grpc_code="', 1)[1].split('"', 1)[0]
            code = launch.GO_CODE_NAMES.get(code, code)
            counts[code] = counts.get(code, 0.0) + float(value)
    return counts


# -------------------------------------------------------------------------- measurement
def measure_h2load(row: Row, config: Config, executable: str) -> dict[str, Any]:
    target = row.target
    if target is None:
        raise ServerError(f"row {row.key} has no target")
    path, body, content_type = H2LOAD_REQUESTS[row.request]
    method = path.rpartition("/")[2]
    headers = (
        h2load.grpc_headers(row.token)
        if content_type == "application/grpc"
        else [f"content-type: {content_type}", f"authorization: Bearer {row.token}"]
    )
    port = launch.metrics_port(target)
    before = scrape_handled(port, method)
    result = h2load.run(
        executable,
        f"http://{target.address}{path}",
        OUT / body,
        headers,
        clients=config.h2_clients,
        streams=config.h2_streams,
        warmup=config.warmup,
        duration=config.duration,
        log_file=OUT / f"h2load-row{row.key}.log",
        cpu_pids=[server.pid for server in row.servers],
    )
    measured = result.as_dict()
    if port is not None:  # h2load cannot see grpc-status: the server's own count can
        after = scrape_handled(port, method)
        # CANCELLED: the streams in flight that h2load itself resets when its duration ends
        # (a server that sees them, like the edge, counts them); h2load reports its own errors.
        non_ok = sum(
            v - before.get(code, 0.0)
            for code, v in after.items()
            if code not in ("OK", "CANCELLED")
        )
        measured["grpc_non_ok"] = int(non_ok)
        measured["errors"] += int(non_ok)
    return measured


def measure_python(row: Row, config: Config, **overrides: Any) -> dict[str, Any]:
    target = row.target
    if target is None:
        raise ServerError(f"row {row.key} has no target")
    options: dict[str, Any] = {
        "target": target.address,
        "mode": row.mode,
        "concurrency": config.stream_concurrency
        if row.mode == "stream"
        else row.callers or config.py_concurrency,
        "warmup": config.warmup,
        "duration": config.duration,
        "stream_messages": config.stream_messages,
        **overrides,
    }
    command = [sys.executable, "-m", "bench.load_client"]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    if row.token:
        command += [f"--token={row.token}"]  # a token may begin with "-"
    for server in row.servers:
        command += ["--cpu-pid", str(server.pid)]
    limit = float(options["warmup"]) + float(options["duration"]) + 40
    done = subprocess.run(  # noqa: S603 - our own load generator
        command, cwd=REPO, capture_output=True, text=True, timeout=limit, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"load_client exited {done.returncode}: {done.stderr.strip()[-500:]}")
    measured: dict[str, Any] = json.loads(done.stdout)
    return measured


def measure(row: Row, config: Config, h2load_path: str | None) -> None:
    """One run of row; a failure is recorded on the row, never raised."""
    try:
        if row.generator == "h2load" and h2load_path is not None:
            measured = measure_h2load(row, config, h2load_path)
        else:
            measured = measure_python(row, config)
    except (RuntimeError, ServerError, OSError, ValueError, subprocess.TimeoutExpired) as error:
        row.failures.append(f"run {len(row.runs) + 1}: {error}")
        return
    dead = [server.name for server in row.servers if not server.alive()]
    if dead:
        row.failures.append(f"run {len(row.runs) + 1}: server process died: {', '.join(dead)}")
        return
    by_pid = {int(pid): float(cpu) for pid, cpu in measured["server_cpu_by_pid"].items()}
    measured["server_cpu_by_server"] = {
        server.name: round(sum(by_pid.get(pid, 0.0) for pid in procs.descendants(server.pid)), 3)
        for server in row.servers
    }
    done = measured["messages"] if row.unit == "msg/s" else measured["requests"]
    measured["throughput"] = measured["messages_per_s"] if row.unit == "msg/s" else measured["rps"]
    measured["cpu_us_per_unit"] = (
        measured["server_cpu_s"] / done * 1e6 if done and measured["server_cpu_s"] else None
    )
    row.runs.append(measured)
    split = ""
    if len(by_pid) > 1:
        split = " (" + " + ".join(f"{cpu:.2f}" for cpu in by_pid.values()) + " per process)"
    print(
        f"bench: run {len(row.runs)}/{config.runs} row {row.key:<2} "
        f"{measured['throughput']:9.0f} {row.unit}  p50 {measured['p50_ms']:7.2f} ms  "
        f"p99 {measured['p99_ms']:7.2f} ms  errors {measured['errors']}  "
        f"server CPU {measured['server_cpu_s']:.2f} s{split}",
        flush=True,
    )


# -------------------------------------------------------------------------------- soak
def soak(config: Config, token: str, logs: Path) -> dict[str, Any]:
    """A fresh greeter (production stack) at a fixed rate; VmRSS sampled every second."""
    server = launch.greeter("greeter-soak", logs, token).start()
    try:
        server.wait_ready(
            lambda: launch.health_problem(server) or launch.say_hello_problem(server, token)
        )
        idle = procs.tree_kib([server.pid], "VmRSS")
        cap = int(config.soak_rate * (config.soak_seconds + config.soak_warmup)) + 1
        command = [
            sys.executable, "-m", "bench.load_client", "--target", server.address,
            "--mode", "unary", "--concurrency", str(config.py_concurrency),
            "--rate", str(config.soak_rate), "--warmup", str(config.soak_warmup),
            "--duration", str(config.soak_seconds), f"--token={token}",
            "--cpu-pid", str(server.pid),
            "--max-requests", str(cap),
        ]  # fmt: skip
        samples: list[tuple[float, int]] = []
        launched = time.monotonic()
        limit = config.soak_warmup + config.soak_seconds + 40
        with subprocess.Popen(  # noqa: S603 - our own load generator
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as client:
            while client.poll() is None and time.monotonic() - launched < limit:
                samples.append(
                    (round(time.monotonic() - launched, 1), procs.tree_kib([server.pid], "VmRSS"))
                )
                time.sleep(1.0)
            if client.poll() is None:
                client.kill()
            out, err = client.communicate()
        if client.returncode != 0:
            raise RuntimeError(f"soak load_client exited {client.returncode}: {err.strip()[-500:]}")
        result: dict[str, Any] = json.loads(out)
        # The client needs about a second to start; "before" is the first sample after warm-up.
        window = [s for s in samples if s[0] >= config.soak_warmup + 1.0] or samples
        rss_before, rss_after = window[0][1], window[-1][1]
        return {
            "seconds": config.soak_seconds,
            "rate": config.soak_rate,
            "achieved_rps": result["rps"],
            "requests": result["requests"],
            "errors": result["errors"],
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            "server_cpu_s": result["server_cpu_s"],
            "rss_idle_kib": idle,
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "growth_pct": (rss_after - rss_before) / rss_before * 100 if rss_before else None,
            "peak_rss_kib": procs.tree_kib([server.pid], "VmHWM"),
            "samples": samples,
        }
    finally:
        server.stop()


# ------------------------------------------------------------------------------- setup
def build_rows(
    config: Config,
    token: str,
    logs: Path,
    cpp: toolchain.CppServer,
    h2load_path: str | None,
    go: toolchain.GoServer | None = None,
) -> list[Row]:
    raw = "h2load" if h2load_path else "python"
    sync, aio = launch.sync_server(logs), launch.aio_server(logs)
    aio_uvloop, peer = launch.aio_server(logs, "uvloop"), launch.grpclib_server(logs)
    connect = launch.connect_server(logs)
    g3 = launch.greeter("greeter-row3", logs, token)
    g3n = launch.greeter_variant("greeter-row3n", logs, token, "--validation", "off")
    g4 = launch.greeter("greeter-row4", logs, token, workers=2)
    g5 = launch.greeter("greeter-row5", logs, token)
    c5 = launch.caller("caller-row5", logs, token, g5.address)
    g6 = launch.greeter("greeter-row6", logs, token)
    edge = launch.gateway("gateway-row10", logs, token, g5.address, c5.address)
    h2c = f"h2load -c{config.h2_clients} -m{config.h2_streams}"
    py = f"python -c{config.py_concurrency}"
    raw_conc = h2c if h2load_path else py
    rows = [
        Row("1", "sync grpc.server, 10 threads", raw, [sync], sync, concurrency=raw_conc),
        Row("2", "bare grpc.aio server (asyncio loop)", raw, [aio], aio, concurrency=raw_conc),
        Row("2u", "bare grpc.aio server on uvloop", raw, [aio_uvloop], aio_uvloop,
            concurrency=raw_conc),
        Row("3", "greeter, production stack", raw, [g3], g3, token, concurrency=raw_conc),
        # Row 3 without checking requests against greeter.proto's rules: what validation costs.
        Row("3n", "greeter, production stack, validation off", raw, [g3n], g3n, token,
            concurrency=raw_conc),
        Row("4", "greeter, GRPC_WORKERS=2", raw, [g4], g4, token, concurrency=raw_conc),
        Row("8", "grpclib peer (pure-Python asyncio gRPC)", raw, [peer], peer,
            concurrency=raw_conc),
        Row("9", "Connect peer (connectrpc on pyvoy, gRPC over h2c)", raw, [connect],
            connect, concurrency=raw_conc),
        Row("7", "C++ greeter (grpc++ callback)", raw, [], None, concurrency=raw_conc),
        # greeter-go (issue #20) with row 3's settings; the servers come with the binary below.
        Row("3g", "greeter-go, production stack", raw, [], None, token, concurrency=raw_conc),
        Row("1p", "row 1 server, Python client", "python", [sync], sync, baseline="1p",
            concurrency=py),
        Row("5d", "greeter direct (row 5's greeter)", "python", [g5], g5, token, baseline="1p",
            concurrency=py),
        Row("5", "caller -> greeter (Introduce)", "python", [c5, g5], c5, token,
            mode="introduce", baseline="1p", concurrency=py),
        Row("5g", "caller -> greeter-go (Introduce)", "python", [], None, token,
            mode="introduce", baseline="1p", concurrency=py),
        Row("5d-c1", "greeter direct, 1 caller", "python", [g5], g5, token, baseline="1p",
            concurrency="python -c1", callers=1),
        Row("5-c1", "caller -> greeter, 1 caller", "python", [c5, g5], c5, token,
            mode="introduce", baseline="1p", concurrency="python -c1", callers=1),
        Row("6", f"greeter stream, {config.stream_messages} msgs/call", "python", [g6], g6, token,
            mode="stream", unit="msg/s", baseline="1p",
            concurrency=f"python -c{config.stream_concurrency}"),
        # The HTTP edge in front of row 5's greeter and caller; the CPU counted is both hops'.
        Row("10", "edge -> greeter, gRPC", raw, [edge, g5], edge, token, concurrency=raw_conc),
        Row("10j", "edge -> greeter, Connect JSON", "h2load", [edge, g5], edge, token,
            request="json", concurrency=h2c),
        Row("10c", "edge -> caller -> greeter, Connect JSON", "h2load", [edge, c5, g5], edge,
            token, mode="introduce", request="json-introduce", concurrency=h2c),
        Row("10p", "edge -> greeter, gRPC, Python client", "python", [edge, g5], edge, token,
            baseline="1p", concurrency=py),
    ]  # fmt: skip
    by_key = {row.key: row for row in rows}
    if h2load_path is None:
        for key in ("10j", "10c"):
            by_key[key].skipped = "skipped: Connect JSON needs h2load"
    if cpp.binary is None:
        by_key["7"].skipped = f"skipped: {cpp.reason}"
    else:
        server = launch.cpp_server(cpp.binary, logs)
        by_key["7"].servers, by_key["7"].target = [server], server
    go = go or toolchain.GoServer(None, "not selected")
    if go.binary is None:
        for key in ("3g", "5g"):
            if key in config.rows:  # else "not selected" below
                by_key[key].skipped = f"not available: {go.reason}"
    else:
        g3g = launch.greeter_go(go.binary, "greeter-go-row3g", logs, token)
        g5g = launch.greeter_go(go.binary, "greeter-go-row5g", logs, token)
        c5g = launch.caller("caller-row5g", logs, token, g5g.address)
        by_key["3g"].servers, by_key["3g"].target = [g3g], g3g
        by_key["5g"].servers, by_key["5g"].target = [c5g, g5g], c5g
    for row in rows:
        if row.key not in config.rows and row.skipped is None:
            row.skipped = "skipped: not selected (--rows)"
    return rows


def start_servers(rows: Sequence[Row]) -> list[ServerProcess]:
    """Start every server the selected rows need (all at once), then wait until each answers
    the exact request its load generator will send."""
    servers: list[ServerProcess] = []
    for row in rows:
        if row.skipped is None:
            servers.extend(s for s in row.servers if s not in servers)
    for server in servers:
        server.start()
    # Every request a row will send to a server (the edge answers two kinds) must work.
    probes: dict[str, dict[str, Callable[[], str | None]]] = {}
    for row in rows:
        if row.skipped is not None or row.target is None:
            continue
        kinds = probes.setdefault(row.target.name, {})
        if row.mode == "introduce":
            kinds[row.mode] = partial(launch.introduce_problem, row.target, row.token or "")
        else:
            kinds[row.mode] = partial(launch.say_hello_problem, row.target, row.token)
    for row in rows:
        if row.skipped is not None:
            continue
        for server in row.servers:
            kinds = probes.get(server.name, {})
            try:
                for probe in kinds.values():
                    server.wait_ready(probe, timeout=60.0)
            except ServerError as error:
                row.failures.append(f"start: {error}")
    return servers


def check_workers(rows: Sequence[Row]) -> None:
    row = next((r for r in rows if r.key == "4"), None)
    if row is None or not row.measurable:
        return
    workers = launch.wait_for_workers(row.servers[0], 2)
    if workers == 0:
        row.skipped = "not available: GRPC_WORKERS not supported"
        row.servers[0].stop()
    elif workers < 2:
        row.failures.append(f"start: only {workers} of 2 workers started")


def read_peak_rss(rows: Sequence[Row]) -> None:
    for row in rows:
        if row.servers and row.skipped is None:
            row.peak_rss_kib = procs.tree_kib([s.pid for s in row.servers], "VmHWM")


# -------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="1 short run, 10 s soak")
    parser.add_argument("--runs", type=int, help="repetitions per row (default 3)")
    parser.add_argument("--warmup", type=float, help="seconds before measuring (default 1)")
    parser.add_argument("--duration", type=float, help="seconds measured (default 4)")
    parser.add_argument("--h2load-clients", type=int, default=8, help="connections (-c)")
    parser.add_argument("--h2load-streams", type=int, default=8, help="streams each (-m)")
    parser.add_argument("--concurrency", type=int, default=16, help="Python client callers")
    parser.add_argument("--stream-concurrency", type=int, default=4)
    parser.add_argument("--stream-messages", type=int, default=1000)
    parser.add_argument("--soak-seconds", type=float, help="soak length (default 60)")
    parser.add_argument("--soak-rate", type=float, default=500.0, help="soak calls/s")
    parser.add_argument("--no-apt", action="store_true", help="never run apt-get")
    parser.add_argument(
        "--python-client",
        action="store_true",
        help="measure every row with the Python client (one HTTP/2 connection per row), "
        "even where h2load is installed",
    )
    parser.add_argument(
        "--compression",
        action="store_true",
        help="run only the compression rows (bench/compression.py): CPU and bytes, gzip vs none",
    )
    parser.add_argument(
        "--rows",
        default="1,2,2u,3,3n,3g,4,5,5g,6,7,8,9,10",
        help="comma-separated subset (5 includes 5d and the 1-caller rows, 1 1p, 10 the "
        "other edge rows; 3g and 5g: greeter-go, when Go is installed; 3n: row 3 without "
        "validation)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    rows = {key.strip() for key in args.rows.split(",") if key.strip()}
    if "1" in rows:
        rows.add("1p")
    if "5" in rows:
        rows |= {"5d", "5d-c1", "5-c1"}
    if "10" in rows:
        rows |= {"10j", "10c", "10p", "5d"}  # 5d: the direct call of the edge hop's target
    if rows & {"5", "5g", "6", "10"}:
        rows.add("1p")  # the Python-client baseline of rows 5, 5d, 5g and 6
    config = Config(
        runs=args.runs or (1 if quick else 3),
        warmup=args.warmup if args.warmup is not None else 1.0,
        duration=args.duration or (2.0 if quick else 4.0),
        h2_clients=args.h2load_clients,
        h2_streams=args.h2load_streams,
        py_concurrency=args.concurrency,
        stream_concurrency=args.stream_concurrency,
        stream_messages=args.stream_messages,
        soak_seconds=args.soak_seconds
        if args.soak_seconds is not None
        else (10.0 if quick else 60.0),
        soak_warmup=2.0 if quick else 5.0,
        soak_rate=args.soak_rate,
        allow_apt=not args.no_apt,
        rows=rows,
        python_client=args.python_client,
        compression=args.compression,
    )
    if config.runs < 1 or config.duration <= 0 or config.warmup < 0:
        parser.error("--runs must be >= 1, --duration > 0, --warmup >= 0")
    return config


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "kernel": platform.release(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    config = parse_args(argv)
    if config.compression:
        return compression.main([])
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("*.log"):
        old.unlink()
    before = machine()

    packages_problem = toolchain.ensure_packages(config.allow_apt, OUT / "apt.log")
    h2load_path = None if config.python_client else h2load.find()
    if h2load_path is None and not config.python_client:
        print(f"bench: h2load unavailable ({packages_problem}); rows 1-4 and 7 use the Python "
              "client instead", file=sys.stderr)  # fmt: skip
    cpp = (
        toolchain.cpp_server(OUT / "cpp", packages_problem)
        if "7" in config.rows
        else toolchain.CppServer(None, "not selected")
    )
    go = (
        toolchain.go_server(OUT / "greeter-go")
        if config.rows & {"3g", "5g"}
        else toolchain.GoServer(None, "not selected")
    )
    write_h2load_bodies()
    token = secrets.token_urlsafe(16)

    rows = build_rows(config, token, logs, cpp, h2load_path, go)
    servers: list[ServerProcess] = []
    soak_result: dict[str, Any] | None = None
    try:
        servers = start_servers(rows)
        check_workers(rows)
        for run in range(config.runs):
            print(f"bench: --- run {run + 1} of {config.runs} ---", flush=True)
            for row in rows:
                if row.measurable:
                    measure(row, config, h2load_path)
        read_peak_rss(rows)
    finally:
        for server in servers:
            server.stop()
    if config.soak_seconds > 0 and "3" in config.rows:
        print(f"bench: soak {config.soak_seconds:.0f} s at {config.soak_rate:.0f} calls/s ...",
              flush=True)  # fmt: skip
        try:
            soak_result = soak(config, token, logs)
        except (RuntimeError, ServerError, OSError, subprocess.TimeoutExpired) as error:
            soak_result = {"error": str(error)}

    results = report.build(rows, config, soak_result, before, machine(), time.monotonic() - started)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str))
    markdown = report.markdown(results)
    (OUT / "results.md").write_text(markdown)
    chart = plot.plot(results, OUT / "results.png")
    print()
    print(markdown)
    outputs = (OUT / "results.json", OUT / "results.md", chart)
    written = ", ".join(str(path) for path in outputs if path is not None)
    print(f"bench: wrote {written}; server logs in {logs}")
    failed = [row.key for row in rows if row.failures and row.skipped is None]
    if failed or (soak_result is not None and "error" in soak_result):
        what = [f"row {key}" for key in failed]
        if soak_result is not None and "error" in soak_result:
            what.append("the soak")
        print(f"bench: could not measure {', '.join(what)}: the harness failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
