"""Request ids: taken from a sane `x-request-id`, else generated; attached to log records."""

from __future__ import annotations

import logging

from acme_common._call.request_ids import (
    MAX_REQUEST_ID_LENGTH,
    RequestIdFilter,
    current_request_id,
    new_request_id,
    request_id_from,
    sane_request_id,
)


def test_request_ids() -> None:
    generated = {new_request_id() for _ in range(1000)}
    assert len(generated) == 1000
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in generated)
    assert request_id_from([("user-agent", "x"), ("x-request-id", "req-1")]) == "req-1"
    assert len(request_id_from([("x-request-id", "x" * (MAX_REQUEST_ID_LENGTH + 1))])) == 32
    assert len(request_id_from([("x-request-id", "bad\nid")])) == 32
    assert len(request_id_from(None)) == 32


def test_sane_request_ids_are_visible_ascii_of_bounded_length() -> None:
    assert sane_request_id("abc-123_XYZ.~") == "abc-123_XYZ.~"
    assert sane_request_id("x" * MAX_REQUEST_ID_LENGTH) == "x" * MAX_REQUEST_ID_LENGTH
    for bad in ("", " lead", "trail ", "caf\u00e9", "x" * (MAX_REQUEST_ID_LENGTH + 1), b"id", None):
        assert sane_request_id(bad) is None, bad


def test_first_request_id_header_wins_even_when_it_is_replaced() -> None:
    metadata = [("x-request-id", "bad id"), ("x-request-id", "good")]
    replaced = request_id_from(metadata)
    assert replaced != "good"
    assert len(replaced) == 32


def test_filter_adds_the_current_request_id_without_overriding_one() -> None:
    def record(**extra: object) -> logging.LogRecord:
        entry = logging.LogRecord("acme.test", logging.INFO, __file__, 1, "m", None, None)
        entry.__dict__.update(extra)
        return entry

    id_filter = RequestIdFilter()
    token = current_request_id.set(None)  # outside an RPC
    try:
        outside = record()
        assert id_filter.filter(outside)
        current_request_id.set("req-7")
        inside, explicit = record(), record(request_id="mine")
        assert id_filter.filter(inside)
        assert id_filter.filter(explicit)
    finally:
        current_request_id.reset(token)
    assert not hasattr(outside, "request_id")
    assert getattr(inside, "request_id", None) == "req-7"
    assert getattr(explicit, "request_id", None) == "mine"
