"""Server processes under test: start, wait until ready, stop; CPU and memory of a process
tree read from /proc (utime+stime of /proc/<pid>/stat, VmHWM/VmRSS of /proc/<pid>/status)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent

# Inherited variables that would change what a server under test does: every setting of
# libs/common (and grpc core's GRPC_* switches), the multi-process plumbing, proxies.
_SCRUBBED_PREFIXES = (
    "GRPC_",
    "GREETER_",
    "CALLER_",
    "LOG_",
    "TLS_",
    "AUTH_",
    "METRICS_",
    "TRACING_",
    "OTEL_",
)
_SCRUBBED_NAMES = frozenset(
    {
        "INSTANCE_NAME",
        "PROMETHEUS_MULTIPROC_DIR",
        "ACME_WORKER_INDEX",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
    }
)


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def clean_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """os.environ without the variables that configure the services, plus overrides."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(_SCRUBBED_PREFIXES) and key.upper() not in _SCRUBBED_NAMES
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


# ----------------------------------------------------------------------------------- /proc
def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the parenthesised command name), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """root and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    pending = [root]
    while pending:
        pid = pending.pop()
        if _stat_fields(pid) is None:
            continue
        found.append(pid)
        pending.extend(children.get(pid, ()))
    return found


def cpu_snapshot(roots: Sequence[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by every process of the trees under roots."""
    snapshot: dict[int, float] = {}
    for root in roots:
        for pid in descendants(root):
            fields = _stat_fields(pid)
            if fields is not None:
                # Fields 14 (utime) and 15 (stime) of stat(5); fields[0] is field 3.
                snapshot[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return snapshot


def cpu_delta(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds spent between two snapshots (a process born in between counts in full)."""
    return sum(cpu_by_process(before, after).values())


def cpu_by_process(before: Mapping[int, float], after: Mapping[int, float]) -> dict[int, float]:
    """CPU seconds each process spent between two snapshots."""
    return {pid: round(seconds - before.get(pid, 0.0), 3) for pid, seconds in after.items()}


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by each thread of pid: {tid: (thread name, seconds)}."""
    threads: dict[int, tuple[str, float]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return threads
    for task in tasks:
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rfind(")") + 2 :].split()
        threads[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return threads


def status_kib(pid: int, field: str) -> int:
    """A `Vm*:` line of /proc/<pid>/status in KiB (0 if the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def tree_kib(roots: Sequence[int], field: str) -> int:
    """A `Vm*` value summed over every process of the trees under roots (VmHWM, VmRSS)."""
    return sum(status_kib(pid, field) for root in roots for pid in descendants(root))


# --------------------------------------------------------------------------------- servers
class ServerError(RuntimeError):
    """A server under test did not start, or died."""


class ServerProcess:
    """One server under test, run as its own process (session) with output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = clean_environment(env or {})
        self.port = port if port is not None else free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerError(f"{self.name} was not started")
        return self._process.pid

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self._process = subprocess.Popen(  # noqa: S603 - our own server command lines
                self.argv,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches the harness, which stops us
            )
        return self

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_count(self, needle: str) -> int:
        """Lines of the log containing needle (e.g. how many workers logged "serving")."""
        try:
            with self.log_path.open(encoding="utf-8", errors="replace") as log:
                return sum(1 for line in log if needle in line)
        except OSError:
            return 0

    def wait_ready(self, probe: Callable[[], str | None], timeout: float = 30.0) -> None:
        """Poll probe (None = ready, else what is wrong) until ready; ServerError otherwise."""
        deadline = time.monotonic() + timeout
        problem: str | None = "not probed"
        while time.monotonic() < deadline:
            if not self.alive():
                code = self._process.returncode if self._process else None
                raise ServerError(
                    f"{self.name} exited with code {code} before it was ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            problem = probe()
            if problem is None:
                return
            time.sleep(0.2)
        raise ServerError(
            f"{self.name} at {self.address} not ready after {timeout:.0f} s ({problem}); "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a supervisor relays it to its workers and waits for them); after timeout,
        SIGKILL to the process group the server leads (its own session, still ours: the
        leader is not reaped yet)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            print(
                f"bench: {self.name} ignored SIGTERM for {timeout:.0f} s; killing it",
                file=sys.stderr,
            )
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
