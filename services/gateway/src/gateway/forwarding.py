"""One Connect application per exposed gRPC service, built from the service's descriptor (the
same Endpoint/MethodInfo objects connectrpc's generated code builds): every method forwards
its call over a grpc.aio channel to the service, with the deadline that is left, the request
id, the token and the client's headers as metadata (gateway.metadata's rule), passes the
service's initial and trailing metadata back as response headers and trailers, and answers
the service's status as a Connect error."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import pkgutil
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_codecs
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from acme_common import AUTHORIZATION, DEADLINE_MARGIN
from gateway.metadata import request_metadata, response_fields
from gateway.statuses import connect_error

Context = RequestContext[Any, Any]


def find_service(full_name: str) -> ServiceDescriptor:
    """The descriptor of a service (`acme.<name>.v1.<Name>Service`) from the generated
    modules of its proto package, the Python package of the same name (acme-protos for
    acme.*); KeyError when no module defines it."""
    package = full_name.rpartition(".")[0]
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise KeyError(f"no generated code for {package} (acme-protos)") from None
    for info in pkgutil.iter_modules(module.__path__):
        if info.name.endswith("_pb2"):
            importlib.import_module(f"{package}.{info.name}")
    found: ServiceDescriptor = descriptor_pool.Default().FindServiceByName(full_name)
    return found


def _stream_type(method: MethodDescriptor) -> StreamType:
    if method.client_streaming and method.server_streaming:
        return StreamType.BIDI_STREAM
    if method.client_streaming:
        return StreamType.CLIENT_STREAM
    if method.server_streaming:
        return StreamType.SERVER_STREAM
    return StreamType.UNARY


_IDEMPOTENCY = {
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS: IdempotencyLevel.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT: IdempotencyLevel.IDEMPOTENT,
}


def idempotency_level(method: MethodDescriptor) -> IdempotencyLevel:
    """The method's `option idempotency_level`: NO_SIDE_EFFECTS methods can also be called
    with Connect's GET (connectrpc allows it for them only)."""
    options = method.GetOptions()
    assert isinstance(options, descriptor_pb2.MethodOptions)  # noqa: S101 - for mypy
    return _IDEMPOTENCY.get(options.idempotency_level, IdempotencyLevel.UNKNOWN)


def _pass_headers(ctx: Context, metadata: Any) -> None:
    for name, value in response_fields(metadata):
        ctx.response_headers.add(name, value)


def _pass_trailers(ctx: Context, metadata: Any) -> None:
    for name, value in response_fields(metadata):
        ctx.response_trailers.add(name, value)


