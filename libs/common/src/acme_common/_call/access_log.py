"""The access log: one line per RPC (logger `acme.access`, message `rpc`) with its method,
status code, duration, peer, instance and request id (and trace id when tracing is on and a
span is active); a field with no value (no peer known, no span) is left out, in JSON as in
text. ACCESS_LOG chooses which calls get one: all, errors (status not OK) or off. Health
checks and reflection are logged at DEBUG, so probes do not drown traffic."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from acme_common._call.auth import is_open
from acme_common._call.request_ids import current_request_id
from acme_common._logs import log_fields
from acme_common._tracing import current_trace_id

log = logging.getLogger("acme.access")

_OK = grpc.StatusCode.OK


class AccessLog:
    """The access-log lines of one method of a server (the gRPC servers' and the HTTP edge's:
    one shape for both)."""

    def __init__(self, method: str, *, instance: str, which: str, tracing: bool) -> None:
        """method: `/package.Service/Method`; which: the ACCESS_LOG setting (all, errors or
        off); tracing: whether lines carry the current trace id."""
        self.method = method
        self.instance = instance
        self.tracing = tracing
        self.level = logging.DEBUG if is_open(method) else logging.INFO
        self.log_ok = which == "all"  # a line for calls that end OK
        self.log_errors = which != "off"  # and for the others

    def wanted(self, ok: bool) -> bool:
        """Whether a call that ended OK (or not) gets a line."""
        return (self.log_ok if ok else self.log_errors) and log.isEnabledFor(self.level)

    def write(self, code: str, elapsed: float, peer: str | None, **extra: str | None) -> None:
        """Write the line of a call that ended with the status named code after elapsed
        seconds; extra: fields of the caller's own (the edge's protocol, HTTP method). Fields
        whose value is None are left out."""
        # Built in place, not filtered afterwards: this runs once per RPC.
        fields: dict[str, object] = {
            "method": self.method,
            "code": code,
            "duration_ms": round(elapsed * 1000, 3),
        }
        if peer is not None:
            fields["peer"] = peer
        fields["instance"] = self.instance
        if (request_id := current_request_id.get()) is not None:
            fields["request_id"] = request_id
        for key, value in extra.items():
            if value is not None:
                fields[key] = value
        if self.tracing and (trace_id := current_trace_id()) is not None:
            fields["trace_id"] = trace_id
        log_fields(log, self.level, "rpc", fields)

    def record(
        self, code: grpc.StatusCode, elapsed: float, context: Any, error: BaseException | None
    ) -> None:
        """Log the line of a gRPC call that ended with code after elapsed seconds, if wanted."""
        if self.wanted(code is _OK):
            # A generator closed after its RPC ended (GeneratorExit) has a freed call:
            # peer() on it segfaults grpcio.
            peer = None if isinstance(error, GeneratorExit) else context.peer()
            self.write(code.name, elapsed, peer)
