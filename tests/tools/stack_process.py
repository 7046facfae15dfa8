"""`acmectl stack` (what `nox -s up` runs) as a test runs it: in a process group of its own, so
that SIGINT to the group is the terminal's Ctrl-C; its output (the stack's lines and every
service's log) in a file; ready when it prints its overview."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

READY = "press Ctrl-C to stop"
START_TIMEOUT = 240.0  # seconds: every service's start (a cold Go build included)
STOP_TIMEOUT = 90.0  # seconds: every service's drain
# An overview line: `  <name>  <host:port>  <what it serves>`.
OVERVIEW_LINE = re.compile(r"^  (\S+)\s+(127\.0\.0\.1:\d+)\s+(.*)$", re.MULTILINE)


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def addresses(self) -> dict[str, str]:
        """Service name -> host:port, from the overview it printed."""
        overview = self.text().partition("the stack:\n")[2]
        return {match[1]: match[2] for match in OVERVIEW_LINE.finditer(overview)}

    def interrupt(self) -> int:
        """Ctrl-C (SIGINT to the whole group) and the stack's exit code once all drained."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            pytest.fail(f"the stack did not stop within {STOP_TIMEOUT:.0f} s:\n{self.text()}")


def start(
    acmectl: Sequence[str], arguments: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path
) -> Stack:
    """`acmectl stack <arguments>`, once it says it is up; the test fails (with its output)
    when it exits first or is not up in START_TIMEOUT."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*acmectl, "stack", *arguments],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Stack(process, log)
    deadline = time.monotonic() + START_TIMEOUT
    while READY not in stack.text():
        if process.poll() is not None:
            pytest.fail(f"the stack exited with {process.returncode}:\n{stack.text()}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"the stack was not up after {START_TIMEOUT:.0f} s:\n{stack.text()}")
        time.sleep(0.2)
    return stack


def refused(
    acmectl: Sequence[str], arguments: Sequence[str], env: Mapping[str, str], cwd: Path
) -> str:
    """The message of `acmectl stack <arguments>`, which must exit 2 before starting anything."""
    result = subprocess.run(
        [*acmectl, "stack", *arguments],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "serving" not in output, output  # refused before any service started
    return output


def problems(log: str) -> list[str]:
    """The lines of a stack's output that say something went wrong."""
    return [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line]
