"""Run a documented fence's commands as a reader pastes them, against a stack the test started
on free ports; the only changes are the visible ones of `as_run` and `shell_environment`
(docs/testing.md, "Documented commands"), and a failure shows the command as written and as run.

A command passes when it exits 0 within its timeout and every HTTP answer curl got is below
400, or is the status the docs show for it (a `# HTTP 400 ...` line after it).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from acme_devkit.environment import clean_environment
from tests.docs.fences import Command, Fence

# The addresses the docs use, those of `nox -s up` and of docker-compose.yml's published
# ports, by service; a test's stack serves them elsewhere.
DOCUMENTED_ADDRESSES = {
    "greeter": "127.0.0.1:50051",
    "caller": "127.0.0.1:50052",
    "gateway": "127.0.0.1:8080",
}
LOOPBACK = re.compile(r"\b(?:127\.0\.0\.1|localhost):\d+(?!\d)")
# acmectl reaches greeter and caller at DOCUMENTED_ADDRESSES unless told otherwise, and
# `acmectl call <service>/<method>` a service's documented port unless given --address.
ACMECTL = re.compile(r"(?<![\w./-])acmectl(?=\s|$)")
ACMECTL_CALL = re.compile(r"(?<![\w./-])acmectl(\s+)call\s+(?:acme\.)?(\w+)[./]")
# curl reports each answer's status on stderr through the configuration the runner gives it
# (CURL_HOME/.curlrc): the command's own output stays as the reader sees it.
STATUS_LINE = "acme-docs-http-status"
CURLRC = f'write-out = "%{{stderr}}{STATUS_LINE} %{{http_code}}\\n"\n'
OUTPUT_LIMIT = 4000  # characters of a failed command's stdout and stderr shown


@dataclass(frozen=True)
class Target:
    """Where the test's stack serves what the docs address: host:port by service (the keys of
    DOCUMENTED_ADDRESSES), and the variables that point commands at it (compose's project
    name and published ports)."""

    addresses: Mapping[str, str]
    env: Mapping[str, str] = field(default_factory=dict)


def as_run(text: str, target: Target) -> str:
    """The command with each documented address replaced by the stack's, and `acmectl` given
    the stack's `--greeter` and `--caller` (its defaults are the documented addresses), and
    `acmectl call` of a service the stack serves its `--address`. A
    loopback address that is not a documented one fails the test: it would reach whatever
    listens there on this machine, not the test's stack."""
    actual = {DOCUMENTED_ADDRESSES[name]: address for name, address in target.addresses.items()}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) not in actual:
            pytest.fail(
                f"{match.group(0)} is no address the test's stack serves "
                f"({', '.join(sorted(actual))}): add it to DOCUMENTED_ADDRESSES "
                "(tests/docs/running.py) and to the stacks the tests start"
            )
        return actual[match.group(0)]

    def call(match: re.Match[str]) -> str:
        address = target.addresses.get(match.group(2))
        if address is None:
            return match.group(0)
        return match.group(0).replace(" call", f" call --address {address}", 1)

    text = ACMECTL_CALL.sub(call, LOOPBACK.sub(replace, text))
    options = f"--greeter {target.addresses['greeter']} --caller {target.addresses['caller']}"
    return ACMECTL.sub(f"acmectl {options}", text)


def shell_environment(target: Target, curl_home: Path) -> dict[str, str]:
    """A fresh shell's environment: no setting a service reads (acme_devkit's
    clean_environment: the stack is configured by the test, not by the developer's shell), the
    test's own virtualenv off PATH (the repository's tools are reached by `uv run`, as by a
    reader), `uv run` using that virtualenv (UV_PROJECT_ENVIRONMENT: the same uv.lock as .venv,
    without syncing another), curl reporting statuses (CURL_HOME), and the target's variables."""
    scripts = sysconfig.get_path("scripts")
    env = clean_environment()
    env.pop("VIRTUAL_ENV", None)
    path = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(entry for entry in path if entry and entry != scripts)
    env["UV_PROJECT_ENVIRONMENT"] = sys.prefix
    env["CURL_HOME"] = str(curl_home)
    env.update(target.env)
    return env


def run_fence(fence: Fence, target: Target, root: Path, tmp_path: Path, timeout: float) -> None:
    """Each command of fence in order, each in a fresh `bash -c` in root; the test fails at the
    first that fails, with the command as written, as run and what it printed."""
    __tracebackhide__ = True  # the report says it all
    (tmp_path / ".curlrc").write_text(CURLRC, encoding="utf-8")
    env = shell_environment(target, tmp_path)
    for command in fence.commands:
        text = as_run(command.text, target)
        print(f"{fence.page}:{command.line}: {text}", flush=True)  # what ran, in -s or -rP
        code, stdout, stderr = run_shell(text, root, env, timeout)
        statuses = [int(line.split()[1]) for line in stderr.splitlines() if is_status(line)]
        stderr = "\n".join(line for line in stderr.splitlines() if not is_status(line))
        problem = judge(command, code, statuses)
        if problem is not None:
            pytest.fail(report(fence, command, text, target, problem, stdout, stderr))


def is_status(line: str) -> bool:
    return line.startswith(STATUS_LINE + " ") and line.split()[1].isdigit()


def run_shell(
    text: str, root: Path, env: Mapping[str, str], timeout: float
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `bash -c text`; its whole process group is killed after
    timeout seconds (exit code -9 then)."""
    process = subprocess.Popen(
        ["bash", "-c", text],
        cwd=root,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        stderr += f"\n[killed after {timeout:.0f} s: a command that runs this long is long-running]"
        return -signal.SIGKILL, stdout, stderr
    return process.returncode, stdout, stderr


def judge(command: Command, code: int, statuses: list[int]) -> str | None:
    """Why the command failed, or None."""
    if code != 0:
        return f"exit code {code}"
    if command.documented_status is not None and not statuses:
        return f"the docs show HTTP {command.documented_status}, and curl got no answer"
    for status in statuses:
        if status >= 400 and status != command.documented_status:
            documented = command.documented_status
            shown = f"the docs show HTTP {documented}" if documented else "the docs show no error"
            return f"HTTP {status} ({shown})"
        if status < 400 and command.documented_status is not None:
            return f"HTTP {status}, the docs show HTTP {command.documented_status}"
    return None


def report(
    fence: Fence,
    command: Command,
    text: str,
    target: Target,
    problem: str,
    stdout: str,
    stderr: str,
) -> str:
    variables = " ".join(f"{name}={value}" for name, value in sorted(target.env.items()))
    return "\n".join(
        [
            f"{fence.page}:{command.line}: the documented command failed as pasted: {problem}",
            f"as written:\n{command.text}",
            f"as run (docs/testing.md, Documented commands):\n{text}",
            *([f"with: {variables}"] if variables else []),
            f"stdout:\n{stdout[-OUTPUT_LIMIT:]}",
            f"stderr:\n{stderr[-OUTPUT_LIMIT:]}",
        ]
    )
