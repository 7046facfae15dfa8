"""Log lines are single JSON objects carrying the `extra` fields; log_fields' direct path
writes the line logging would; LineBatchingHandler batches lines on the event loop only."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import sys
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from acme_common._call.request_ids import current_request_id
from acme_common._logs import (
    JsonFormatter,
    LineBatchingHandler,
    TextFormatter,
    configure_logging,
    log_fields,
)


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("acme.test", logging.INFO, __file__, 1, message, None, None)
    entry.__dict__.update(extra)
    return entry


def test_values_orjson_refuses_still_make_one_json_line() -> None:
    """orjson writes the lines; what it refuses (ints beyond 64 bits, lone surrogates from
    undecodable bytes) goes through the standard library's encoder instead of failing."""
    fields = {"big": 2**70, "text": "caf\udce9", "when": datetime(2026, 1, 2, tzinfo=UTC)}
    line = JsonFormatter().format(record("odd", **fields))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["big"] == 2**70
    assert parsed["text"] == "caf\udce9"
    assert parsed["when"] == "2026-01-02 00:00:00+00:00"  # str(datetime), as before orjson


def test_json_line_has_message_level_and_extras() -> None:
    line = JsonFormatter().format(record("rpc", method="/x.Y/Z", code="OK", duration_ms=1.5))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "rpc"
    assert parsed["level"] == "INFO"
    assert parsed["logger"] == "acme.test"
    assert (parsed["method"], parsed["code"], parsed["duration_ms"]) == ("/x.Y/Z", "OK", 1.5)
    assert "args" not in parsed


def test_text_line_appends_extras() -> None:
    line = TextFormatter().format(record("serving", address="0.0.0.0:1"))
    assert line.endswith("acme.test: serving address=0.0.0.0:1")


def test_text_line_leaves_out_fields_without_a_value() -> None:
    line = TextFormatter().format(record("serving", address="0.0.0.0:1", admin_port=None, tls=0))
    assert line.endswith("acme.test: serving address=0.0.0.0:1 tls=0")


def test_timestamp_matches_datetime_isoformat() -> None:
    formatter = JsonFormatter()
    rng = random.Random(7)  # noqa: S311 - test data
    moments = [rng.uniform(0, 2e9) for _ in range(2000)]
    moments += [float(int(moment)) + 0.9999996 for moment in moments[:200]]  # rounds up
    for moment in moments:
        expected = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
        assert formatter.timestamp(moment) == expected


def test_log_fields_makes_the_same_record_as_extra() -> None:
    logger = logging.getLogger("acme.test.fields")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        log_fields(logger, logging.WARNING, "rpc", {"method": "/x.Y/Z", "code": "OK"})
    finally:
        logger.removeHandler(handler)
    [record] = records
    line = json.loads(JsonFormatter().format(record))
    assert (line["message"], line["level"], line["logger"]) == ("rpc", "WARNING", logger.name)
    assert (line["method"], line["code"]) == ("/x.Y/Z", "OK")


def test_log_fields_direct_path_writes_the_line_logging_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under configure_logging(fmt="json") log_fields skips the LogRecord; the line is the
    same, request id included; another handler on the way turns the direct path off."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    logger = logging.getLogger("acme.test.direct")
    fields = {"method": "/x.Y/Z", "code": "OK", "duration_ms": 1.5}
    make_record = logging.getLogRecordFactory()
    records: list[logging.LogRecord] = []

    def counting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        records.append(make_record(*args, **kwargs))
        return records[-1]

    token = current_request_id.set("req-1")
    logging.setLogRecordFactory(counting_factory)
    try:
        configure_logging("INFO", "json")
        log_fields(logger, logging.INFO, "rpc", fields)
        assert records == []  # direct: no LogRecord at all
        extra = logging.NullHandler()
        logger.addHandler(extra)
        log_fields(logger, logging.INFO, "rpc", fields)
        assert len(records) == 1  # through logging
        logger.removeHandler(extra)
        cast("LineBatchingHandler", root.handlers[0]).flush()
    finally:
        logging.setLogRecordFactory(make_record)
        current_request_id.reset(token)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    direct, through_logging = (json.loads(line) for line in stream.getvalue().splitlines())
    del direct["time"], through_logging["time"]
    assert direct == through_logging
    assert direct == {
        "level": "INFO",
        "logger": "acme.test.direct",
        "message": "rpc",
        **fields,
        "request_id": "req-1",
    }


def batching_logger(stream: io.StringIO) -> tuple[logging.Logger, LineBatchingHandler]:
    handler = LineBatchingHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("acme.test.batching")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler


def test_lines_logged_on_the_event_loop_are_written_together_soon() -> None:
    stream = io.StringIO()
    logger, handler = batching_logger(stream)

    async def main() -> list[str]:
        seen = []
        for index in range(3):
            logger.info("line %d", index)
            seen.append(stream.getvalue())
        await asyncio.sleep(handler.FLUSH_DELAY * 5)
        seen.append(stream.getvalue())
        return seen

    assert asyncio.run(main()) == ["", "", "", "line 0\nline 1\nline 2\n"]


def test_lines_off_the_loop_are_written_at_once_after_pending_ones() -> None:
    stream = io.StringIO()
    logger, handler = batching_logger(stream)

    async def on_loop() -> None:
        logger.info("first")

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(on_loop())
        assert stream.getvalue() == ""
        logger.info("second")  # no running loop: written now, after the pending line
        assert stream.getvalue() == "first\nsecond\n"
        logger.info("third")
        assert stream.getvalue() == "first\nsecond\nthird\n"
    finally:
        loop.close()
    handler.flush()


def test_flush_writes_pending_lines() -> None:
    stream = io.StringIO()
    logger, handler = batching_logger(stream)

    async def main() -> str:
        for index in range(handler.MAX_PENDING + 1):
            logger.info("%d", index)
        written = stream.getvalue()
        handler.flush()
        return written

    written = asyncio.run(main())
    assert written.count("\n") == handler.MAX_PENDING
    assert stream.getvalue().count("\n") == handler.MAX_PENDING + 1
