"""Client channels to other services: one long-lived grpc.aio channel per target, with a
service config (round_robin, retries of UNAVAILABLE, message limits), keepalive, TLS, a
bearer token, request-id propagation and client metrics."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import grpc
from grpc.aio import ClientCallDetails, Metadata

from acme_common import metrics
from acme_common.auth import AUTHORIZATION, BEARER
from acme_common.request_ids import REQUEST_ID_HEADER, current_request_id
from acme_common.security import channel_credentials
from acme_common.settings import COMPRESSION_ALGORITHMS, ClientSettings

MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def service_config(retry_services: Sequence[str]) -> str:
    """round_robin over every resolved address that is up and whose grpc.health.v1 says
    SERVING (a draining server leaves the rotation before it refuses calls); calls to
    retry_services (idempotent ones) retried on UNAVAILABLE with exponential backoff.
    Not wait_for_ready: with every replica down, a call should fail fast with UNAVAILABLE
    rather than sit out its whole deadline."""
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": ""},
        "methodConfig": [
            {
                "name": [{"service": name} for name in retry_services],
                "maxRequestMessageBytes": MAX_MESSAGE_BYTES,
                "maxResponseMessageBytes": MAX_MESSAGE_BYTES,
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
    return json.dumps(config)


if TYPE_CHECKING:  # grpc-stubs makes the interceptor generic; grpcio's class is not
    _UnaryInterceptorBase = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
else:
    _UnaryInterceptorBase = grpc.aio.UnaryUnaryClientInterceptor


class _OutgoingInterceptor(_UnaryInterceptorBase):
    """Adds the bearer token and the current request id to every unary call and records
    grpc_client_* metrics for it. Must be the last interceptor of the chain (create_channel
    puts it there): it hands grpc's call a plain tuple of metadata pairs, which is all that
    call reads (`tuple(metadata)`), instead of building a new Metadata object per call."""

    def __init__(self, token: str | None) -> None:
        self.authorization: tuple[tuple[str, str], ...] = (
            () if token is None else ((AUTHORIZATION, f"{BEARER}{token}"),)
        )
        self._metrics: dict[object, metrics.ClientMethodMetrics] = {}

    def pairs(self, details: ClientCallDetails) -> tuple[tuple[str, str | bytes], ...]:
        """The call's metadata plus the token and the request id being served, if any."""
        pairs: tuple[tuple[str, str | bytes], ...] = (
            *(details.metadata or ()),
            *self.authorization,
        )
        request_id = current_request_id.get()
        if request_id is not None:
            pairs = (*pairs, (REQUEST_ID_HEADER, request_id))
        return pairs

    def _bound(self, method: object) -> metrics.ClientMethodMetrics:
        bound = self._metrics.get(method)
        if bound is None:
            bound = self._metrics[method] = metrics.ClientMethodMetrics(_method_name(method))
        return bound

    async def intercept_unary_unary(
        self,
        continuation: Callable[[ClientCallDetails, Any], Any],
        client_call_details: ClientCallDetails,
        request: Any,
    ) -> Any:
        pairs = self.pairs(client_call_details)
        details = ClientCallDetails(
            client_call_details.method,
            client_call_details.timeout,
            cast("Metadata", pairs),
            client_call_details.credentials,
            client_call_details.wait_for_ready,
        )
        bound = self._bound(client_call_details.method)
        bound.started.inc()
        started = time.perf_counter()
        problem = _illegal_metadata(pairs)
        if problem is not None:
            # grpc would refuse to start the call, and such a call never gets a status: its
            # deadline never runs and `call.code()` waits forever.
            bound.handled(grpc.StatusCode.INTERNAL).inc()
            raise _not_started(problem)
        call = await continuation(details, request)
        try:
            code = await call.code()
        except asyncio.CancelledError:
            # The calling task was cancelled (its own client cancelled): cancel the outgoing
            # call too, instead of leaving it running downstream. In grpc core only:
            # call.cancel() also cancels the task awaiting the call's batch, whose memory
            # grpcio then never frees (~1 KiB per call, grpc/grpc#43360; 15 B per call this
            # way, measured with 4 x 1,000 calls).
            _cancel_in_core(call)
            bound.latency.observe(time.perf_counter() - started)
            bound.handled(grpc.StatusCode.CANCELLED).inc()
            raise
        bound.latency.observe(time.perf_counter() - started)
        bound.handled(code).inc()
        return call


if TYPE_CHECKING:
    _UnaryStreamBase = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
    _StreamUnaryBase = grpc.aio.StreamUnaryClientInterceptor[Any, Any]
    _StreamStreamBase = grpc.aio.StreamStreamClientInterceptor[Any, Any]
else:
    _UnaryStreamBase = grpc.aio.UnaryStreamClientInterceptor
    _StreamUnaryBase = grpc.aio.StreamUnaryClientInterceptor
    _StreamStreamBase = grpc.aio.StreamStreamClientInterceptor