class Forwarder:
    """Calls the methods of one service over channel: the client's remaining deadline (less
    DEADLINE_MARGIN, so the service's DEADLINE_EXCEEDED comes back in time) or default_timeout;
    with pass_authorization the client's `authorization` header goes along (one that is not
    printable ASCII is refused as unauthenticated: grpc could not send it). The client's
    other headers go along as metadata, and the service's come back, by gateway.metadata's
    rule."""

    def __init__(
        self,
        service: ServiceDescriptor,
        channel: grpc.aio.Channel,
        default_timeout: float,
        *,
        pass_authorization: bool,
    ) -> None:
        self.service = service
        self.channel = channel
        self.default_timeout = default_timeout
        self.pass_authorization = pass_authorization
        # Built now, so that a method this gateway cannot serve fails at start, not per call.
        self._endpoints = {
            f"/{service.full_name}/{method.name}": self.endpoint(method)
            for method in service.methods
        }

    def _call_options(self, ctx: Context) -> dict[str, Any]:
        remaining_ms = ctx.timeout_ms
        timeout = (
            self.default_timeout
            if remaining_ms is None
            else max(remaining_ms / 1000 - DEADLINE_MARGIN, 0.0)
        )
        metadata = request_metadata(ctx.request_headers.allitems())
        if self.pass_authorization:
            token = ctx.request_headers.get(AUTHORIZATION)
            if token is not None:
                if not token.isascii() or not token.isprintable():
                    # grpc cannot send it (illegal metadata): no service could accept it.
                    raise ConnectError(Code.UNAUTHENTICATED, "invalid bearer token")
                metadata = (*metadata, (AUTHORIZATION, token))
        return {"timeout": timeout, "metadata": metadata}

    def endpoint(self, method: MethodDescriptor) -> Any:
        """The connectrpc endpoint (Endpoint.unary, .server_stream, ...) of one method,
        forwarding to the service."""
        request_type = GetMessageClass(method.input_type)
        response_type = GetMessageClass(method.output_type)
        info: MethodInfo[Any, Any] = MethodInfo(
            name=method.name,
            service_name=self.service.full_name,
            input=request_type,
            output=response_type,
            idempotency_level=idempotency_level(method),
            stream_type=_stream_type(method),
        )
        path = f"/{self.service.full_name}/{method.name}"
        serialize: Callable[[Any], bytes] = request_type.SerializeToString
        deserialize: Callable[[bytes], Any] = response_type.FromString
        # The gateway's own credentials (<NAME>_AUTH_TOKEN) are what the service judged,
        # unless the client's token is passed on.
        fail = functools.partial(
            connect_error,
            service=self.service.full_name,
            own_credentials=not self.pass_authorization,
        )
        if info.stream_type is StreamType.UNARY:
            # create_channel's unary method (acme_common.create_channel): its with_call returns the
            # ended call too, whose metadata the response passes on.
            unary_unary: Any = self.channel.unary_unary(path, serialize, deserialize)

            async def unary(request: Any, ctx: Context) -> Any:
                try:
                    response, call = await unary_unary.with_call(request, **self._call_options(ctx))
                except grpc.aio.AioRpcError as error:
                    _pass_headers(ctx, error.initial_metadata())
                    _pass_trailers(ctx, error.trailing_metadata())
                    raise fail(error) from None
                _pass_headers(ctx, await call.initial_metadata())
                _pass_trailers(ctx, await call.trailing_metadata())
                return response

            return Endpoint.unary(method=info, function=unary)
        if info.stream_type is StreamType.SERVER_STREAM:
            # Called as a bidi stream of one request: the same call on the wire, but grpc.aio's
            # unary-stream call loses the service's initial metadata when its status is
            # handled first, which happens when the service sends headers and ends without
            # a reply (grpcio 1.85, aio/call.pyx.pxi: _set_status puts empty initial metadata
            # in place, and _set_initial_metadata then drops the real ones; 7% of 600 calls,
            # 4 at a time). Its stream-stream call asks for the initial metadata before it
            # sends the request, so the answer cannot overtake them.
            unary_stream = self.channel.stream_stream(path, serialize, deserialize)

            async def server_stream(request: Any, ctx: Context) -> AsyncIterator[Any]:
                call = unary_stream(iter((request,)), **self._call_options(ctx))
                async for reply in _replies(call, ctx, fail):
                    yield reply

            return Endpoint.server_stream(method=info, function=server_stream)
        if info.stream_type is StreamType.CLIENT_STREAM:
            stream_unary = self.channel.stream_unary(path, serialize, deserialize)

            async def client_stream(requests: AsyncIterator[Any], ctx: Context) -> Any:
                stream = _RequestStream(requests)
                call = stream_unary(stream.messages(), **self._call_options(ctx))
                try:
                    try:
                        response = await call
                    except asyncio.CancelledError:
                        stream.raise_failure()
                        raise
                    _pass_headers(ctx, await call.initial_metadata())
                    _pass_trailers(ctx, await call.trailing_metadata())
                except grpc.aio.AioRpcError as error:
                    _pass_headers(ctx, error.initial_metadata())
                    _pass_trailers(ctx, error.trailing_metadata())
                    raise fail(error) from None
                finally:
                    call.cancel()  # a no-op once the call has ended
                    await stream.close()
                return response

            return Endpoint.client_stream(method=info, function=client_stream)
        stream_stream = self.channel.stream_stream(path, serialize, deserialize)

        async def bidi_stream(requests: AsyncIterator[Any], ctx: Context) -> AsyncIterator[Any]:
            stream = _RequestStream(requests)
            call = stream_stream(stream.messages(), **self._call_options(ctx))
            async for reply in _replies(call, ctx, fail, stream):
                yield reply

        return Endpoint.bidi_stream(method=info, function=bidi_stream)

    def endpoints(self) -> Mapping[str, Any]:
        """URL path (`/<service>/<method>`) -> endpoint, for every method of the service."""
        return self._endpoints


