"""The server interceptor every service gets: bearer-token auth, request ids, Prometheus
metrics, error translation and one access-log line per RPC.

The wrapped handler of each method is built once and cached: the per-call work is a token
check, a few pre-bound metric updates and the log line.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import grpc
from grpc.aio import AbortError
from pydantic import SecretStr

from acme_common import metrics
from acme_common.errors import FieldViolation, InvalidArgument, ServiceError
from acme_common.request_context import current_request_id, request_id_from
from acme_common.security import TokenChecker
from acme_common.tracing import current_trace_id

log = logging.getLogger("acme.access")

# Probes and tooling: open without a token, and logged at DEBUG so they do not drown traffic.
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

Context = grpc.aio.ServicerContext[Any, Any]
Behavior = Callable[[Any, Context], Any]

if TYPE_CHECKING:  # grpc-stubs makes the interceptor generic; grpcio's class is not
    _InterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
else:
    _InterceptorBase = grpc.aio.ServerInterceptor


@dataclass(frozen=True)
class MalformedRequest:
    """Stands in for a request whose bytes did not parse, so the handler can answer
    INVALID_ARGUMENT instead of grpc's generic INTERNAL deserialization failure."""

    reason: str


class ServerInterceptor(_InterceptorBase):
    """Authenticates, observes and translates the failures of every RPC of a server."""

    def __init__(
        self, instance: str, tokens: Sequence[SecretStr] = (), *, tracing: bool = False
    ) -> None:
        self._instance = instance
        self._checker = TokenChecker(tokens) if tokens else None
        self._tracing = tracing
        self._methods: dict[str, _MethodHandlers] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        handlers = self._methods.get(method)
        if handlers is None:
            handler = await continuation(handler_call_details)
            if cast("grpc.RpcMethodHandler[Any, Any] | None", handler) is None:
                return handler  # unknown method: grpc answers UNIMPLEMENTED
            handlers = self._methods[method] = _MethodHandlers.build(
                method, handler, self._instance, self._tracing
            )
        if self._checker is None or method.startswith(OPEN_PREFIXES):
            return handlers.observed
        metadata = cast(
            "Sequence[tuple[str, str | bytes]]", handler_call_details.invocation_metadata
        )
        return handlers.observed if self._checker.accepts(metadata) else handlers.denied


async def _deny(_request: Any, context: Context) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")


