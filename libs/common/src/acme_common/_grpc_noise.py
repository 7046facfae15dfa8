"""grpcio's own log records that report what any client can cause as ERRORs with tracebacks.
Each is rewritten into a one-line INFO record that says what happened, without the client's
bytes, so that an ERROR line in a service's log always means something is wrong with it."""

from __future__ import annotations

import logging

GRPC_LOGGER = "grpc._cython.cygrpc"

# (start of grpcio's message, what it means) for records that any client can trigger.
_BENIGN = (
    (
        # _decode in grpc_string.pyx.pxi: a metadata value that is not UTF-8 (grpc passes it
        # on as bytes, which the interceptor rejects: e.g. UNAUTHENTICATED for a token).
        "Invalid encoding on ",
        "a client sent a metadata value that is not UTF-8",
    ),
    (
        # server.pyx.pxi: grpc core refused to send the reply. Almost always because the
        # call had ended meanwhile (the client cancelled, the deadline passed) before grpc
        # noticed; also when a reply exceeds GRPC_MAX_MESSAGE_BYTES (then the client gets
        # RESOURCE_EXHAUSTED, and the access log, written before, says OK: see README).
        "ExecuteBatchError raised in core by servicer method",
        "the reply was not sent: grpc refused it (the call had ended, cancelled by its client "
        "or past its deadline; or the reply exceeded GRPC_MAX_MESSAGE_BYTES)",
    ),
)


class GrpcNoiseFilter(logging.Filter):
    """Rewrites grpcio's ERROR records of client-caused events (_BENIGN) into INFO lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it be
            return True
        for start, meaning in _BENIGN:
            if message.startswith(start):
                record.levelno, record.levelname = logging.INFO, "INFO"
                record.msg, record.args = meaning, None
                record.exc_info = record.exc_text = None
                record.stack_info = None
                if "servicer method [" in message:
                    record.method = message.rsplit("[", 1)[-1].rstrip("]")
                break
        return True


def quiet_grpc_noise() -> None:
    """Install GrpcNoiseFilter on grpcio's logger (idempotent)."""
    logger = logging.getLogger(GRPC_LOGGER)
    if not any(isinstance(f, GrpcNoiseFilter) for f in logger.filters):
        logger.addFilter(GrpcNoiseFilter())
