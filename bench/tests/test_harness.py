"""The benchmark harness still runs end to end: a short `python -m bench` over the Python rows
writes a table in which every selected row was measured without errors. (What it measures is
reported by `nox -s bench`, never asserted here.) Every row runs on the Python client, whether
or not the machine has h2load: its one long-lived HTTP/2 connection per row is what found the
Connect peer dropping the streams in flight at its 1,000th request. Row 3g (greeter-go) is
in it: its `go build` is a second or two from Go's build cache (the contract tests build the
same module) and its run two more; without Go it must say "not available" and why, and with
ACME_REQUIRE_GO_TOOLS=1 (as CI sets) it must be measured. Row 5g adds only a caller in front
of the same binary and is left to `nox -s bench`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


def test_a_short_bench_run_measures_every_selected_row(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "bench",
        "--rows",
        "2,2u,3,3g,5,6,9,10",
        "--runs",
        "1",
        "--warmup",
        "1",
        "--duration",
        "1",
        "--soak-seconds",
        "0",
        "--no-apt",
        "--python-client",
    ]
    env = {**os.environ, "ACME_BENCH_OUT": str(tmp_path)}
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=280, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["key"]: row for row in json.loads((tmp_path / "results.json").read_text())["rows"]}
    for key in ("2", "2u", "3", "5d", "5", "5d-c1", "5-c1", "6", "1p", "9", "10", "10p"):
        row = rows[key]
        assert row["status"] == "ok", row
        assert row["errors"] == 0, row
        assert row["throughput"] > 0, row
    go_row = rows["3g"]
    if shutil.which("go") is None and os.environ.get("ACME_REQUIRE_GO_TOOLS") != "1":
        assert go_row["status"].startswith("not available: no Go toolchain"), go_row
    else:
        assert go_row["status"] == "ok", go_row
        assert go_row["errors"] == 0, go_row
        assert go_row["throughput"] > 0, go_row
    assert rows["5g"]["status"].startswith("skipped: not selected"), rows["5g"]
    for key in ("7", "10j", "10c"):  # the C++ server is not selected; Connect JSON needs h2load
        assert rows[key]["status"].startswith("skipped"), rows[key]
    assert "| 3 |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "results.png").stat().st_size > 0