_KINDS = (
    ("unary_unary", "unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", "server_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", "client_stream", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", "bidi_stream", grpc.stream_stream_rpc_method_handler),
)


@dataclass(frozen=True)
class _MethodHandlers:
    """One method's handler as served (`observed`) and as refused for lack of a token."""

    observed: grpc.RpcMethodHandler[Any, Any]
    denied: grpc.RpcMethodHandler[Any, Any]

    @classmethod
    def build(
        cls, method: str, handler: grpc.RpcMethodHandler[Any, Any], instance: str, tracing: bool
    ) -> _MethodHandlers:
        for attribute, grpc_type, make_handler in _KINDS:
            behavior = getattr(handler, attribute)
            if behavior is None:
                continue
            observer = _Observer(method, grpc_type, instance, tracing)
            deserialize = _tolerant(handler.request_deserializer)

            serialize = handler.response_serializer
            observed, denied = (
                make_handler(
                    observer.wrap(wrapped),
                    request_deserializer=deserialize,
                    response_serializer=serialize,
                )
                for wrapped in (behavior, _deny)
            )
            return cls(observed, denied)
        raise ValueError(f"handler of {method} has no behaviour")


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that returns MalformedRequest instead of raising."""
    if deserialize is None:
        return None
    parse = deserialize

    def tolerant(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as error:  # protobuf raises DecodeError, upb sometimes others
            return MalformedRequest(f"{type(error).__name__}: {error}")

    return tolerant


def _reject_malformed(request: Any) -> None:
    if type(request) is MalformedRequest:
        raise InvalidArgument(
            FieldViolation("request", f"not a valid protobuf message ({request.reason})")
        )


class _Observer:
    """Runs one method's behaviour with metrics, request id, error translation and a log line."""

    def __init__(self, method: str, grpc_type: str, instance: str, tracing: bool) -> None:
        self.method = method
        self.instance = instance
        self.tracing = tracing
        self.level = logging.DEBUG if method.startswith(OPEN_PREFIXES) else logging.INFO
        self.request_streaming = grpc_type in ("client_stream", "bidi_stream")
        self.response_streaming = grpc_type in ("server_stream", "bidi_stream")
        self.labels = metrics.method_labels(method, grpc_type)
        self.started = metrics.SERVER_STARTED.labels(*self.labels)
        self.in_flight = metrics.SERVER_IN_FLIGHT.labels(*self.labels)
        self.latency = metrics.SERVER_HANDLING_SECONDS.labels(*self.labels)
        self.received = metrics.SERVER_MSG_RECEIVED.labels(*self.labels)
        self.sent = metrics.SERVER_MSG_SENT.labels(*self.labels)
        self.handled: dict[grpc.StatusCode, Any] = {}

    def wrap(self, behavior: Behavior) -> Behavior:
        if self.response_streaming and inspect.isasyncgenfunction(behavior):
            return self._streaming(behavior)
        return self._unary(behavior)

    def begin(self, request: Any, context: Context) -> tuple[float, Any]:
        """Start bookkeeping; returns the start time and the request (or checked stream)."""
        current_request_id.set(request_id_from(context.invocation_metadata()))  # type: ignore[arg-type]
        self.started.inc()
        self.in_flight.inc()
        if self.request_streaming:
            return time.perf_counter(), self._checked(request)
        self.received.inc()
        return time.perf_counter(), request

    async def _checked(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            _reject_malformed(request)
            self.received.inc()
            yield request

    async def fail(self, error: Exception, context: Context) -> None:
        """Abort the RPC with the status error deserves; always raises."""
        if isinstance(error, ServiceError):
            status = error.to_status()
            await context.abort(status.code, status.details, status.trailing_metadata)
        log.exception("unhandled error in %s", self.method, extra={"method": self.method})
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    def end(self, started: float, context: Context, error: BaseException | None) -> None:
        elapsed = time.perf_counter() - started
        if isinstance(error, asyncio.CancelledError | GeneratorExit):
            code = grpc.StatusCode.CANCELLED
        else:
            code = cast("grpc.StatusCode | None", context.code()) or grpc.StatusCode.OK
        handled = self.handled.get(code)
        if handled is None:
            handled = self.handled[code] = metrics.SERVER_HANDLED.labels(*self.labels, code.name)
        handled.inc()
        self.latency.observe(elapsed)
        self.in_flight.dec()
        if log.isEnabledFor(self.level):
            extra = {
                "method": self.method,
                "code": code.name,
                "duration_ms": round(elapsed * 1000, 3),
                "peer": context.peer(),
                "instance": self.instance,
                "request_id": current_request_id.get(),
            }
            if self.tracing:
                extra["trace_id"] = current_trace_id()
            log.log(self.level, "rpc", extra=extra)

    def _unary(self, behavior: Behavior) -> Behavior:
        async def observed(request: Any, context: Context) -> Any:
            started, request = self.begin(request, context)
            error: BaseException | None = None
            try:
                if not self.request_streaming:
                    _reject_malformed(request)
                response = await behavior(request, context)
                self.sent.inc()
                return response
            except AbortError:
                raise
            except Exception as failure:
                error = failure
                await self.fail(failure, context)
            except asyncio.CancelledError as cancelled:
                error = cancelled
                raise
            finally:
                self.end(started, context, error)

        return observed

    def _streaming(self, behavior: Behavior) -> Behavior:
        async def observed(request: Any, context: Context) -> AsyncIterator[Any]:
            started, request = self.begin(request, context)
            error: BaseException | None = None
            try:
                if not self.request_streaming:
                    _reject_malformed(request)
                async for response in behavior(request, context):
                    yield response
                    self.sent.inc()
            except AbortError:
                raise
            except Exception as failure:
                error = failure
                await self.fail(failure, context)
            except (asyncio.CancelledError, GeneratorExit) as cancelled:
                error = cancelled
                raise
            finally:
                self.end(started, context, error)

        return observed
