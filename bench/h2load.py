"""h2load as a raw gRPC unary load generator.

A gRPC unary request is an HTTP/2 POST of one length-prefixed message (1 byte "compressed" =
0, 4 bytes big-endian length, the serialized request) with `content-type: application/grpc`
and `te: trailers`. h2load checks HTTP statuses only, never the `grpc-status` trailer, so the
exact same bytes and headers are first sent once through grpc (`sanity_call`) and must come
back OK; rows whose server exports metrics are also cross-checked by grpc_code afterwards.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bench import procs
from bench.load_client import percentile

KILL_MARGIN = 20.0  # seconds h2load may outlast warm-up + duration before it is killed


def grpc_frame(message: bytes) -> bytes:
    """The gRPC length-prefixed message: flag 0 (uncompressed) + uint32 BE length + bytes."""
    return b"\0" + struct.pack(">I", len(message)) + message


def grpc_headers(token: str | None) -> list[str]:
    headers = ["content-type: application/grpc", "te: trailers"]
    if token:
        headers.append(f"authorization: Bearer {token}")
    return headers


def sanity_call(address: str, method: str, message: bytes, token: str | None) -> bytes:
    """Send message (serialized, unframed) to method the way h2load will; the reply bytes.
    Raises grpc.RpcError unless the status is OK."""
    metadata: tuple[tuple[str, str | bytes], ...] = ()
    if token:
        metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel:
        call = channel.unary_unary(method, None, None)  # no (de)serializers: raw bytes
        reply: bytes = call(message, metadata=metadata, timeout=5.0)
    return reply


@dataclass(frozen=True)
class H2loadResult:
    rps: float
    requests: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    non_2xx: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_s: float
    server_cpu_by_pid: dict[int, float]
    output: str

    @property
    def errors(self) -> int:
        """Requests of the window that did not succeed (h2load's `failed` already includes
        its `errored` and `timeout`; non-2xx statuses are failures too)."""
        return max(self.requests - self.succeeded, self.failed, self.non_2xx)

    def as_dict(self) -> dict[str, Any]:
        return {
            "generator": "h2load",
            "rps": self.rps,
            "requests": self.requests,
            "errors": self.errors,
            "h2load_failed": self.failed,
            "h2load_errored": self.errored,
            "h2load_timeout": self.timeout,
            "non_2xx": self.non_2xx,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "server_cpu_s": self.server_cpu_s,
            "server_cpu_by_pid": self.server_cpu_by_pid,
        }


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"h2load output lacks /{pattern}/:\n{text}")
    return float(found.group(1))


def run(
    executable: str,
    url: str,
    body: Path,
    headers: Sequence[str],
    *,
    clients: int,
    streams: int,
    warmup: float,
    duration: float,
    log_file: Path,
    cpu_pids: Sequence[int],
) -> H2loadResult:
    """One timing-based h2load run: warm-up, then `duration` seconds measured. The server
    trees' CPU is read when the warm-up ends and when h2load exits."""
    command = [
        executable,
        f"--clients={clients}",
        f"--max-concurrent-streams={streams}",
        "--threads=1",
        f"--warm-up-time={warmup:g}",
        f"--duration={duration:g}",
        f"--data={body}",
        f"--log-file={log_file}",
        *(f"--header={header}" for header in headers),
        url,
    ]
    with subprocess.Popen(  # noqa: S603 - fixed h2load command line, loopback URL
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        time.sleep(warmup)
        before = procs.cpu_snapshot(cpu_pids)
        try:
            output, _ = process.communicate(timeout=duration + KILL_MARGIN)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise RuntimeError(
                f"h2load did not finish within {warmup + duration + KILL_MARGIN:.0f} s"
            ) from None
        after = procs.cpu_snapshot(cpu_pids)
    if process.returncode != 0:
        raise RuntimeError(f"h2load exited {process.returncode}:\n{output}")
    latencies: list[float] = []
    if log_file.exists():
        for line in log_file.read_text().splitlines():
            columns = line.split("\t")
            if len(columns) == 3 and columns[1].startswith("2"):
                latencies.append(int(columns[2]) / 1000)
        log_file.unlink()
    latencies.sort()
    status_line = next((x for x in output.splitlines() if x.startswith("status codes:")), "")
    non_2xx = sum(int(count) for count in re.findall(r"(\d+) [345]xx", status_line))
    return H2loadResult(
        rps=_number(r"finished in [\d.]+\w*, ([\d.]+) req/s", output),
        requests=int(_number(r"requests: (\d+) total", output)),
        succeeded=int(_number(r"(\d+) succeeded", output)),
        failed=int(_number(r"(\d+) failed", output)),
        errored=int(_number(r"(\d+) errored", output)),
        timeout=int(_number(r"(\d+) timeout", output)),
        non_2xx=non_2xx,
        p50_ms=percentile(latencies, 0.50),
        p90_ms=percentile(latencies, 0.90),
        p99_ms=percentile(latencies, 0.99),
        max_ms=latencies[-1] if latencies else 0.0,
        server_cpu_s=procs.cpu_delta(before, after),
        server_cpu_by_pid=procs.cpu_by_process(before, after),
        output=output,
    )


def find() -> str | None:
    return shutil.which("h2load")
