"""What every call through the gateway goes through, before its request is read: a request id
(the client's `x-request-id` when sane, else a new one, echoed in the response), the bearer
token check when AUTH_TOKENS is set, the grpc_server_* metrics and one access-log line; and,
around the forwarding once the call is admitted, the count of its messages each way."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from acme_common import (
    AUTHORIZATION,
    REQUEST_ID_HEADER,
    AccessLog,
    ServerMethodMetrics,
    TokenChecker,
    current_request_id,
    new_request_id,
    sane_request_id,
)
from gateway.forwarding import Context
from gateway.statuses import grpc_code_name

_GRPC_TYPES = {"UNARY": "unary", "CLIENT_STREAM": "client_stream"}
_GRPC_TYPES |= {"SERVER_STREAM": "server_stream", "BIDI_STREAM": "bidi_stream"}

Started = tuple[float, "_Method"]


def protocol_of(content_type: str) -> str:
    """connect, grpc-web or grpc, from the request's content type (what the client spoke)."""
    if content_type.startswith("application/grpc-web"):
        return "grpc-web"
    if content_type.startswith("application/grpc"):
        return "grpc"
    return "connect"


def client_disconnected(error: BaseException) -> bool:
    """Whether error is pyvoy's ClientDisconnectedError: the client went away while the
    answer was being sent (its class lives in the extension only Envoy can load)."""
    return type(error).__name__ == "ClientDisconnectedError"


def error_code(error: Exception | None) -> str:
    """The gRPC name of the status a call ended with (an exception that is no ConnectError
    is answered `unknown` by connectrpc; a client that went away is CANCELLED)."""
    if error is None:
        return grpc.StatusCode.OK.name
    if isinstance(error, ConnectError):
        return grpc_code_name(error.code)
    if client_disconnected(error):
        return grpc.StatusCode.CANCELLED.name
    return grpc.StatusCode.UNKNOWN.name


class _Method:
    """The metrics and access log of one method behind the gateway."""

    def __init__(self, ctx: Context, *, instance: str, which: str, tracing: bool) -> None:
        self.name = f"/{ctx.method.service_name}/{ctx.method.name}"
        grpc_type = _GRPC_TYPES[ctx.method.stream_type.name]
        self.metrics = ServerMethodMetrics(self.name, grpc_type)
        self.access_log = AccessLog(self.name, instance=instance, which=which, tracing=tracing)


class EdgeObservation:
    """A connectrpc metadata interceptor: on_start before the request message is read (so a
    refused token never gets a body parsed), on_end with the call's error."""

    def __init__(self, *, instance: str, which: str, tracing: bool = False) -> None:
        """which: the ACCESS_LOG setting (all, errors or off); tracing: lines carry the
        trace id."""
        self.instance = instance
        self.which = which
        self.tracing = tracing
        self._methods: dict[str, _Method] = {}

    def bound(self, ctx: Context) -> _Method:
        """The metrics and access log of ctx's method (made at its first call)."""
        key = f"/{ctx.method.service_name}/{ctx.method.name}"
        bound = self._methods.get(key)
        if bound is None:
            bound = self._methods[key] = _Method(
                ctx, instance=self.instance, which=self.which, tracing=self.tracing
            )
        return bound

    async def on_start(self, ctx: Context) -> Started:
        request_id = sane_request_id(ctx.request_headers.get(REQUEST_ID_HEADER))
        request_id = request_id or new_request_id()
        ctx.response_headers[REQUEST_ID_HEADER] = request_id
        # Each request runs in a task of its own: the id is gone with it.
        current_request_id.set(request_id)
        bound = self.bound(ctx)
        bound.metrics.started.inc()
        bound.metrics.in_flight.inc()
        return time.perf_counter(), bound

    async def on_end(self, started: Started, ctx: Context, error: Exception | None, /) -> None:
        began, bound = started
        elapsed = time.perf_counter() - began
        code = error_code(error)
        bound.metrics.in_flight.dec()
        bound.metrics.latency.observe(elapsed)
        bound.metrics.handled(grpc.StatusCode[code]).inc()
        if bound.access_log.wanted(error is None):
            bound.access_log.write(
                code,
                elapsed,
                ctx.client_address,
                protocol=protocol_of(ctx.request_headers.get("content-type", "")),
                http_method=ctx.http_method,
            )


