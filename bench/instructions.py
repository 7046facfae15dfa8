"""Instructions per call under callgrind: what each part of the stack costs, free of noise.

    uv run python -m bench.instructions          # about 5 minutes; needs valgrind and h2load

Wall-clock throughput on a shared 2-core machine swings by tens of percent between runs;
valgrind's callgrind counts the instructions a server executes instead, which repeat to
within a fraction of a percent whatever else the machine does. Each variant runs twice
under callgrind, serving FEW and then MANY SayHello calls from h2load (one at a time); the
difference of the two totals divided by MANY - FEW is its cost per call, with start-up and
shutdown cancelled out. Written to .bench/instructions.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import h2load, procs
from bench.servers import launch

RESULTS = procs.REPO / ".bench"
TOKEN = "bench-token"  # noqa: S105 - a throw-away bearer token for loopback servers
FEW, MANY = 500, 1500


@dataclass(frozen=True)
class Variant:
    label: str
    start: Callable[[Path], procs.ServerProcess]
    token: str | None = TOKEN
    part: bool = False  # row 3 with one part off: the difference is what the part costs


def greeter_variant(name: str, *args: str) -> Callable[[Path], procs.ServerProcess]:
    """bench.servers.greeter_variant (the greeter with one part switched off)."""
    return lambda logs: launch.greeter_variant(name, logs, TOKEN, *args)


VARIANTS = [
    Variant("row 1: sync grpc.server", launch.sync_server, token=None),
    Variant("row 2: bare grpc.aio server", launch.aio_server, token=None),
    Variant(
        "row 3: greeter, production stack (default loop)",
        lambda logs: launch.greeter("full", logs, TOKEN),
    ),
    Variant(
        "row 2u: bare grpc.aio server on uvloop",
        lambda logs: launch.aio_server(logs, "uvloop"),
        token=None,
    ),
    Variant(
        "row 3 on asyncio (EVENT_LOOP=asyncio)",
        lambda logs: launch.greeter("asyncio", logs, TOKEN, extra_env={"EVENT_LOOP": "asyncio"}),
    ),
    Variant(
        "row 3 without the access log (LOG_LEVEL=WARNING)",
        lambda logs: launch.greeter("nolog", logs, TOKEN, log_level="WARNING"),
        part=True,
    ),
    Variant(
        "row 3 without auth (AUTH_TOKENS empty)",
        lambda logs: launch.greeter("noauth", logs, ""),
        token=None,
        part=True,
    ),
    Variant("row 3 without metrics", greeter_variant("nometrics", "--metrics", "off"), part=True),
    Variant(
        "row 3 without validation (PerCall(validation=False))",
        greeter_variant("novalidation", "--validation", "off"),
        part=True,
    ),
    Variant(
        "row 3 without the per-call path (handlers as registered)",
        greeter_variant("nowrapping", "--wrapping", "off"),
        part=True,
    ),
]


def total_instructions(variant: Variant, calls: int, logs: Path) -> int:
    """Instructions the server executed from start to exit, having served `calls` calls.
    The time limits are generous: under valgrind on a loaded 2-core machine a Python server
    took over 3 minutes to start."""
    server = variant.start(logs)
    out = logs / f"{server.name}.{calls}.callgrind"
    server.argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *server.argv]
    server.start()
    try:
        server.wait_ready(lambda: launch.say_hello_problem(server, variant.token), timeout=600)
        body = logs / f"{server.name}.body"
        body.write_bytes(h2load.grpc_frame(launch.say_hello_bytes()))
        headers = [f"--header={header}" for header in h2load.grpc_headers(variant.token)]
        url = f"http://{server.address}{launch.SAY_HELLO}"
        command = ["h2load", f"-n{calls}", "-c1", "-m1", f"--data={body}", *headers, url]
        output = subprocess.run(  # noqa: S603 - fixed h2load command line, loopback URL
            command, capture_output=True, text=True, timeout=600, check=True
        ).stdout
        if f"{calls} succeeded" not in output:
            raise RuntimeError(f"{variant.label}: h2load did not succeed:\n{output}")
    finally:
        server.stop(timeout=300)
    summary = re.search(r"^summary: (\d+)$", out.read_text(), re.MULTILINE)
    if summary is None:
        raise RuntimeError(f"{variant.label}: no callgrind summary in {out}")
    return int(summary.group(1))


def per_call(variant: Variant, logs: Path) -> float | str:
    """Instructions per call, or why the variant could not be measured (a server killed
    after a stop timeout under valgrind, say), so that one variant cannot sink the table."""
    try:
        few, many = (total_instructions(variant, calls, logs) for calls in (FEW, MANY))
    except (RuntimeError, OSError, subprocess.SubprocessError, procs.ServerError) as error:
        return f"not measured: {str(error).splitlines()[0][:200]}"
    return (many - few) / (MANY - FEW)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        metavar="TEXT",
        help="run only the variants whose label contains TEXT (repeatable; rows 2 and 3 "
        "always run, as the table's reference)",
    )
    args = parser.parse_args()
    variants = [
        variant
        for index, variant in enumerate(VARIANTS)
        if index in (1, 2) or not args.only or any(text in variant.label for text in args.only)
    ]
    missing = [tool for tool in ("valgrind", "h2load") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"bench.instructions needs {' and '.join(missing)} (apt-get install valgrind)")
    logs = RESULTS / "instructions"
    logs.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(2) as pool:  # instruction counts do not mind sharing the cores
        counts = list(pool.map(lambda variant: per_call(variant, logs), variants))
    by_label = {variant.label: count for variant, count in zip(variants, counts, strict=True)}
    bare, full = by_label[VARIANTS[1].label], by_label[VARIANTS[2].label]
    lines = [
        f"Instructions per SayHello call (callgrind; {MANY} - {FEW} calls, one at a time)",
        "",
        "| server | instructions per call | row 2 / this | what row 3 pays for the part |",
        "|---|---:|---:|---:|",
    ]
    for variant, count in zip(variants, counts, strict=True):
        if isinstance(count, str):
            lines.append(f"| {variant.label} | {count} | | |")
            continue
        cost = f"{full - count:,.0f}" if variant.part and isinstance(full, float) else ""
        ratio = f"{bare / count:.2f}" if isinstance(bare, float) else ""
        lines.append(f"| {variant.label} | {count:,.0f} | {ratio} | {cost} |")
    table = "\n".join(lines)
    print(table)
    (RESULTS / "instructions.md").write_text(table + "\n")
    (RESULTS / "instructions.json").write_text(json.dumps(by_label, indent=2) + "\n")


if __name__ == "__main__":
    main()
