"""workers: the supervisor's decisions that need no worker process (the rest, with real
workers, is tests/integration/test_workers.py)."""

from __future__ import annotations

import socket

import pytest

from acme_common.workers import WORKER_INDEX_ENV, supervise, worker_index


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
        assert supervise(2, 0, "127.0.0.1", port, ["/nonexistent/worker"]) == 1
    assert f"cannot listen on 127.0.0.1:{port}: another server listens" in capsys.readouterr().err
