"""Server processes under test: start, wait until ready, stop; CPU and memory of a process
tree read from /proc (utime+stime of /proc/<pid>/stat, VmHWM/VmRSS of /proc/<pid>/status)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from acme_devkit.ports import HOST as HOST  # re-exported: the harness's servers listen there
from acme_devkit.ports import free_port as free_port
from acme_devkit.processes import ServiceError, ServiceProcess

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent


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
ServerError = ServiceError  # a server under test did not start, or died


class ServerProcess(ServiceProcess):
    """One server under test (acme_devkit's ServiceProcess: clean environment, output in a
    log file), in a session of its own so that Ctrl-C reaches only the harness, which stops it."""

    log_path: Path  # always a file here

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(name, argv, log_path, env, port, new_session=True)

    def alive(self) -> bool:
        return self.returncode is None and self._process is not None

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_count(self, needle: str) -> int:
        """Lines of the log containing needle (e.g. how many workers logged "serving")."""
        return sum(1 for line in self.log_text().splitlines() if needle in line)

    def stop(self, timeout: float = 10.0) -> int | None:
        code = super().stop(timeout)
        if code is not None and code < 0 and code != -signal.SIGTERM:
            print(f"bench: {self.name} ended by signal {-code}", file=sys.stderr)
        return code
