"""Medians, ratios within the same session, target checks, and the markdown table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bench.model import Config, Row

# (name, numerator row, denominator row, metric, target, "min" = value must be >= target)
# The targets of issue #13.
TARGETS = [
    # Issue #19: against the bare server on the stack's own loop (uvloop), not on asyncio.
    ("production stack: row 3 / row 2u throughput (vs bare grpc.aio, same loop)",
     "3", "2u", "throughput", 0.9, "min"),
    ("caller hop, 16 callers: row 5 p50 / row 5d p50", "5", "5d", "p50_ms", 2.5, "max"),
    ("caller hop, 1 caller: row 5-c1 p50 / row 5d-c1 p50", "5-c1", "5d-c1", "p50_ms", 2.0, "max"),
    # h2load shares the two cores with the workers, so throughput cannot show scaling; the
    # CPU each call costs can: a second worker must not make calls dearer by over 10 %.
    ("worker efficiency: row 4 / row 3 CPU per call (GRPC_WORKERS=2 vs 1)",
     "4", "3", "cpu_us_per_unit", 1.10, "max"),
    ("ahead of the grpclib peer: row 3 / row 8 throughput", "3", "8", "throughput", 1.0, "min"),
    ("ahead of the Connect peer: row 3 / row 9 throughput", "3", "9", "throughput", 1.0, "min"),
    # The targets of issue #18: the HTTP edge against the production stack it fronts.
    ("edge -> greeter: row 10 / row 3 throughput", "10", "3", "throughput", 0.8, "min"),
    ("edge hop, 16 callers: row 10p p50 / row 5d p50", "10p", "5d", "p50_ms", 1.5, "max"),
    # Issue #20: the Go greeter's production stack against the C++ limit, side by side.
    ("Go production stack: row 3g / row 7 throughput (vs the C++ limit)",
     "3g", "7", "throughput", 0.5, "min"),
]  # fmt: skip
# Ratios reported without a target.
INFO_RATIOS = [
    ("2u", "2", "throughput"),  # what uvloop alone gives a bare server
    ("4", "3", "throughput"),
    ("3", "7", "throughput"),  # our stack as a fraction of the C++ limit
    ("10j", "10", "throughput"),  # Connect JSON against gRPC through the edge
    ("3g", "3", "throughput"),  # greeter-go against the Python greeter, same settings
    ("5g", "5", "throughput"),  # caller -> greeter-go against caller -> greeter
    ("3", "3n", "throughput"),  # row 3 with validation against without (issue #21)
    ("3", "3n", "cpu_us_per_unit"),
]
SOAK_GROWTH_LIMIT_PCT = 10.0


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def paired_ratio(numerator: Row, denominator: Row, metric: str) -> dict[str, Any] | None:
    """numerator/denominator run by run (run i of both rows ran back to back in the same
    round), and the median of those ratios; None when either row has no runs."""
    pairs = list(zip(numerator.runs, denominator.runs, strict=False))
    ratios = [a[metric] / b[metric] for a, b in pairs if b[metric]]
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "runs": ratios}


def status(row: Row) -> str:
    if row.skipped is not None:
        return row.skipped
    if row.failures:
        return "error: " + row.failures[0].splitlines()[0]
    return "ok"


def summarize(row: Row) -> dict[str, Any]:
    def med(metric: str) -> float | None:
        return _median([run[metric] for run in row.runs if run.get(metric) is not None])

    return {
        "key": row.key,
        "title": row.title,
        "generator": row.generator,
        "concurrency": row.concurrency,
        "unit": row.unit,
        "status": status(row),
        "failures": row.failures,
        "throughput": med("throughput"),
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "errors": sum(int(run["errors"]) for run in row.runs),
        "server_cpu_s": med("server_cpu_s"),
        "cpu_us_per_unit": med("cpu_us_per_unit"),
        "peak_rss_mib": row.peak_rss_kib / 1024 if row.peak_rss_kib else None,
        "server_processes": [server.name for server in row.servers],
        "runs": row.runs,
    }


def build(
    rows: Sequence[Row],
    config: Config,
    soak: dict[str, Any] | None,
    machine_before: dict[str, Any],
    machine_after: dict[str, Any],
    elapsed: float,
) -> dict[str, Any]:
    by_key = {row.key: row for row in rows}
    summaries = [summarize(row) for row in rows]
    for summary, row in zip(summaries, rows, strict=True):
        base = by_key.get(row.baseline)
        ratio = paired_ratio(row, base, "throughput") if base is not None else None
        summary["vs_row1"] = None if ratio is None else ratio["median"]
        summary["vs_row1_baseline"] = row.baseline
    ratios: dict[str, Any] = {}
    for top, bottom, metric in INFO_RATIOS:
        ratios[f"row{top}/row{bottom} {metric}"] = paired_ratio(by_key[top], by_key[bottom], metric)
    targets: list[dict[str, Any]] = []
    for name, top, bottom, metric, target, kind in TARGETS:
        ratio = paired_ratio(by_key[top], by_key[bottom], metric)
        ratios[f"row{top}/row{bottom} {metric}"] = ratio
        reason = status(by_key[top]) if status(by_key[top]) != "ok" else status(by_key[bottom])
        if ratio is None:
            verdict, value = f"SKIP ({reason})", None
        else:
            value = ratio["median"]
            ok = value >= target if kind == "min" else value <= target
            verdict = "PASS" if ok else "MISS"
        sides = {
            key: _median([run[metric] for run in by_key[key].runs if run.get(metric) is not None])
            for key in (top, bottom)
        }
        targets.append(
            {"name": name, "value": value, "target": target, "kind": kind, "verdict": verdict,
             "runs": None if ratio is None else ratio["runs"], "metric": metric,
             "sides": sides}
        )  # fmt: skip
    if soak is None or "error" in soak or soak.get("growth_pct") is None:
        why = "not run" if soak is None else soak.get("error", "no samples")
        targets.append(
            {"name": "soak RSS growth %", "value": None, "target": SOAK_GROWTH_LIMIT_PCT,
             "kind": "max", "verdict": f"SKIP ({why})"}
        )  # fmt: skip
    else:
        growth = float(soak["growth_pct"])
        targets.append(
            {"name": f"soak RSS growth % ({soak['seconds']:.0f} s at {soak['rate']:.0f}/s)",
             "value": growth, "target": SOAK_GROWTH_LIMIT_PCT, "kind": "max",
             "verdict": "PASS" if growth < SOAK_GROWTH_LIMIT_PCT else "MISS"}
        )  # fmt: skip
    return {
        "config": {**asdict(config), "rows": sorted(config.rows)},
        "machine_before": machine_before,
        "machine_after": machine_after,
        "elapsed_s": elapsed,
        "rows": summaries,
        "ratios": ratios,
        "targets": targets,
        "soak": soak,
    }


def _num(value: float | None, digits: int = 2, thousands: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if thousands else f"{value:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    config = results["config"]
    before, after = results["machine_before"], results["machine_after"]
    lines = [
        f"### Benchmark: {config['runs']} interleaved run(s) per row, median; "
        f"{config['warmup']:g} s warm-up + {config['duration']:g} s measured; "
        f"{before['cpus']} CPUs, load avg {before['loadavg'][0]} -> {after['loadavg'][0]}; "
        f"Python {before['python']}, grpcio {before['grpcio']}",
        "",
        "| # | server | load generator | throughput | p50 ms | p99 ms | errors "
        "| server CPU s | CPU µs/call | peak RSS MiB | vs row 1 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        if row["status"] != "ok" and not row["runs"]:
            lines.append(
                f"| {row['key']} | {row['title']} | {row['status']} |  |  |  |  |  |  |  |  |"
            )
            continue
        unit_cost = "CPU µs/msg" if row["unit"] == "msg/s" else ""
        vs = _num(row["vs_row1"])
        if row["vs_row1_baseline"] != "1" and row["vs_row1"] is not None:
            vs += f" (vs {row['vs_row1_baseline']})"
        lines.append(
            f"| {row['key']} | {row['title']} | {row['concurrency']} "
            f"| {_num(row['throughput'], thousands=True)} {row['unit']} "
            f"| {_num(row['p50_ms'])} | {_num(row['p99_ms'])} | {row['errors']} "
            f"| {_num(row['server_cpu_s'])} "
            f"| {_num(row['cpu_us_per_unit'], 0)}{' /msg' if unit_cost else ''} "
            f"| {_num(row['peak_rss_mib'], 0)} | {vs} |"
        )
    lines += ["", "Ratios (median of run-by-run ratios within this session):", ""]
    for name, ratio in results["ratios"].items():
        if ratio is None:
            lines.append(f"- {name}: -")
        else:
            runs = ", ".join(f"{value:.2f}" for value in ratio["runs"])
            lines.append(f"- {name}: **{ratio['median']:.2f}** (runs: {runs})")
    lines += ["", "Targets (a report, not a gate):", ""]
    for target in results["targets"]:
        sign = ">=" if target["kind"] == "min" else "<="
        value = "-" if target["value"] is None else f"{target['value']:.2f}"
        limit = f"{sign} {target['target']:g}"
        detail = ""
        if target.get("runs"):
            runs = ", ".join(f"{ratio:.2f}" for ratio in target["runs"])
            medians = ", ".join(
                f"row {key}: {_num(median, 2 if target['metric'] == 'p50_ms' else 0)}"
                for key, median in target["sides"].items()
            )
            detail = f"; runs {runs}; medians {medians} ({target['metric']})"
        lines.append(f"- {target['verdict']}: {target['name']} = {value} (target {limit}{detail})")
    soak = results["soak"]
    if soak and "error" not in soak:
        lines += [
            "",
            f"Soak: greeter (production stack) at {soak['rate']:.0f} calls/s for "
            f"{soak['seconds']:.0f} s: {soak['requests']} calls, {soak['errors']} errors, "
            f"p50 {soak['p50_ms']:.2f} ms, p99 {soak['p99_ms']:.2f} ms; VmRSS idle "
            f"{soak['rss_idle_kib'] / 1024:.1f} MiB, after warm-up "
            f"{soak['rss_before_kib'] / 1024:.1f} MiB, at the end "
            f"{soak['rss_after_kib'] / 1024:.1f} MiB ({soak['growth_pct']:+.1f} %), "
            f"VmHWM {soak['peak_rss_kib'] / 1024:.1f} MiB.",
        ]
    elif soak:
        lines += ["", f"Soak: error: {soak['error']}"]
    failures = [(row["key"], f) for row in results["rows"] for f in row["failures"]]
    if failures:
        lines += ["", "Failures:", ""] + [f"- row {key}: {text}" for key, text in failures]
    lines += [
        "",
        "server CPU s: utime+stime of the server process tree(s) over the measured window "
        "(row 5: caller + greeter). CPU µs/call: that divided by the calls (row 6: messages) "
        "completed in the window. peak RSS: VmHWM summed over the server processes (row 4: "
        "supervisor + workers; row 5: caller + greeter). vs row 1: throughput ratio to row 1 "
        "with the same load generator (1p: row 1's server driven by the Python client).",
        "",
        f"Session time: {results['elapsed_s']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"
