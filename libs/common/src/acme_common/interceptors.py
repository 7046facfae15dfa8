"""The server interceptor every service gets: bearer-token auth, request ids, Prometheus
metrics, error translation and one access-log line per RPC.

The wrapped handler of each method is built once and cached: the per-call work is a token
check, a few pre-bound metric updates and the log line.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

import grpc
from grpc.aio import AbortError
from pydantic import SecretStr

from acme_common import metrics
from acme_common.errors import FieldViolation, InvalidArgument, ServiceError
from acme_common.logs import log_fields
from acme_common.request_context import current_request_id, request_id_from
from acme_common.security import TokenChecker
from acme_common.stream_end import StreamCut, StreamEnd, cut_reason, stream_end
from acme_common.tracing import current_trace_id

log = logging.getLogger("acme.access")

# Probes and tooling: open without a token, and logged at DEBUG so they do not drown traffic.
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

_OK = grpc.StatusCode.OK

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
        self,
        instance: str,
        tokens: Sequence[SecretStr] = (),
        *,
        tracing: bool = False,
        access_log: str = "all",
        shutting_down: Callable[[], bool] = lambda: False,
    ) -> None:
        self._instance = instance
        self._checker = TokenChecker(tokens) if tokens else None
        self._tracing = tracing
        self._access_log = access_log
        self._shutting_down = shutting_down
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
                # Unknown method: grpc answers UNIMPLEMENTED, but only to a client that may
                # call this server at all (no listing of the methods without a token).
                if self._checker is None or method.startswith(OPEN_PREFIXES):
                    return handler
                presented = handler_call_details.invocation_metadata
                return handler if self._checker.accepts(presented) else _DENIED_ANY_METHOD
            handlers = self._methods[method] = _MethodHandlers.build(
                method,
                handler,
                _Observer.Config(
                    self._instance, self._tracing, self._access_log, self._shutting_down
                ),
            )
        metadata = cast(
            "Sequence[tuple[str, str | bytes]]", handler_call_details.invocation_metadata
        )
        # grpc converted the metadata for us already; the handler runs next in this same task
        # (so in this context), and takes the request id from here instead of converting the
        # metadata again. Outside a server (tests, bench.micro) it falls back to the context.
        current_request_id.set(request_id_from(metadata))
        if self._checker is None or handlers.open:
            return handlers.observed
        return handlers.observed if self._checker.accepts(metadata) else handlers.denied


async def _deny(_request: Any, context: Context) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")


# Refuses a call of any kind before reading a message (a streaming handler fits every kind).
_DENIED_ANY_METHOD: grpc.RpcMethodHandler[Any, Any] = grpc.stream_stream_rpc_method_handler(_deny)


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
    open: bool  # health and reflection: served without a token

    @classmethod
    def build(
        cls,
        method: str,
        handler: grpc.RpcMethodHandler[Any, Any],
        config: _Observer.Config,
    ) -> _MethodHandlers:
        for attribute, grpc_type, make_handler in _KINDS:
            behavior = getattr(handler, attribute)
            if behavior is None:
                continue
            observer = _Observer(method, grpc_type, config)
            deserialize = _tolerant(handler.request_deserializer)

            serialize = handler.response_serializer
            observed = make_handler(
                observer.wrap(behavior),
                request_deserializer=deserialize,
                response_serializer=serialize,
            )
            # What an unauthenticated client sent is never parsed: it gets UNAUTHENTICATED,
            # even when its bytes are malformed too.
            denied = make_handler(
                observer.wrap(_deny), request_deserializer=None, response_serializer=serialize
            )
            return cls(observed, denied, method.startswith(OPEN_PREFIXES))
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


def _as_async_generator(behavior: Behavior) -> Behavior:
    """A context.write-style streaming behaviour as an async generator yielding nothing."""

    async def generator(request: Any, context: Context) -> AsyncIterator[Any]:
        await behavior(request, context)
        nothing: tuple[Any, ...] = ()
        for response in nothing:  # a yield makes this an async generator
            yield response

    return generator


def _reject_malformed(request: Any) -> None:
    if type(request) is MalformedRequest:
        raise InvalidArgument(
            FieldViolation("request", f"not a valid protobuf message ({request.reason})")
        )


class _Observer:
    """Runs one method's behaviour with metrics, request id, error translation and a log line.

    Everything per method (labels, metric children, bound methods) is looked up once here; per
    call there is a handful of counter updates, one histogram observation and the log line.
    """

    @dataclass(frozen=True)
    class Config:
        """What every method's observer of one server shares."""

        instance: str
        tracing: bool = False
        access_log: str = "all"
        shutting_down: Callable[[], bool] = lambda: False  # the server cancels what remains

    def __init__(self, method: str, grpc_type: str, config: Config) -> None:
        self.method = method
        self.instance = config.instance
        self.tracing = config.tracing
        self.shutting_down = config.shutting_down
        self.level = logging.DEBUG if method.startswith(OPEN_PREFIXES) else logging.INFO
        self.log_ok = config.access_log == "all"  # an access-log line for calls that end OK
        self.log_errors = config.access_log != "off"  # and for the others
        self.request_streaming = grpc_type in ("client_stream", "bidi_stream")
        self.response_streaming = grpc_type in ("server_stream", "bidi_stream")
        self.labels = metrics.method_labels(method, grpc_type)
        self.started = metrics.SERVER_STARTED.labels(*self.labels)
        self.in_flight = metrics.SERVER_IN_FLIGHT.labels(*self.labels)
        self.latency = metrics.SERVER_HANDLING_SECONDS.labels(*self.labels)
        self.received = metrics.SERVER_MSG_RECEIVED.labels(*self.labels)
        self.sent = metrics.SERVER_MSG_SENT.labels(*self.labels)
        self.handled: dict[grpc.StatusCode | None, Any] = {}
        self._started_inc = self.started.inc
        self._in_flight_inc = self.in_flight.inc
        self._in_flight_dec = self.in_flight.dec
        self._received_inc = self.received.inc
        self._sent_inc = self.sent.inc
        self._observe = self.latency.observe

    def wrap(self, behavior: Behavior) -> Behavior:
        if self.response_streaming and inspect.isasyncgenfunction(behavior):
            return self._streaming(behavior)
        if self.response_streaming and self.tracing:
            # A streaming method written with context.write (grpc.health's Watch): the
            # OpenTelemetry interceptor, which runs before this one, iterates the handler.
            return self._streaming(_as_async_generator(behavior))
        return self._unary(behavior)

    def begin(self, request: Any, context: Context) -> tuple[float, Any]:
        """Start bookkeeping; returns the start time and the request (or checked stream)."""
        if current_request_id.get() is None:  # not set by intercept_service: called directly
            metadata = cast("Sequence[tuple[str, str | bytes]]", context.invocation_metadata())
            current_request_id.set(request_id_from(metadata))
        self._started_inc()
        self._in_flight_inc()
        if self.request_streaming:
            return perf_counter(), self._checked(request, context)
        self._received_inc()
        return perf_counter(), request

    async def _checked(self, requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        """The request stream, parsed messages only; ends only when the client half-closed
        it, else raises StreamCut (acme_common.stream_end says why this is needed)."""
        received_inc = self._received_inc
        try:
            async for request in requests:
                _reject_malformed(request)
                received_inc()
                yield request
        except StreamCut:
            raise
        except asyncio.CancelledError:
            raise StreamCut(cut_reason(context, self.shutting_down)) from None
        end = await stream_end(context, self.shutting_down)
        if end is not StreamEnd.HALF_CLOSE:
            raise StreamCut(end)

    async def fail(self, error: Exception, context: Context) -> None:
        """Abort the RPC with the status error deserves; always raises."""
        if isinstance(error, ServiceError):
            status = error.to_status()
            await context.abort(status.code, status.details, status.trailing_metadata)
        log.exception("unhandled error in %s", self.method, extra={"method": self.method})
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    def end(self, started: float, context: Context, error: BaseException | None) -> None:
        elapsed = perf_counter() - started
        if isinstance(error, StreamCut):
            code = error.code
        elif isinstance(error, asyncio.CancelledError | GeneratorExit):
            code = cut_reason(context, self.shutting_down).value
        else:
            code = cast("grpc.StatusCode | None", context.code()) or _OK
        handled = self.handled.get(code)
        if handled is None:
            handled = self.handled[code] = metrics.SERVER_HANDLED.labels(
                *self.labels, code.name
            ).inc
        handled()
        self._observe(elapsed)
        self._in_flight_dec()
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

    def _unary(self, behavior: Behavior) -> Behavior:
        begin, end, fail, sent_inc = self.begin, self.end, self.fail, self._sent_inc
        request_streaming = self.request_streaming

        async def observed(request: Any, context: Context) -> Any:
            started, request = begin(request, context)
            error: BaseException | None = None
            try:
                if not request_streaming:
                    _reject_malformed(request)
                response = await behavior(request, context)
                sent_inc()
                return response
            except AbortError:
                raise
            except Exception as failure:
                error = failure
                await fail(failure, context)
            except asyncio.CancelledError as cancelled:
                error = cancelled
                raise
            finally:
                end(started, context, error)

        return observed

    def _streaming(self, behavior: Behavior) -> Behavior:
        begin, end, fail, sent_inc = self.begin, self.end, self.fail, self._sent_inc
        request_streaming = self.request_streaming

        async def observed(request: Any, context: Context) -> AsyncIterator[Any]:
            started, request = begin(request, context)
            error: BaseException | None = None
            try:
                if not request_streaming:
                    _reject_malformed(request)
                async for response in behavior(request, context):
                    yield response
                    sent_inc()
            except AbortError:
                raise
            except Exception as failure:
                error = failure
                await fail(failure, context)
            except (asyncio.CancelledError, GeneratorExit) as cancelled:
                error = cancelled
                raise
            finally:
                end(started, context, error)

        return observed
