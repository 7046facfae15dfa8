"""The request id of the RPC being served: taken from `x-request-id` metadata or generated,
attached to its log lines and passed on to the services it calls."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def request_id_from(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The caller's request id when it sent a sane one, else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str):
            if 0 < len(value) <= MAX_REQUEST_ID_LENGTH and value.isprintable():
                return value
            break
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record logged while an RPC is being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True
