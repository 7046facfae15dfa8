"""Run a service in one process, or in GRPC_WORKERS processes sharing the port.

grpc.aio serves from one thread, so one process uses one core. With GRPC_WORKERS=N the
supervisor starts N copies of the same command line, each binding the same port with
SO_REUSEPORT (the kernel spreads connections), forwards SIGTERM/SIGINT to all of them so each
drains gracefully, and serves their merged Prometheus metrics on METRICS_PORT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine
from typing import Any

from acme_common.settings import ServerSettings

log = logging.getLogger("acme.workers")

WORKER_INDEX_ENV = "ACME_WORKER_INDEX"
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def worker_index() -> int | None:
    """This process's worker number when it runs under a supervisor, else None."""
    value = os.environ.get(WORKER_INDEX_ENV)
    return None if value is None else int(value)


def run(settings: ServerSettings, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """asyncio.run(main()) here, or under a supervisor of settings.grpc_workers copies."""
    if settings.grpc_workers > 1 and worker_index() is None:
        sys.exit(supervise(settings))
    # Until serve() installs its draining handlers there is nothing to drain: stop cleanly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_before_serving)
    asyncio.run(main())
    # Drained and stopped: a late second signal must not turn the exit code into a kill.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


def _exit_before_serving(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def supervise(settings: ServerSettings) -> int:
    """Start the workers, relay stop signals, serve merged metrics; 0 when all exited 0."""
    with tempfile.TemporaryDirectory(prefix="acme-metrics-") as metrics_dir:
        command = [sys.executable, *sys.orig_argv[1:]]
        workers = [
            subprocess.Popen(  # noqa: S603 - our own command line
                command,
                env={**os.environ, WORKER_INDEX_ENV: str(index), MULTIPROCESS_DIR_ENV: metrics_dir},
            )
            for index in range(settings.grpc_workers)
        ]
        log.info("workers started", extra={"pids": [worker.pid for worker in workers]})
        stopping: list[int] = []

        def relay(signum: int, _frame: object) -> None:
            stopping.append(signum)
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, relay)
        if settings.metrics_port:
            serve_merged_metrics(settings.metrics_port, settings.grpc_host, metrics_dir)
        return wait_for(workers, stopping)


def wait_for(workers: list[subprocess.Popen[bytes]], stopping: list[int]) -> int:
    """Wait for every worker; if one dies on its own (not while stopping), stop the rest so the
    orchestrator restarts the whole service. 0 when every worker exited 0."""
    codes: dict[int, int] = {}
    while len(codes) < len(workers):
        pid, status = os.wait()
        worker = next((w for w in workers if w.pid == pid), None)
        if worker is None:
            continue
        worker.returncode = codes[pid] = os.waitstatus_to_exitcode(status)
        if codes[pid] != 0 and not stopping:
            log.error("worker exited", extra={"pid": pid, "exit_code": codes[pid]})
            stopping.append(signal.SIGTERM)
            for other in workers:
                if other.returncode is None:
                    other.send_signal(signal.SIGTERM)
    log.info("workers stopped", extra={"exit_codes": list(codes.values())})
    return 0 if all(code == 0 for code in codes.values()) else 1


def serve_merged_metrics(port: int, host: str, metrics_dir: str) -> None:
    """/metrics with every worker's samples merged (prometheus-client multiprocess mode)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics_dir)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)
