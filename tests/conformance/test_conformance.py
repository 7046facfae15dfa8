"""The Connect conformance suite against the real edge (docs/testing.md, "Connect conformance"):

    connectconformance --mode server --conf config.yaml --known-failing @known-failing.txt
        -- python -m tests.conformance.launcher

runs every case that config.yaml's features call for (HTTP/1.1 and HTTP/2; Connect, gRPC-Web
and gRPC; proto and JSON; identity and gzip; every stream type; Connect GET; the message size
limit) with its reference clients against the gateway, which forwards each call to the
conformance service on acme_common's server stack (launcher.py, service.py). Any unexpected
failure fails the test, with the suite's own summary of what failed.

connectconformance (the Go module connectrpc.com/conformance at the version tools/go/go.mod
pins) is found on PATH or in $(go env GOPATH)/bin; without it, or
without its protos in Go's module cache, the test is skipped loudly (ACME_REQUIRE_GO_TOOLS=1,
set by .ci/run, which installs it: fails instead).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import pytest

from acme_devkit.external import not_run
from acme_devkit.go import go_program
from tests.conformance import stubs
from tests.conformance.launcher import LOGS_VARIABLE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONFIG = HERE / "config.yaml"
KNOWN_FAILING = HERE / "known-failing.txt"
REQUIRE_VARIABLE = "ACME_REQUIRE_GO_TOOLS"
PROGRAM = "connectconformance"
# RPCs the reference client has in flight at once. On 2 cores: 4 -> 41 s, 8 -> 33 s, 16 -> 33 s
# for the whole suite (docs/testing.md, "Connect conformance").
PARALLEL = 8
# Server configurations (launcher processes, each a gateway and a service) run at once: one,
# since each must answer connectconformance within 10 s of its start, which two starting
# together on a loaded 2-core machine did not always do.
MAX_SERVERS = 1
SUITE_TIMEOUT = 480.0  # seconds; the suite takes about 35 s here
MAX_REPORTED_FAILURES = 40  # failure blocks printed (the summary counts them all)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(SUITE_TIMEOUT + 120)]


def not_available(problem: str) -> NoReturn:
    not_run(
        "CONNECT CONFORMANCE SUITE",
        problem,
        "Go and `GOWORK=off GOBIN=$(go env GOPATH)/bin go -C tools/go install tool` "
        f"({stubs.VERSION}; into $(go env GOPATH)/bin)",
        REQUIRE_VARIABLE,
    )


def failure_summary(output: str) -> str:
    """The suite's report, shortened: its FAILED blocks (at most MAX_REPORTED_FAILURES) and
    its totals."""
    blocks = re.split(r"\n(?=FAILED: )", output)
    failed = [block.strip() for block in blocks if block.startswith("FAILED: ")]
    totals = output[output.rfind("Total cases:") :] if "Total cases:" in output else output[-3000:]
    shown = failed[:MAX_REPORTED_FAILURES]
    more = len(failed) - len(shown)
    return "\n\n".join(
        [*shown, *([f"... and {more} more FAILED blocks"] if more > 0 else []), totals.strip()]
    )


def test_gateway_passes_the_connect_conformance_suite(tmp_path: Path) -> None:
    program = go_program(PROGRAM)
    if program is None:
        not_available(f"`{PROGRAM}` is neither on PATH nor in $(go env GOPATH)/bin")
    version = subprocess.run(
        [program, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.split()
    if version[-1:] != [stubs.VERSION]:
        not_available(f"{program} is {' '.join(version) or 'unknown'}, not {stubs.VERSION}")
    try:
        stubs_dir = stubs.generate(tmp_path / "stubs")
    except stubs.ProtosMissing as error:
        not_available(str(error))
    logs = tmp_path / "logs"
    logs.mkdir()
    command = [
        str(program),
        "--mode=server",
        f"--conf={CONFIG}",
        f"--known-failing=@{KNOWN_FAILING}",
        f"--parallel={PARALLEL}",
        f"--max-servers={MAX_SERVERS}",
        "-v",
        "--",
        sys.executable,
        "-m",
        "tests.conformance.launcher",
    ]
    env = {**os.environ, stubs.STUBS_VARIABLE: str(stubs_dir), LOGS_VARIABLE: str(logs)}
    started = time.monotonic()
    # A session of its own: whatever it started (launchers, their gateways and services) is
    # in its process group, killed at the end whatever happened.
    suite = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = suite.communicate(timeout=SUITE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(suite.pid, signal.SIGKILL)
        output, _ = suite.communicate()
        pytest.fail(
            f"the suite did not finish within {SUITE_TIMEOUT:.0f} s (logs: {logs}):\n"
            f"{failure_summary(output)}"
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(suite.pid, signal.SIGKILL)
    elapsed = time.monotonic() - started
    summary = failure_summary(output)
    print(f"connectconformance {stubs.VERSION}: {elapsed:.0f} s\n{summary}")
    assert suite.returncode == 0, (
        f"the Connect conformance suite failed (exit {suite.returncode}; the processes' logs "
        f"are in {logs}; add --trace to its command line for HTTP traces):\n{summary}"
    )