class MessageCount:
    """A connectrpc message interceptor counting what EdgeObservation's metrics cannot see
    from the metadata: each request message read (grpc_server_msg_received_total) and each
    response message answered (grpc_server_msg_sent_total), as the services count theirs
    (go-grpc-prometheus's meaning: a unary call receives one, and sends one when it succeeds).
    It goes after the metadata interceptors, so it wraps the forwarding of admitted calls."""

    def __init__(self, observation: EdgeObservation) -> None:
        self.observation = observation

    async def intercept_unary(
        self, call_next: Callable[[Any, Context], Awaitable[Any]], request: Any, ctx: Context, /
    ) -> Any:
        metrics = self.observation.bound(ctx).metrics
        metrics.received.inc()
        response = await call_next(request, ctx)
        metrics.sent.inc()
        return response

    async def intercept_client_stream(
        self,
        call_next: Callable[[AsyncIterator[Any], Context], Awaitable[Any]],
        requests: AsyncIterator[Any],
        ctx: Context,
        /,
    ) -> Any:
        metrics = self.observation.bound(ctx).metrics
        response = await call_next(_received(requests, metrics.received), ctx)
        metrics.sent.inc()
        return response

    def intercept_server_stream(
        self,
        call_next: Callable[[Any, Context], AsyncIterator[Any]],
        request: Any,
        ctx: Context,
        /,
    ) -> AsyncIterator[Any]:
        metrics = self.observation.bound(ctx).metrics
        metrics.received.inc()
        return _sent(call_next(request, ctx), metrics.sent)

    def intercept_bidi_stream(
        self,
        call_next: Callable[[AsyncIterator[Any], Context], AsyncIterator[Any]],
        requests: AsyncIterator[Any],
        ctx: Context,
        /,
    ) -> AsyncIterator[Any]:
        metrics = self.observation.bound(ctx).metrics
        return _sent(call_next(_received(requests, metrics.received), ctx), metrics.sent)


async def _received(requests: AsyncIterator[Any], counter: Any) -> AsyncIterator[Any]:
    """requests, counting each message as it is read (a failed read counts nothing)."""
    async for request in requests:
        counter.inc()
        yield request


async def _sent(responses: AsyncIterator[Any], counter: Any) -> AsyncIterator[Any]:
    """responses, counting each when the next is asked for (connectrpc asks once it wrote
    one, so a reply cut by a client gone away is not counted); closed with this generator
    (the forwarding's cleanup, which cancels the call downstream, must not wait for the
    garbage collector)."""
    try:
        async for response in responses:
            yield response
            counter.inc()
    finally:
        aclose = getattr(responses, "aclose", None)  # an AsyncIterator need not have one
        if aclose is not None:
            await aclose()


class Authentication:
    """A connectrpc metadata interceptor refusing calls without one of AUTH_TOKENS
    (`authorization: Bearer <token>`, compared in constant time) before their request is
    read; after EdgeObservation, so refused calls are counted and logged."""

    def __init__(self, checker: TokenChecker) -> None:
        self.checker = checker

    async def on_start(self, ctx: Context) -> None:
        presented = ctx.request_headers.get(AUTHORIZATION)
        if not self.checker.accepts([(AUTHORIZATION, presented)] if presented else []):
            raise ConnectError(Code.UNAUTHENTICATED, "missing or invalid bearer token")

    async def on_end(self, _started: None, _ctx: Context, _error: Exception | None, /) -> None:
        return
