"""The per-call path every service gets, composed of: bearer-token auth (auth.py), request ids
(request_ids.py), per-call bookkeeping: metrics, status code and access-log line
(observation.py, ../_metrics.py, access_log.py), error translation (error_status.py), malformed
requests (malformed.py), requests that break their contract's rules (validation.py) and replies
over GRPC_MAX_MESSAGE_BYTES.

It is not a grpc.aio interceptor: a server with one runs an async interceptor pipeline before
every call, which cost more than the parts themselves (bench/README.md, "Instructions per
call"). Instead ServiceHost hands each service's add_to_server a Registrar, which collects
the method handlers the service registers, and serves all of them through one generic handler,
CallHandlers, whose service() grpc calls synchronously in the task that then runs the handler
(grpc/_cython/_cygrpc/aio/server.pyx.pxi, `_handle_rpc`): it checks the token and sets the
request id there, and returns the method's handler wrapped once, at its first call. Methods
are not registered with grpc as registered methods (add_registered_method_handlers), which
would bypass service(); grpc's server loop also waits on one future per registered method for
every call it accepts.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, cast

import grpc
from grpc.aio import AbortError

from acme_common._call import auth, validation
from acme_common._call.error_status import abort_with_status
from acme_common._call.malformed import reject_malformed, tolerant
from acme_common._call.observation import Observation, ServicerContext
from acme_common._call.request_ids import current_request_id, request_id_from
from acme_common._errors import ResourceExhausted
from acme_common._settings import ServerSettings

Behavior = Callable[[Any, ServicerContext], Any]
Serializer = Callable[[Any], bytes]
if TYPE_CHECKING:  # grpc-stubs makes these classes generic; grpcio's are not
    MethodHandler = grpc.RpcMethodHandler[Any, Any]
    _GenericHandlerBase = grpc.GenericRpcHandler[Any, Any]
else:
    MethodHandler = grpc.RpcMethodHandler
    _GenericHandlerBase = grpc.GenericRpcHandler


@dataclass(frozen=True)
class PerCall:
    """Which parts of the per-call path a server runs. Production runs all of them; bench/
    switches one off to measure what it costs (bench/README.md, "Instructions per call")."""

    wrapped: bool = True  # False: handlers served as registered: no auth, request ids,
    # metrics, access log, error translation or malformed-request answers
    metrics: bool = True  # False: the grpc_server_* metrics are not updated
    validation: bool = True  # False: requests reach the handler unchecked against their
    # buf.validate rules (validation.py), so a service sees input its contract refuses


EVERY_PART = PerCall()  # what production runs


class CallHandlers(_GenericHandlerBase):
    """The one generic handler of a server: every method a Registrar collected, served
    authenticated, observed and with its failures translated."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        tracing: bool,
        shutting_down: Callable[[], bool],
        metrics: bool = True,
        validation: bool = True,
    ) -> None:
        """settings: instance_name, auth_tokens, access_log and grpc_max_message_bytes are
        read; tracing: whether the OpenTelemetry interceptor runs around these handlers;
        shutting_down: True once the server cancels the calls that remain (they are recorded
        UNAVAILABLE); metrics: whether the grpc_server_* metrics are updated; validation:
        whether requests are checked against their buf.validate rules."""
        self._settings = settings
        self._checker = auth.checker_for(settings.auth_tokens)
        self._tracing = tracing
        self._shutting_down = shutting_down
        self._metrics = metrics
        self._validation = validation
        self._registered: dict[str, MethodHandler] = {}
        self._generic: list[grpc.GenericRpcHandler[Any, Any]] = []
        self._methods: dict[str, _MethodHandlers] = {}

    def add_generic_rpc_handlers(
        self, handlers: Iterable[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(
        self, service_name: str, handlers: Mapping[str, MethodHandler]
    ) -> None:
        for name, handler in handlers.items():
            self._registered[f"/{service_name}/{name}"] = handler

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> MethodHandler | None:
        method = handler_call_details.method
        metadata = cast(
            "Sequence[tuple[str, str | bytes]]", handler_call_details.invocation_metadata
        )
        handlers = self._methods.get(method)
        if handlers is None:
            handler = self._find(handler_call_details)
            if handler is None:  # not cached: unknown names would grow the cache without end
                return auth.unknown_method_handler(self._checker, method, metadata)
            handlers = self._methods[method] = self._build(method, handler)
        # grpc converted the metadata for us already; the handler runs next in this same task
        # (so in this context), and takes the request id from here instead of converting the
        # metadata again. Outside a server (tests) it falls back to the context.
        current_request_id.set(request_id_from(metadata))
        if self._checker is None or handlers.open:
            return handlers.observed
        return handlers.observed if self._checker.accepts(metadata) else handlers.denied

    def _find(self, handler_call_details: grpc.HandlerCallDetails) -> MethodHandler | None:
        """The handler registered for the method, in grpc's order: registered method handlers
        first, then each generic handler in turn."""
        handler = self._registered.get(handler_call_details.method)
        if handler is not None:
            return handler
        for generic in self._generic:
            handler = generic.service(handler_call_details)
            if handler is not None:
                return handler
        return None

    def _build(self, method: str, handler: MethodHandler) -> _MethodHandlers:
        for attribute, grpc_type, make_handler in _KINDS:
            behavior = getattr(handler, attribute)
            if behavior is None:
                continue
            observation = Observation(
                method,
                grpc_type,
                self._settings,
                tracing=self._tracing,
                shutting_down=self._shutting_down,
                metrics=self._metrics,
            )
            serialize = _checked(handler.response_serializer, self._settings)
            # A handler that writes its replies with context.write gets grpc's serializer,
            # checked; the others have theirs serialized here, inside the observed call.
            written = observation.response_streaming and inspect.iscoroutinefunction(behavior)
            deserialize = handler.request_deserializer
            # Parsed and checked against its rules as grpc hands each message over: a unary
            # request before the handler runs, a streamed one as the handler reads it.
            check = validation.check_of(deserialize) if self._validation else None
            observed = make_handler(
                _wrap(observation, behavior, self._tracing, serialize),
                request_deserializer=tolerant(deserialize, check),
                response_serializer=_counted(serialize, observation) if written else None,
            )
            # What an unauthenticated client sent is never parsed: it gets UNAUTHENTICATED,
            # even when its bytes are malformed too.
            denied = make_handler(
                _wrap(observation, auth.deny, self._tracing, serialize),
                request_deserializer=None,
                response_serializer=None,
            )
            return _MethodHandlers(observed, denied, auth.is_open(method))
        raise ValueError(f"handler of {method} has no behaviour")


class Registrar(grpc.aio.Server):
    """What ServiceHost hands a Service's add_to_server in place of the grpc.aio server: a
    grpc.aio.Server (generated add_*_to_server functions, reflection and channelz check that)
    whose handlers go to a CallHandlers. It registers; it does not serve."""

    def __init__(self, handlers: CallHandlers) -> None:
        self._handlers = handlers

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        self._handlers.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, MethodHandler]
    ) -> None:
        self._handlers.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        _only_registers()

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        _only_registers()

    async def start(self) -> None:
        _only_registers()

    async def stop(self, grace: float | None = None) -> None:
        _only_registers()

    async def wait_for_termination(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - grpc's signature
        _only_registers()


def _only_registers() -> NoReturn:
    raise TypeError("a Service's add_to_server may only add handlers (ServiceHost serves them)")


_KINDS = (
    ("unary_unary", "unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", "server_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", "client_stream", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", "bidi_stream", grpc.stream_stream_rpc_method_handler),
)


@dataclass(frozen=True)
class _MethodHandlers:
    """One method's handler as served (`observed`) and as refused for lack of a token."""

    observed: MethodHandler
    denied: MethodHandler
    open: bool  # health and reflection: served without a token


def _unchanged(message: Any) -> bytes:
    return cast("bytes", message)


def _checked(serialize: Serializer | None, settings: ServerSettings) -> Serializer:
    """serialize (none: the handler replies with bytes), raising ResourceExhausted for a reply
    over GRPC_MAX_MESSAGE_BYTES: grpc core would refuse to send it after the handler ended,
    which the call's observation could not see (it recorded such a call OK)."""
    limit = settings.grpc_max_message_bytes
    inner = serialize or _unchanged

    def checked(message: Any) -> bytes:
        data = inner(message)
        if len(data) > limit:
            raise ResourceExhausted(
                f"reply of {len(data)} bytes is over the server's limit of {limit} bytes"
            )
        return data

    return checked


def _counted(serialize: Serializer, observation: Observation) -> Serializer:
    """serialize, counting each message as sent (context.write serializes each once)."""

    def counted(message: Any) -> bytes:
        data = serialize(message)
        observation.metrics.sent.inc()
        return data

    return counted


def _wrap(
    observation: Observation, behavior: Behavior, tracing: bool, serialize: Serializer
) -> Behavior:
    if observation.response_streaming and inspect.isasyncgenfunction(behavior):
        return _streaming(observation, behavior, serialize)
    if observation.response_streaming and tracing:
        # A streaming method written with context.write (grpc.health's Watch): the
        # OpenTelemetry interceptor, which runs before this one, iterates the handler.
        return _streaming(observation, _as_async_generator(behavior), serialize)
    return _unary(observation, behavior, serialize)


def _as_async_generator(behavior: Behavior) -> Behavior:
    """A context.write-style streaming behaviour as an async generator yielding nothing."""

    async def generator(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
        await behavior(request, context)
        nothing: tuple[Any, ...] = ()
        for response in nothing:  # a yield makes this an async generator
            yield response

    return generator


def _unary(observation: Observation, behavior: Behavior, serialize: Serializer) -> Behavior:
    """behavior (returning its response, or writing them with context.write), observed; the
    response is returned serialized."""

    async def observed(request: Any, context: ServicerContext) -> Any:
        started, request = observation.begin(request, context)
        error: BaseException | None = None
        try:
            if not observation.request_streaming:
                reject_malformed(request)
            response = await behavior(request, context)
            if observation.response_streaming:  # written with context.write: nothing to send
                return None
            data = serialize(response)
            observation.metrics.sent.inc()
            return data
        except AbortError:
            raise
        except Exception as failure:
            error = failure
            await abort_with_status(failure, context, observation.method)
        except asyncio.CancelledError as cancelled:
            error = cancelled
            raise
        finally:
            observation.end(started, context, error)

    return observed


def _streaming(observation: Observation, behavior: Behavior, serialize: Serializer) -> Behavior:
    """An async-generator behavior, observed; its responses are yielded serialized."""

    async def observed(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
        started, request = observation.begin(request, context)
        error: BaseException | None = None
        try:
            if not observation.request_streaming:
                reject_malformed(request)
            async for response in behavior(request, context):
                yield serialize(response)
                observation.metrics.sent.inc()
        except AbortError:
            raise
        except Exception as failure:
            error = failure
            await abort_with_status(failure, context, observation.method)
        except (asyncio.CancelledError, GeneratorExit) as cancelled:
            error = cancelled
            raise
        finally:
            observation.end(started, context, error)

    return observed
