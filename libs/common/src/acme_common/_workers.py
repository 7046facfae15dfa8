"""Run a service in one process, or in GRPC_WORKERS processes sharing the port.

grpc.aio serves from one thread, so one process uses one core. With GRPC_WORKERS=N the
supervisor starts N copies of the same command line, each binding the same port with
SO_REUSEPORT (the kernel spreads connections), forwards SIGTERM/SIGINT to all of them so each
drains gracefully, and serves their merged Prometheus metrics on METRICS_PORT.

A worker that exits without being asked (a crash, the OOM killer's SIGKILL, even exit code 0)
stops the whole group, as one process ending stops its container: the supervisor reaps it at
once, removes its live gauges from the merged metrics (prometheus_client's
mark_process_dead: grpc_server_in_flight then counts only calls that are still served, while
the dead worker's counters and histograms stay, as counters must not go backwards), logs an
ERROR line with its index, pid, exit code and signal, and SIGTERMs the others, which drain
(health NOT_SERVING; the admin port is gone if worker 0 died). It exits 0 only when every
worker exited 0. Restarting the worker instead, as gunicorn does, was not chosen: see
wait_for.

The supervisor only waits and relays, yet the service's entry point has imported everything
(grpc, protobuf, pydantic, OpenTelemetry: most of a server's memory) by the time it asks for
one. So it first re-executes itself (same pid, so the orchestrator's signals still reach it) as
`python -m acme_common._workers`, which imports only this module, logging and, when
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

from acme_common._listen import cannot_listen
from acme_common._port_claim import PortTaken, claim_port

if TYPE_CHECKING:
    from acme_common._settings import ServerSettings

log = logging.getLogger("acme.workers")

WORKER_INDEX_ENV = "ACME_WORKER_INDEX"
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def worker_index() -> int | None:
    """This process's worker number when it runs under a supervisor, else None."""
    value = os.environ.get(WORKER_INDEX_ENV)
    return None if value is None else int(value)


def run_in_workers(settings: ServerSettings, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """main() on the EVENT_LOOP loop here, or under a supervisor of settings.grpc_workers
    copies (each runs its own loop)."""
    if settings.grpc_workers > 1 and worker_index() is None:
        become_supervisor(settings)
    from acme_common._event_loop import run_on_loop

    # Until serve() installs its draining handlers there is nothing to drain: stop cleanly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_before_serving)
    run_on_loop(main(), settings.event_loop)
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
    from acme_common._logs import configure_logging

    configure_logging(level, fmt)
    return supervise(int(workers), int(metrics_port), host, int(port), command)


def supervise(count: int, metrics_port: int, host: str, port: int, command: Sequence[str]) -> int:
    """Start count workers running command on host:port, relay stop signals, serve merged
    metrics; 0 when all exited 0. A port that is not free exits 2 naming its variable:
    GRPC_PORT before anything starts, METRICS_PORT once the workers it started have stopped."""
    try:
        claim = claim_port(host, port)
    except PortTaken as error:
        cannot_listen("GRPC_PORT", f"{host}:{port}", str(error))
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
        if metrics_port:  # after the workers: its thread must not exist when they fork
            try:
                serve_merged_metrics(metrics_port, host, metrics_dir)
            except OSError as error:  # taken: the workers must not serve on without it
                relay(signal.SIGTERM, None)
                wait_for(workers, stopping, None)
                cannot_listen("METRICS_PORT", f"{host}:{metrics_port}", error)
        return wait_for(workers, stopping, metrics_dir if metrics_port else None)


def wait_for(
    workers: list[subprocess.Popen[bytes]], stopping: list[int], metrics_dir: str | None
) -> int:
    """Wait for every worker (workers[i] is worker i); when one exits unasked (not after a
    stop signal), stop the rest. 0 when every worker exited 0. metrics_dir: the multiprocess
    directory served on METRICS_PORT, None when no one reads it.

    The group stops rather than restart the worker (gunicorn's way) because that is what one
    worker gives: a process that dies ends its container, and the orchestrator restarts it with
    a back-off and counts the restarts, where people look. A restart in here would hide a
    crash loop behind a pod that looks alive, and a crash often comes from what every worker
    shares (configuration, a dependency, a poison request that is retried). The other workers
    still drain their calls while the service's other replicas take the new ones."""
    forget = _live_gauges_remover(metrics_dir)
    codes: dict[int, int] = {}
    while len(codes) < len(workers):
        pid, status = os.wait()
        index = next((i for i, worker in enumerate(workers) if worker.pid == pid), None)
        if index is None:
            continue
        code = codes[pid] = workers[index].returncode = os.waitstatus_to_exitcode(status)
        # At once, not at the group's end: the merged metrics are served through the others'
        # drain (up to GRPC_GRACE_PERIOD), and a dead worker's in-flight calls are not.
        forget(pid)
        asked = bool(stopping)
        if code != 0 or not asked:  # a crash in the drain is no less a crash
            log.error(
                "worker exited",
                extra={
                    "worker": index,
                    "pid": pid,
                    "exit_code": code,
                    "signal": _signal_name(-code) if code < 0 else None,
                    "asked_to_stop": asked,
                },
            )
        if not asked:
            stopping.append(signal.SIGTERM)
            for other in workers:
                if other.returncode is None:
                    other.send_signal(signal.SIGTERM)
    log.info("workers stopped", extra={"exit_codes": list(codes.values())})
    return 0 if all(code == 0 for code in codes.values()) else 1


def _live_gauges_remover(metrics_dir: str | None) -> Callable[[int], None]:
    """A function that drops a dead worker's live gauges (multiprocess_mode live*, such as
    grpc_server_in_flight) from metrics_dir; its counters and histograms stay."""
    if metrics_dir is None:
        return lambda _pid: None
    from prometheus_client.multiprocess import mark_process_dead

    return lambda pid: mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]


def _signal_name(signum: int) -> str:
    """SIGKILL for 9; the number for a signal Python has no name for (most real-time ones)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


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
