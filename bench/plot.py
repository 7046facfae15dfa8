"""The benchmark table at a glance: throughput and p99 latency per row, from results.json,
as a PNG next to results.md (matplotlib, headless).

    python -m bench.plot [.bench/results.json]     -> .bench/results.png
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # no display: write files only

import matplotlib.pyplot as plt  # after choosing the backend


def plot(results: dict[str, Any], out: Path) -> Path | None:
    """Two bar charts (throughput, p99 ms) of the measured request rows; None if none."""
    rows = [
        row
        for row in results["rows"]
        if row["runs"] and row["unit"] == "req/s" and row["throughput"] is not None
    ]
    if not rows:
        return None
    labels = [f"{row['key']}: {row['title']}\n({row['concurrency']})" for row in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 0.55 * len(rows) + 2))
    positions = range(len(rows))
    left.barh(positions, [row["throughput"] for row in rows], color="tab:blue")
    left.set_xscale("log")  # the C++ row is an order of magnitude ahead
    left.set_xlabel("throughput, req/s (log scale; median of the runs)")
    left.set_yticks(list(positions), labels, fontsize=8)
    left.invert_yaxis()
    right.barh(positions, [row["p99_ms"] or 0.0 for row in rows], color="tab:orange")
    right.set_xlabel("p99 latency, ms (median of the runs)")
    right.set_yticks(list(positions), [row["key"] for row in rows])
    right.invert_yaxis()
    machine = results["machine_before"]
    figure.suptitle(
        f"nox -s bench: {results['config']['runs']} interleaved run(s) per row; "
        f"{machine['cpus']} CPUs, Python {machine['python']}, grpcio {machine['grpcio']}"
    )
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def main() -> None:
    import json

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".bench/results.json")
    written = plot(json.loads(source.read_text()), source.with_suffix(".png"))
    print(f"wrote {written}" if written else "no measured rows to plot")


if __name__ == "__main__":
    main()
