"""Client channels to other services: one long-lived grpc.aio channel per target, with a
service config (round_robin, retries of UNAVAILABLE, message limits), keepalive, TLS, a
bearer token, request-id propagation and client metrics."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import grpc
from grpc.aio import Metadata

from acme_common import _metrics as metrics
from acme_common._call.auth import AUTHORIZATION, BEARER
from acme_common._call.request_ids import REQUEST_ID_HEADER, current_request_id
from acme_common._settings import COMPRESSION_ALGORITHMS, ClientSettings
from acme_common._tls.credentials import channel_credentials

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


class _Outgoing:
    """What every unary call on a channel of create_channel gets: the bearer token, the
    current request id, grpc_client_* metrics, and a status even when grpc cannot start it."""

    def __init__(self, token: str | None) -> None:
        self._authorization: tuple[tuple[str, str], ...] = (
            () if token is None else ((AUTHORIZATION, f"{BEARER}{token}"),)
        )
        self._metrics: dict[str, metrics.ClientMethodMetrics] = {}

    def bound(self, method: str) -> metrics.ClientMethodMetrics:
        bound = self._metrics.get(method)
        if bound is None:
            bound = self._metrics[method] = metrics.ClientMethodMetrics(method)
        return bound

    def metadata(
        self, metadata: Sequence[tuple[str, str | bytes]] | None
    ) -> tuple[tuple[str, str | bytes], ...]:
        """The caller's metadata plus the token and the request id, as the plain tuple of
        pairs that grpc's call reads (`tuple(metadata)`): no Metadata object per call."""
        pairs: tuple[tuple[str, str | bytes], ...] = (*(metadata or ()), *self._authorization)
        request_id = current_request_id.get()
        if request_id is not None:
            pairs = (*pairs, (REQUEST_ID_HEADER, request_id))
        return pairs

    async def call(
        self,
        bound: metrics.ClientMethodMetrics,
        pairs: tuple[tuple[str, str | bytes], ...],
        start: Callable[[], Any],
    ) -> Any:
        """The grpc.aio call start() makes, counted, once it has its status."""
        bound.started.inc()
        started = time.perf_counter()
        problem = _illegal_metadata(pairs)
        if problem is not None:
            # grpc would refuse to start the call, and such a call never gets a status: its
            # deadline never runs and `call.code()` waits forever.
            bound.handled(grpc.StatusCode.INTERNAL).inc()
            raise _not_started(problem)
        call = start()
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


class _OutgoingUnaryUnary:
    """A unary method of a channel of create_channel: `await method(request, timeout=...)`
    returns the response or raises grpc.aio.AioRpcError, as grpc's own; `await
    method.with_call(request, ...)` returns the response and the ended call (its initial and
    trailing metadata), as grpc's synchronous with_call."""

    def __init__(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Any, Any],
        bound: metrics.ClientMethodMetrics,
        outgoing: _Outgoing,
    ) -> None:
        self._method = method
        self._bound = bound
        self._outgoing = outgoing

    async def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - grpc's call signature
        metadata: Sequence[tuple[str, str | bytes]] | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        response, _call = await self.with_call(
            request,
            timeout=timeout,
            metadata=metadata,
            credentials=credentials,
            wait_for_ready=wait_for_ready,
            compression=compression,
        )
        return response

    async def with_call(
        self,
        request: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - grpc's call signature
        metadata: Sequence[tuple[str, str | bytes]] | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> tuple[Any, grpc.aio.UnaryUnaryCall[Any, Any]]:
        """The response and the call, once it has ended; AioRpcError as __call__."""
        pairs = self._outgoing.metadata(metadata)
        start = self._starter(request, pairs, timeout, credentials, wait_for_ready, compression)
        call = await self._outgoing.call(self._bound, pairs, start)
        return await call, call  # the status is in: the response, or the call's AioRpcError

    def _starter(
        self,
        request: Any,
        pairs: tuple[tuple[str, str | bytes], ...],
        timeout: float | None,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
        compression: grpc.Compression | None,
    ) -> Callable[[], Any]:
        def start() -> Any:
            return self._method(
                request,
                timeout=timeout,
                metadata=cast("Metadata", pairs),
                credentials=credentials,
                wait_for_ready=wait_for_ready,
                compression=compression,
            )

        return start


class _OutgoingStreaming:
    """A streaming method of a channel of create_channel: the call as grpc's own, with the
    token and the request id added (no grpc_client_* metrics: a stream's status comes at its
    end, which nothing here waits for)."""

    def __init__(self, method: Callable[..., Any], outgoing: _Outgoing) -> None:
        self._method = method
        self._outgoing = outgoing

    def __call__(
        self,
        request: Any = None,
        *,
        metadata: Sequence[tuple[str, str | bytes]] | None = None,
        **kwargs: Any,
    ) -> Any:
        pairs = self._outgoing.metadata(metadata)
        problem = _illegal_metadata(pairs)
        if problem is not None:
            raise _not_started(problem)
        return self._method(request, metadata=cast("Metadata", pairs), **kwargs)


class _OutgoingChannel(grpc.aio.Channel):
    """A grpc.aio channel whose unary methods add what _Outgoing adds. Not a client
    interceptor on purpose: with one, grpc.aio runs every call through an extra task and
    call object. Under callgrind (one caller, asyncio loop) an outgoing SayHello cost 414k
    client instructions through _OutgoingInterceptor, 352k through this (a bare channel
    doing none of this work: 304k); bench/README.md, "What each change gave". Streaming
    methods get the token and the request id (_OutgoingStreaming)."""

    def __init__(self, channel: grpc.aio.Channel, outgoing: _Outgoing) -> None:
        self._channel = channel
        self._outgoing = outgoing

    async def __aenter__(self) -> _OutgoingChannel:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._channel.close(None)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        inner = self._channel.unary_unary(method, *args, **kwargs)
        return _OutgoingUnaryUnary(inner, self._outgoing.bound(method), self._outgoing)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        inner = self._channel.unary_stream(method, *args, **kwargs)
        return _OutgoingStreaming(inner, self._outgoing)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        inner = self._channel.stream_unary(method, *args, **kwargs)
        return _OutgoingStreaming(inner, self._outgoing)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        inner = self._channel.stream_stream(method, *args, **kwargs)
        return _OutgoingStreaming(inner, self._outgoing)


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


def create_channel(
    settings: ClientSettings,
    *,
    retry_services: Sequence[str],
    interceptors: Sequence[Any] = (),
) -> grpc.aio.Channel:
    """A grpc.aio channel to settings.target (e.g. `dns:///greeter:50051`); keep one per
    process and close it on shutdown. Its methods add the token and the request id, unary
    ones also client metrics (_Outgoing), before `interceptors` (e.g. tracing) see the call;
    calling a unary one returns a coroutine of the response (`await stub.Method(request,
    timeout=...)`), not a grpc.aio call object."""
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
    chain = list(interceptors) or None
    credentials = channel_credentials(settings)
    compression = COMPRESSION_ALGORITHMS[settings.compression]
    if credentials is None:
        channel = grpc.aio.insecure_channel(
            settings.target, options=options, interceptors=chain, compression=compression
        )
    else:
        channel = grpc.aio.secure_channel(
            settings.target, credentials, options=options, interceptors=chain,
            compression=compression,
        )  # fmt: skip
    return _OutgoingChannel(channel, _Outgoing(token))


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
