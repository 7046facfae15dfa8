"""The request id of the RPC being served: taken from `x-request-id` metadata or generated,
attached to its log lines and passed on to the services it calls."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def new_request_id() -> str:
    """32 random hex digits (the shape of uuid4().hex, a third of its cost). Request ids
    correlate log lines; they are not secrets, so the Mersenne Twister is good enough."""
    return f"{random.getrandbits(128):032x}"


# Visible ASCII only: what gRPC allows in a metadata value (0x20-0x7E, PROTOCOL-HTTP2.md),
# minus the spaces HTTP/2 forbids at either end (RFC 9113 8.2.1). Anything else can arrive
# (servers accept any bytes) but could not be passed on: grpc refuses to send it.
_SENDABLE_REQUEST_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID_LENGTH}}}")


def sane_request_id(value: object) -> str | None:
    """value when it is usable, and legal to pass on, as a request id: 1-128 visible ASCII
    characters; else None."""
    if isinstance(value, str) and _SENDABLE_REQUEST_ID.fullmatch(value):
        return value
    return None


def request_id_from(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The caller's request id when it sent a sane one, else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER:
            return sane_request_id(value) or new_request_id()
    return new_request_id()


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record logged while an RPC is being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True
