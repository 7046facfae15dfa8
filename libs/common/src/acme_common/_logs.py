"""Structured logging: one JSON object per line (or plain text for humans), on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import IO, Any, cast

import orjson

from acme_common._call.request_ids import RequestIdFilter, current_request_id
from acme_common._grpc_noise import quiet_grpc_noise

# Attributes of every LogRecord; any other attribute came from `extra=` and is logged as a field.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


# orjson writes the line: a tenth of the standard library encoder's cost per access line
# (bench/README.md, "Instructions per call, before and after"). datetimes and dataclasses pass
# through to default=str as with json; what orjson refuses (lone surrogates, ints beyond 64 bits,
# non-string keys) goes to the standard library's encoder, with the same compact separators.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_fallback_encode = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":")).encode


def _encode(fields: Mapping[str, Any]) -> str:
    """One JSON object on one line (UTF-8 as is, no spaces between items)."""
    try:
        return orjson.dumps(fields, default=str, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _fallback_encode(fields)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and the `extra` fields."""

    _second = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            key: value for key, value in record.__dict__.items() if key not in _STANDARD_ATTRIBUTES
        }
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return self.line(record.created, record.levelname, record.name, record.getMessage(), fields)

    def line(
        self, created: float, level: str, logger: str, message: str, fields: Mapping[str, Any]
    ) -> str:
        """The JSON line of a record with these parts (what format() writes)."""
        return _encode(
            {
                "time": self.timestamp(created),
                "level": level,
                "logger": logger,
                "message": message,
                **fields,
            }
        )

    def timestamp(self, created: float) -> str:
        """`2024-05-01T12:00:00.123+00:00` (UTC, milliseconds); the seconds part is cached."""
        second = int(created)
        micros = round((created - second) * 1e6)  # rounded as datetime.fromtimestamp does
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{micros // 1000:03d}+00:00"


class TextFormatter(logging.Formatter):
    """Human-readable lines with the `extra` fields appended as key=value; a field whose value
    is None is left out (`peer=None` would read as a peer named None; JSON says null)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRIBUTES and value is not None
        )
        return f"{line} {fields}" if fields else line


class LineBatchingHandler(logging.StreamHandler[IO[str]]):
    """A StreamHandler that, on a thread running an asyncio event loop, collects lines for up
    to FLUSH_DELAY seconds (or MAX_PENDING lines) and writes them with one write() + flush(),
    instead of a system call per line: with one access-log line per RPC, that call was the
    largest single cost of the log. (grpc.aio completes about one RPC per loop turn, so
    batching per turn would not help.) Elsewhere (other threads, no loop) each line is written
    at once, after any pending ones, so lines keep their order. flush(), which
    logging.shutdown() calls at exit, writes whatever is pending; a SIGKILL can lose at most
    the last FLUSH_DELAY seconds of lines."""

    FLUSH_DELAY = 0.01  # seconds
    MAX_PENDING = 256  # lines

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._flush_loop: Any = None  # the loop a flush is scheduled on

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._add(line)

    def write_line(self, line: str) -> None:
        """Write a line formatted elsewhere (log_fields' direct path), batched as emit's."""
        with self.lock:  # type: ignore[union-attr]
            self._add(line)

    def _add(self, line: str) -> None:
        loop = _running_loop()
        self._pending.append(line)
        if loop is None:
            self._write_pending()
            return
        if len(self._pending) >= self.MAX_PENDING:
            self._write_pending()
        elif self._flush_loop is not loop:  # (a loop closed before its flush: schedule anew)
            self._flush_loop = loop
            loop.call_later(self.FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_loop = None
            self._write_pending()

    def _write_pending(self) -> None:
        if self._pending:
            text = "\n".join(self._pending) + "\n"
            self._pending.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except Exception:  # as StreamHandler: report on stderr, never raise into the app
                self.handleError(logging.makeLogRecord({"msg": "log write failed"}))


def _running_loop() -> Any:
    """This thread's running asyncio loop, or None; asyncio itself is not imported for this
    (a process that never imported it, such as the workers' supervisor, has no loop)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# The handler configure_logging(fmt="json") installed, while it is the only one.
_json_handler: LineBatchingHandler | None = None


def _direct_route(logger: logging.Logger) -> LineBatchingHandler | None:
    """_json_handler when it is the only place a record of logger can go (no other handler or
    filter on the way, as configure_logging left it), else None."""
    handler = _json_handler
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        if current.handlers:
            single = len(current.handlers) == 1 and current.handlers[0] is handler
            return handler if single and current.parent is None else None
        current = current.parent if current.propagate else None
    return None


def log_fields(logger: logging.Logger, level: int, message: str, fields: Mapping[str, Any]) -> None:
    """logger.log(level, message, extra=fields) for a hot path. Check logger.isEnabledFor(level)
    first. With logging as configure_logging(fmt="json") set it up, the JSON line is built and
    queued directly (the same line the handler would write, without a LogRecord, filters and
    handler calls: most of the access log's cost per RPC); otherwise the same record goes
    through logging (fields as attributes, so formatters, filters and caplog see them), minus
    the lookup of the caller's file and line, which nobody logs."""
    handler = _direct_route(logger)
    if handler is not None:
        formatter = cast("JsonFormatter", handler.formatter)
        if "request_id" not in fields and (request_id := current_request_id.get()) is not None:
            fields = {**fields, "request_id": request_id}  # as RequestIdFilter adds it
        line = formatter.line(
            time.time(), logging.getLevelName(level), logger.name, message, fields
        )
        handler.write_line(line)
        return
    record = logging.getLogRecordFactory()(
        logger.name, level, __file__, 0, message, None, None, None, None
    )
    record.__dict__.update(fields)
    logger.handle(record)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route every logger to stderr in the chosen format; call once at process start."""
    # Thread, process and multiprocessing names are looked up for every record and logged by
    # no formatter here: skip them (a few µs per access-log line).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    global _json_handler
    handler = LineBatchingHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _json_handler = handler if fmt == "json" else None
    quiet_grpc_noise()
