"""The access log: one line per RPC (logger `acme.access`, message `rpc`) with its method,
status code, duration, peer, instance and request id (and trace id when tracing is on).
ACCESS_LOG chooses which calls get one: all, errors (status not OK) or off. Health checks and
reflection are logged at DEBUG, so probes do not drown traffic."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from acme_common.auth import is_open
from acme_common.logs import log_fields
from acme_common.request_ids import current_request_id
from acme_common.tracing import current_trace_id

log = logging.getLogger("acme.access")

_OK = grpc.StatusCode.OK


class AccessLog:
    """The access-log lines of one method of a server."""

    def __init__(self, method: str, *, instance: str, which: str, tracing: bool) -> None:
        """which: the ACCESS_LOG setting (all, errors or off)."""
        self.method = method
        self.instance = instance
        self.tracing = tracing
        self.level = logging.DEBUG if is_open(method) else logging.INFO
        self.log_ok = which == "all"  # a line for calls that end OK
        self.log_errors = which != "off"  # and for the others

    def record(
        self, code: grpc.StatusCode, elapsed: float, context: Any, error: BaseException | None
    ) -> None:
        """Log the line of a call that ended with code after elapsed seconds, if wanted."""
        if (self.log_ok if code is _OK else self.log_errors) and log.isEnabledFor(self.level):
            fields = {
                "method": self.method,
                "code": code.name,
                "duration_ms": round(elapsed * 1000, 3),
                # A generator closed after its RPC ended (GeneratorExit) has a freed call:
                # peer() on it segfaults grpcio.
                "peer": None if isinstance(error, GeneratorExit) else context.peer(),
                "instance": self.instance,
                "request_id": current_request_id.get(),
            }
            if self.tracing:
                fields["trace_id"] = current_trace_id()
            log_fields(log, self.level, "rpc", fields)
