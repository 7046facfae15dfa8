"""Run a service in one process, or in GRPC_WORKERS processes sharing the port.

grpc.aio serves from one thread, so one process uses one core. With GRPC_WORKERS=N the
supervisor starts N copies of the same command line, each binding the same port with
SO_REUSEPORT (the kernel spreads connections), forwards SIGTERM/SIGINT to all of them so each
drains gracefully, and serves their merged Prometheus metrics on METRICS_PORT.

The supervisor only waits and relays, yet the service's entry point has imported everything
(grpc, protobuf, pydantic, OpenTelemetry: ~56 MiB) by the time it asks for one. So it first
re-executes itself (same pid, so the orchestrator's signals still reach it) as
`python -m acme_common.workers`, which imports only this module, logging and, when
METRICS_PORT is set, prometheus_client.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from acme_common.port_claim import PortTaken, claim_port

if TYPE_CHECKING:
    from acme_common.settings import ServerSettings

log = logging.getLogger("acme.workers")

WORKER_INDEX_ENV = "ACME_WORKER_INDEX"
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def worker_index() -> int | None:
    """This process's worker number when it runs under a supervisor, else None."""
    value = os.environ.get(WORKER_INDEX_ENV)
    return None if value is None else int(value)


def run(settings: ServerSettings, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """main() on the EVENT_LOOP loop here, or under a supervisor of settings.grpc_workers
    copies (each runs its own loop)."""
    if settings.grpc_workers > 1 and worker_index() is None:
        become_supervisor(settings)
    from acme_common import event_loop

    # Until serve() installs its draining handlers there is nothing to drain: stop cleanly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_before_serving)
    event_loop.run(main(), settings.event_loop)
    # Drained and stopped: a late second signal must not turn the exit code into a kill.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


def _exit_before_serving(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def become_supervisor(settings: ServerSettings) -> NoReturn:
    """Replace this process by a lean supervisor of settings.grpc_workers copies of its
    command line (see the module docstring)."""
    command = [sys.executable, *sys.orig_argv[1:]]
    arguments = [
        str(settings.grpc_workers),
        str(settings.metrics_port),
        settings.grpc_host,
        str(settings.grpc_port),
        settings.log_level,
        settings.log_format,
        *command,
    ]
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", __name__, *arguments])  # noqa: S606


def supervisor_main(arguments: Sequence[str]) -> int:
    """Entry of the re-executed supervisor: `workers metrics_port host port log_level
    log_format command...`."""
    workers, metrics_port, host, port, level, fmt, *command = arguments
    from acme_common.logs import configure_logging

    configure_logging(level, fmt)
    return supervise(int(workers), int(metrics_port), host, int(port), command)


def supervise(count: int, metrics_port: int, host: str, port: int, command: Sequence[str]) -> int:
    """Start count workers running command on host:port, relay stop signals, serve merged
    metrics; 0 when all exited 0, 1 when the port is not free (then nothing is started)."""
    try:
        claim = claim_port(host, port)
    except PortTaken as error:
        print(f"cannot listen on {host}:{port}: {error}", file=sys.stderr)
        return 1
    with claim:
        return _supervise(count, metrics_port, host, command)


def _supervise(count: int, metrics_port: int, host: str, command: Sequence[str]) -> int:
    stopping: list[int] = []
    workers: list[subprocess.Popen[bytes]] = []

    def relay(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    # Before the first worker starts, so that no stop signal can be missed in between.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, relay)
    with tempfile.TemporaryDirectory(prefix="acme-metrics-") as metrics_dir:
        for index in range(count):
            if stopping:
                break
            workers.append(
                subprocess.Popen(  # noqa: S603 - our own command line
                    command,
                    preexec_fn=_stop_with_supervisor,  # runs before exec; no threads here yet
                    env={
                        **os.environ,
                        WORKER_INDEX_ENV: str(index),
                        MULTIPROCESS_DIR_ENV: metrics_dir,
                    },
                )
            )
        log.info("workers started", extra={"pids": [worker.pid for worker in workers]})
        if stopping:  # a stop signal came while starting: relay it to the ones started
            for worker in workers:
                worker.send_signal(stopping[0])
        if metrics_port:
            serve_merged_metrics(metrics_port, host, metrics_dir)
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


def _stop_with_supervisor() -> None:
    """In a worker, before it runs: SIGTERM it (it drains) when the supervisor dies, even by
    SIGKILL, so that no worker serves on without one (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def serve_merged_metrics(port: int, host: str, metrics_dir: str) -> None:
    """/metrics with every worker's samples merged (prometheus-client multiprocess mode)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics_dir)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)


if __name__ == "__main__":
    sys.exit(supervisor_main(sys.argv[1:]))