class _StreamMetadata:
    """Adds the bearer token and the current request id to streaming calls, as
    _OutgoingInterceptor does to unary ones (no grpc_client_* metrics: a stream's status
    comes at its end, which this interceptor does not wait for). One subclass per kind of
    call: grpc.aio files each interceptor under the first kind it is an instance of only
    (aio/_channel.py, an if/elif chain), so one class for all three kinds served only
    unary-stream calls."""

    def __init__(self, outgoing: _OutgoingInterceptor) -> None:
        self._outgoing = outgoing

    def _details(self, details: ClientCallDetails) -> ClientCallDetails:
        pairs = self._outgoing.pairs(details)
        problem = _illegal_metadata(pairs)
        if problem is not None:
            raise _not_started(problem)
        return ClientCallDetails(
            details.method,
            details.timeout,
            cast("Metadata", pairs),
            details.credentials,
            details.wait_for_ready,
        )


class _UnaryStreamMetadata(_StreamMetadata, _UnaryStreamBase):
    async def intercept_unary_stream(
        self,
        continuation: Callable[[ClientCallDetails, Any], Any],
        client_call_details: ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


# The other kinds differ only in their request (an iterator of messages) and its name.
class _StreamUnaryMetadata(_StreamMetadata, _StreamUnaryBase):
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: ClientCallDetails, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


class _StreamStreamMetadata(_StreamMetadata, _StreamStreamBase):
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: ClientCallDetails, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


def _not_started(problem: str) -> grpc.aio.AioRpcError:
    empty = grpc.aio.Metadata()
    return grpc.aio.AioRpcError(
        grpc.StatusCode.INTERNAL, empty, empty, f"the call could not be started: {problem}", None
    )


# What gRPC accepts in metadata (PROTOCOL-HTTP2.md; grpc core's validate_metadata.cc): keys of
# lowercase letters, digits, `-`, `_` and `.`; values of printable ASCII unless the key ends
# in -bin (then any bytes).
_LEGAL_KEY = re.compile(r"[0-9a-z_.\-]+")
_LEGAL_VALUE = re.compile(r"[\x20-\x7e]*")


def _illegal_metadata(pairs: Sequence[tuple[str, str | bytes]]) -> str | None:
    """Why grpc would refuse to send these metadata pairs, or None."""
    for key, value in pairs:
        if not _LEGAL_KEY.fullmatch(key):
            return f"illegal metadata key {key[:40]!r}"
        if key.endswith("-bin"):
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if not _LEGAL_VALUE.fullmatch(text):
            return f"illegal value of metadata {key!r} (not printable ASCII)"
    return None


def _cancel_in_core(call: Any) -> None:
    """Cancel the RPC in grpc core only (grpc.aio's Call._cancel, what call.cancel() does
    before it also cancels the awaiting task); call.cancel() where grpcio lacks it."""
    cancel_rpc = getattr(call, "_cancel", None)
    if cancel_rpc is None:
        call.cancel()
    else:
        cancel_rpc("Locally cancelled by application!")


def _method_name(method: object) -> str:
    """grpc hands the method to client interceptors as bytes; grpc-stubs says str."""
    return method.decode() if isinstance(method, bytes) else str(method)


def create_channel(
    settings: ClientSettings,
    *,
    retry_services: Sequence[str],
    interceptors: Sequence[Any] = (),
) -> grpc.aio.Channel:
    """A grpc.aio channel to settings.target (e.g. `dns:///greeter:50051`); keep one per
    process and close it on shutdown. `interceptors` come first (e.g. tracing)."""
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", service_config(retry_services)),
        ("grpc.enable_retries", 1),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        # Ping idle connections so proxies and NATs do not silently drop them, and find dead
        # ones; servers (server.py) accept pings down to GRPC_KEEPALIVE_MIN_PING_INTERVAL.
        ("grpc.keepalive_time_ms", round(settings.keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", round(settings.keepalive_timeout * 1000)),
        # grpc 1.85 waits for a ping's ACK this long, not keepalive_timeout_ms (default 60 s):
        # without it a peer that stops answering keeps the connection for a minute.
        ("grpc.http2.ping_timeout_ms", round(settings.keepalive_timeout * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),  # 0: keep pinging however long it is idle
    ]
    if settings.tls_server_name:
        options.append(("grpc.ssl_target_name_override", settings.tls_server_name))
    token = None if settings.auth_token is None else settings.auth_token.get_secret_value()
    outgoing = _OutgoingInterceptor(token)
    kinds = (_UnaryStreamMetadata, _StreamUnaryMetadata, _StreamStreamMetadata)
    chain = [*interceptors, *(kind(outgoing) for kind in kinds), outgoing]
    credentials = channel_credentials(settings)
    compression = COMPRESSION_ALGORITHMS[settings.compression]
    if credentials is None:
        return grpc.aio.insecure_channel(
            settings.target, options=options, interceptors=chain, compression=compression
        )
    return grpc.aio.secure_channel(
        settings.target, credentials, options=options, interceptors=chain, compression=compression
    )


# A downstream call's deadline runs out this long before the incoming one, so that it ends
# with its own DEADLINE_EXCEEDED (answered to our client in time) instead of grpc cancelling
# our handler while the call is in flight: grpcio leaks ~1 KiB of native memory per call
# cancelled that way (grpc/grpc#43360), and aborting after our own deadline fails.
DEADLINE_MARGIN = 0.02  # seconds


def outgoing_timeout(context: grpc.aio.ServicerContext[Any, Any], default: float) -> float:
    """Timeout (s) for a downstream call: what is left of the incoming deadline less
    DEADLINE_MARGIN (never below 0), else default."""
    remaining = context.time_remaining()
    return default if remaining is None else max(remaining - DEADLINE_MARGIN, 0.0)
