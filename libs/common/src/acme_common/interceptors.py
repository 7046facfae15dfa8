"""The server interceptor every service gets: error translation and one access-log line per RPC."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc
from grpc.aio import AbortError

from acme_common.errors import ServiceError

log = logging.getLogger("acme.access")

# Probes and tooling are logged at DEBUG so they do not drown the real traffic.
_QUIET_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

Context = grpc.aio.ServicerContext[Any, Any]


if TYPE_CHECKING:  # grpc-stubs makes the interceptor generic; grpcio's class is not
    _InterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
else:
    _InterceptorBase = grpc.aio.ServerInterceptor


class ServerInterceptor(_InterceptorBase):
    """Turns ServiceError into its status, any other exception into a generic INTERNAL (the
    traceback is logged, never sent), and logs method, status, duration and peer of every RPC."""

    def __init__(self, instance: str) -> None:
        self._instance = instance

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if cast("grpc.RpcMethodHandler[Any, Any] | None", handler) is None:
            return handler  # unknown method: grpc answers UNIMPLEMENTED
        method = handler_call_details.method
        level = logging.DEBUG if method.startswith(_QUIET_PREFIXES) else logging.INFO
        return _wrap(handler, _Observer(method, self._instance, level))


class _Observer:
    """Wraps one method's behaviour: translates failures and writes the access-log line."""

    def __init__(self, method: str, instance: str, level: int) -> None:
        self.method = method
        self.instance = instance
        self.level = level

    async def fail(self, error: BaseException, context: Context) -> None:
        """Abort the RPC with the status error deserves; always raises."""
        if isinstance(error, ServiceError):
            status = error.to_status()
            await context.abort(status.code, status.details, status.trailing_metadata)
        log.exception("unhandled error in %s", self.method, extra={"method": self.method})
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    def record(self, started: float, context: Context, error: BaseException | None) -> None:
        if not log.isEnabledFor(self.level):
            return
        if isinstance(error, asyncio.CancelledError):
            code = grpc.StatusCode.CANCELLED
        else:
            code = cast("grpc.StatusCode | None", context.code()) or grpc.StatusCode.OK
        log.log(
            self.level,
            "rpc",
            extra={
                "method": self.method,
                "code": code.name,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "peer": context.peer(),
                "instance": self.instance,
            },
        )

    def unary(self, behavior: Callable[[Any, Context], Awaitable[Any]]) -> Any:
        async def observed(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except AbortError:
                raise
            except Exception as failure:
                error = failure
                await self.fail(failure, context)
            except asyncio.CancelledError as cancelled:
                error = cancelled
                raise
            finally:
                self.record(started, context, error)

        return observed

    def streaming(self, behavior: Callable[[Any, Context], AsyncIterator[Any]]) -> Any:
        async def observed(request: Any, context: Context) -> AsyncIterator[Any]:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                async for response in behavior(request, context):
                    yield response
            except AbortError:
                raise
            except Exception as failure:
                error = failure
                await self.fail(failure, context)
            except asyncio.CancelledError as cancelled:
                error = cancelled
                raise
            finally:
                self.record(started, context, error)

        return observed


def _wrap(
    handler: grpc.RpcMethodHandler[Any, Any], observer: _Observer
) -> grpc.RpcMethodHandler[Any, Any]:
    """A copy of handler whose behaviour runs under observer, for all four RPC kinds."""
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler),
        ("unary_stream", grpc.unary_stream_rpc_method_handler),
        ("stream_unary", grpc.stream_unary_rpc_method_handler),
        ("stream_stream", grpc.stream_stream_rpc_method_handler),
    )
    for attribute, make_handler in kinds:
        behavior = getattr(handler, attribute)
        if behavior is None:
            continue
        wrap = observer.streaming if inspect.isasyncgenfunction(behavior) else observer.unary
        return make_handler(
            wrap(behavior),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler
