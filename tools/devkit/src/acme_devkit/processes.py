"""A service (or any server command) run as a child process on loopback: started with a clean
environment and its output in a log file, ready when its grpc.health.v1 says SERVING (or a
probe of the caller's says so), stopped by its pid with SIGTERM, killed after a timeout."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from acme_common import check_health
from acme_devkit.environment import clean_environment
from acme_devkit.ports import HOST, free_port

STOP_TIMEOUT = 20.0  # seconds a process gets to exit after SIGTERM


class ServiceError(RuntimeError):
    """The process did not start, did not become ready, or did not stop."""


Probe = Callable[[], str | None]  # None when ready, else what is still wrong


class ServiceProcess:
    """One server process: `ServiceProcess.python_module("greeter", log_path, env)` runs
    `python -m greeter` with GRPC_HOST/GRPC_PORT set to a free loopback port."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path | None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        *,
        clean: bool = True,
        new_session: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path  # None: output goes to this process's terminal
        self.port = port if port is not None else free_port()
        overrides = dict(env or {})
        self.env = clean_environment(overrides) if clean else {**os.environ, **overrides}
        self.new_session = new_session  # a group of its own: Ctrl-C does not reach it
        self._process: subprocess.Popen[bytes] | None = None
        self.signalled = False  # a stop signal was sent: never send a second one

    @classmethod
    def python_module(
        cls,
        module: str,
        log_path: Path | None,
        env: Mapping[str, str] | None = None,
        *,
        clean: bool = True,
        name: str | None = None,
    ) -> ServiceProcess:
        """`python -m module` on a free port of 127.0.0.1 (env may override GRPC_*)."""
        port = free_port()
        settings = {"GRPC_HOST": HOST, "GRPC_PORT": str(port), **(env or {})}
        return cls(
            name or module,
            [sys.executable, "-m", module],
            log_path,
            settings,
            int(settings["GRPC_PORT"]),
            clean=clean,
        )

    @classmethod
    def gateway(
        cls, log_path: Path | None, env: Mapping[str, str] | None = None, *, clean: bool = True
    ) -> ServiceProcess:
        """`python -m gateway` (the HTTP gateway) on a free port of 127.0.0.1; wait for it
        with `wait_ready(process.http_health)`."""
        port = free_port()
        settings = {"GATEWAY_HOST": HOST, "GATEWAY_PORT": str(port), **(env or {})}
        argv = [sys.executable, "-m", "gateway"]
        return cls("gateway", argv, log_path, settings, int(settings["GATEWAY_PORT"]), clean=clean)

    def http_health(self) -> str | None:
        """None when GET /healthz answers 200 (an HTTP server's readiness), else why not."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
        try:
            with opener.open(f"http://{self.address}/healthz", timeout=1.0) as response:
                status: int = response.status
        except urllib.error.HTTPError as error:
            return f"/healthz answered {error.code}"
        except (OSError, http.client.HTTPException) as error:
            # HTTPException: not an HTTP answer, e.g. the probe's own request read back when the
            # kernel connected it to itself (its source port drawn equal to the port that
            # nothing listens on yet: a TCP self-connect).
            return f"/healthz: {error!r}"
        return None if status == 200 else f"/healthz answered {status}"

    def __repr__(self) -> str:
        pid = self._process.pid if self._process else None
        return f"ServiceProcess({self.name!r}, address={self.address!r}, pid={pid})"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise ServiceError(f"{self.name} was not started")
        return self._process

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def started(self) -> bool:
        return self._process is not None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while it runs (or before it started)."""
        return None if self._process is None else self._process.poll()

    def start(self) -> Self:
        output: Any = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_path.open("wb")  # the child keeps its own descriptor
        try:
            self._process = subprocess.Popen(  # noqa: S603 - the harness's own command lines
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=self.new_session,
            )
        finally:
            if output is not None:
                output.close()
        return self

    def wait_ready(self, probe: Probe | None = None, timeout: float = 20.0) -> Self:
        """Until probe() (default: health SERVING) says ready; ServiceError (with the log)
        when the process exits first or is not ready within timeout seconds (it is killed)."""
        check = probe or self._health
        deadline = time.monotonic() + timeout
        problem: str | None = "not probed"
        while time.monotonic() < deadline:
            if self.returncode is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self.returncode} before it was ready"
                    f"{self._log_for_error()}"
                )
            problem = check()
            if problem is None:
                return self
            time.sleep(0.1)
        self.kill()
        raise ServiceError(
            f"{self.name} at {self.address} not ready after {timeout:.0f} s ({problem})"
            f"{self._log_for_error()}"
        )

    def _health(self) -> str | None:
        status = check_health(self.address, "", timeout=1.0)
        return None if status == "SERVING" else f"health: {status}"

    def send_signal(self, signum: int = signal.SIGTERM) -> None:
        if self._process is not None and self._process.poll() is None:
            self.signalled = True
            self.process.send_signal(signum)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """The exit code; after timeout seconds the process is killed and ServiceError raised."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServiceError(
                f"{self.name} did not exit within {timeout:.0f} s{self._log_for_error()}"
            ) from None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (unless one was sent), wait; SIGKILL after timeout. The exit code."""
        if self._process is None:
            return None
        if not self.signalled:
            self.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the process (and its group, when it leads one of its own)."""
        if self._process is None or self._process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.new_session:
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_TIMEOUT)

    def log_text(self) -> str:
        """Everything the process wrote so far ("" when its output is not in a file)."""
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log records written so far (other lines, e.g. grpc core's, skipped)."""
        records: list[dict[str, Any]] = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        records.append(record)
        return records

    def _log_for_error(self) -> str:
        text = self.log_text()
        return f"; log {self.log_path}:\n{text[-4000:]}" if text else ""
