"""Error translation: a ServiceError becomes its own status, anything else a generic INTERNAL
(logged with its traceback, never sent)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from acme_common._call.error_status import abort_with_status
from acme_common._errors import (
    FieldViolation,
    InvalidArgument,
    Unavailable,
)

METHOD = "/test.v1.Service/Method"


async def test_service_error_aborts_with_its_own_status(
    make_context: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    context = make_context()
    error = InvalidArgument(FieldViolation("name", "must not be empty"))
    with pytest.raises(grpc.aio.AbortError):
        await abort_with_status(error, context, METHOD)
    code, details, trailing = context.aborted
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "name: must not be empty")
    assert trailing == error.to_status().trailing_metadata  # the rich details travel
    assert caplog.records == []  # expected failures are not logged as errors


async def test_other_service_errors_keep_their_code(make_context: Callable[..., Any]) -> None:
    context = make_context()
    with pytest.raises(grpc.aio.AbortError):
        await abort_with_status(Unavailable("try later"), context, METHOD)
    assert context.aborted[:2] == (grpc.StatusCode.UNAVAILABLE, "try later")


async def test_unexpected_exception_is_logged_and_answered_internal(
    make_context: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    context = make_context()
    try:
        raise RuntimeError("secret internal detail")
    except RuntimeError as error:
        with pytest.raises(grpc.aio.AbortError):
            await abort_with_status(error, context, METHOD)
    assert context.aborted == (grpc.StatusCode.INTERNAL, "internal error", ())
    [record] = caplog.records
    assert (record.name, record.levelno) == ("acme.access", logging.ERROR)
    assert record.getMessage() == f"unhandled error in {METHOD}"
    assert record.method == METHOD  # type: ignore[attr-defined]
    assert "secret internal detail" in caplog.text  # the traceback, in the log only
