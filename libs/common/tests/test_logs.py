"""Log lines are single JSON objects carrying the `extra` fields."""

from __future__ import annotations

import json
import logging

from acme_common.logs import JsonFormatter, TextFormatter


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("acme.test", logging.INFO, __file__, 1, message, None, None)
    entry.__dict__.update(extra)
    return entry


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
