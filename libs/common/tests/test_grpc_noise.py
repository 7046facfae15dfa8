"""GrpcNoiseFilter: grpcio's client-caused ERROR records become one INFO line; others stay."""

from __future__ import annotations

import logging

import pytest

from acme_common._grpc_noise import GRPC_LOGGER, quiet_grpc_noise


def emit(caplog: pytest.LogCaptureFixture, message: str, *args: object) -> logging.LogRecord:
    quiet_grpc_noise()
    quiet_grpc_noise()  # idempotent
    logger = logging.getLogger(GRPC_LOGGER)
    with caplog.at_level(logging.DEBUG, logger=GRPC_LOGGER):
        try:
            raise RuntimeError("inside grpc")
        except RuntimeError:
            logger.exception(message, *args)
    [record] = [r for r in caplog.records if r.name == GRPC_LOGGER]
    return record


def test_a_reply_racing_a_cancellation_is_info(caplog: pytest.LogCaptureFixture) -> None:
    record = emit(
        caplog, "%s raised in core by servicer method [%s]", "ExecuteBatchError", "/a.B/C"
    )
    assert (record.levelname, record.exc_info) == ("INFO", None)
    assert record.getMessage().startswith("the reply was not sent")
    assert record.__dict__["method"] == "/a.B/C"


def test_a_non_utf8_value_is_info_without_its_bytes(caplog: pytest.LogCaptureFixture) -> None:
    record = emit(caplog, "Invalid encoding on %s", b"Bearer \xff\xfe")
    assert record.levelname == "INFO"
    assert "\\xff" not in record.getMessage()


def test_other_grpc_errors_stay_errors(caplog: pytest.LogCaptureFixture) -> None:
    record = emit(caplog, "Unexpected [%s] raised by servicer method [%s]", "KeyError", "/a.B/C")
    assert record.levelname == "ERROR"
    assert record.exc_info is not None
