"""workers: the supervisor's decisions that need no worker process (the rest, with real
workers, is tests/integration/test_workers.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from acme_common._workers import WORKER_INDEX_ENV, supervise, worker_index


def test_a_worker_knows_its_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKER_INDEX_ENV, raising=False)
    assert worker_index() is None
    monkeypatch.setenv(WORKER_INDEX_ENV, "1")
    assert worker_index() == 1


def test_a_supervisor_whose_port_is_taken_starts_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        # The command would fail loudly if it ever ran: nothing may be started.
        with pytest.raises(SystemExit) as exited:
            supervise(2, 0, "127.0.0.1", port, ["/nonexistent/worker"])
    assert exited.value.code == 2
    said = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port} (GRPC_PORT): another server listens" in said


# Worker 1 stops cleanly on SIGTERM and says when it can; worker 0 then exits 0 unasked, as a
# service's main() that returns by mistake would.
_WORKER = """
import os, pathlib, signal, sys, time
ready = pathlib.Path(sys.argv[1])
if os.environ["ACME_WORKER_INDEX"] == "1":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ready.touch()
    time.sleep(3600)
deadline = time.monotonic() + 60
while not ready.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
"""


def test_a_worker_that_exits_unasked_stops_the_group(tmp_path: Path) -> None:
    # Even with exit code 0: one process that ends leaves its pod not ready and restarted; a
    # group must not serve on with a worker short (and, for worker 0, no admin port).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # supervisor_main's arguments: workers metrics_port host port log_level log_format command
    arguments = ["2", "0", "127.0.0.1", str(port), "INFO", "json"]
    command = [sys.executable, "-c", _WORKER, str(tmp_path / "ready")]
    supervisor = subprocess.run(
        [sys.executable, "-m", "acme_common._workers", *arguments, *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    records = [json.loads(line) for line in supervisor.stderr.splitlines()]
    died = [record for record in records if record["message"] == "worker exited"]
    assert [(r["level"], r["worker"], r["exit_code"], r["signal"]) for r in died] == [
        ("ERROR", 0, 0, None)
    ], supervisor.stderr
    assert supervisor.returncode == 0, "every worker exited 0"