_END = object()  # the end of the client's request stream, in _RequestStream's queue


class _RequestStream:
    """The client's request messages (connectrpc's request stream) for grpc, which reads
    them in a task of its own, for a client or bidi stream.

    They are read by a task of ours (close() stops it and waits for it) and handed over one
    at a time: when the call ends before the client's stream does (the service answered
    early, the deadline passed), connectrpc closes its request stream, which it cannot while
    grpc's reader is inside it waiting for the client ("aclose(): asynchronous generator is
    already running", an ERROR without an end of stream for the client). When reading them
    fails (a message over GATEWAY_MAX_REQUEST_BYTES, a malformed envelope, the client gone
    before the end), grpc cancels the call downstream, so the service never takes a cut
    stream for a whole one, and the caller's `await call` ends in CancelledError:
    raise_failure() answers the call with the reading's own error instead (connectrpc would
    answer `canceled`, without an end of stream)."""

    def __init__(self, requests: AsyncIterator[Any]) -> None:
        self._requests = requests
        self._handover: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        self._reader: asyncio.Task[None] | None = None
        self.failure: Exception | None = None

    async def messages(self) -> AsyncIterator[Any]:
        """What grpc reads."""
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        while (item := await self._handover.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            yield item

    async def _read(self) -> None:
        try:
            async for request in self._requests:
                await self._handover.put(request)
        except Exception as error:
            self.failure = error
            await self._handover.put(error)
            return
        await self._handover.put(_END)

    async def close(self) -> None:
        """Stop reading the client's stream (connectrpc closes it next) and end grpc's
        reading of ours."""
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            await asyncio.wait([self._reader])
        with contextlib.suppress(asyncio.QueueFull):
            self._handover.put_nowait(_END)

    def raise_failure(self) -> None:
        """Inside `except CancelledError`: raise the reading's error, if reading failed and
        this task is not being cancelled itself (deadline, client gone: that goes on)."""
        task = asyncio.current_task()
        if self.failure is not None and (task is None or not task.cancelling()):
            raise self.failure from None


async def _replies(
    call: Any,
    ctx: Context,
    fail: Callable[[grpc.aio.AioRpcError], ConnectError],
    requests: _RequestStream | None = None,
) -> AsyncIterator[Any]:
    """The replies of a streaming call, its initial metadata as the response headers (set
    before the first reply, which connectrpc sends them with) and its trailing metadata as
    the trailers; its failure as a Connect error (a failure to read the client's requests
    as that failure). A client that goes away (the generator is closed) cancels the call
    downstream."""
    headers_passed = False
    try:
        _pass_headers(ctx, await call.initial_metadata())
        headers_passed = True
        async for reply in call:
            yield reply
        _pass_trailers(ctx, await call.trailing_metadata())
    except asyncio.CancelledError:
        if requests is not None:
            requests.raise_failure()
        raise
    except grpc.aio.AioRpcError as error:
        if not headers_passed:
            _pass_headers(ctx, error.initial_metadata())
        _pass_trailers(ctx, error.trailing_metadata())
        raise fail(error) from None
    finally:
        call.cancel()  # a no-op once the call has ended
        if requests is not None:
            await requests.close()


class ServiceApplication(ConnectASGIApplication[Forwarder]):
    """connectrpc's ASGI application (Connect, gRPC-Web and gRPC; JSON and binary) for one
    forwarded service, mounted at `/<service full name>`."""

    def __init__(self, forwarder: Forwarder, *, interceptors: Any, read_max_bytes: int) -> None:
        super().__init__(
            service=forwarder,
            endpoints=lambda svc: svc.endpoints(),
            interceptors=interceptors,
            read_max_bytes=read_max_bytes,
            codecs=google_protobuf_codecs(),
        )
        self._path = f"/{forwarder.service.full_name}"

    @property
    def path(self) -> str:
        return self._path
