"""What a bench session works with: its Config (the command line) and the table's Rows.
bench/run.py fills them in; bench/report.py reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.procs import ServerProcess


@dataclass
class Config:
    runs: int
    warmup: float
    duration: float
    h2_clients: int
    h2_streams: int
    py_concurrency: int
    stream_concurrency: int
    stream_messages: int
    soak_seconds: float
    soak_warmup: float
    soak_rate: float
    allow_apt: bool
    rows: set[str]
    python_client: bool = False  # every row on the Python client, h2load or not
    compression: bool = False  # run only bench/compression.py


@dataclass
class Row:
    """One line of the table: what is measured, on which servers, and its runs."""

    key: str
    title: str
    generator: str  # "h2load" or "python"
    servers: list[ServerProcess]  # whose CPU and memory are counted
    target: ServerProcess | None
    token: str | None = None
    mode: str = "unary"  # load_client --mode
    unit: str = "req/s"
    baseline: str = "1"  # the row "vs row 1" divides by (same load generator)
    skipped: str | None = None
    failures: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_kib: int = 0
    concurrency: str = ""
    callers: int | None = None  # Python-client callers, when not --concurrency
    request: str = "grpc"  # what h2load sends: a key of H2LOAD_REQUESTS

    @property
    def measurable(self) -> bool:
        return self.skipped is None and not self.failures and self.target is not None
