"""One Connect application per exposed gRPC service, built from the service's descriptor (the
same Endpoint/MethodInfo objects connectrpc's generated code builds): every method forwards
its call over a grpc.aio channel to the service, with the deadline that is left, the request
id and the token, and answers the service's status as a Connect error."""

from __future__ import annotations

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
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from acme_common.auth import AUTHORIZATION
from acme_common.channels import DEADLINE_MARGIN
from gateway.statuses import connect_error

Context = RequestContext[Any, Any]


def find_service(full_name: str) -> ServiceDescriptor:
    """The descriptor of `acme.<name>.v1.<Name>Service` from the generated modules of its
    proto package (acme-protos); KeyError when no module defines it."""
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


class Forwarder:
    """Calls the methods of one service over channel: the client's remaining deadline (less
    DEADLINE_MARGIN, so the service's DEADLINE_EXCEEDED comes back in time) or default_timeout;
    with pass_authorization the client's `authorization` header goes along (one that is not
    printable ASCII is refused as unauthenticated: grpc could not send it)."""

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
        metadata: tuple[tuple[str, str], ...] = ()
        if self.pass_authorization:
            token = ctx.request_headers.get(AUTHORIZATION)
            if token is not None:
                if not token.isascii() or not token.isprintable():
                    # grpc cannot send it (illegal metadata): no service could accept it.
                    raise ConnectError(Code.UNAUTHENTICATED, "invalid bearer token")
                metadata = ((AUTHORIZATION, token),)
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
            idempotency_level=IdempotencyLevel.UNKNOWN,
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
            unary_unary = self.channel.unary_unary(path, serialize, deserialize)

            async def unary(request: Any, ctx: Context) -> Any:
                try:
                    return await unary_unary(request, **self._call_options(ctx))
                except grpc.aio.AioRpcError as error:
                    raise fail(error) from None

            return Endpoint.unary(method=info, function=unary)
        if info.stream_type is StreamType.SERVER_STREAM:
            unary_stream = self.channel.unary_stream(path, serialize, deserialize)

            async def server_stream(request: Any, ctx: Context) -> AsyncIterator[Any]:
                call = unary_stream(request, **self._call_options(ctx))
                async for reply in _replies(call, fail):
                    yield reply

            return Endpoint.server_stream(method=info, function=server_stream)
        if info.stream_type is StreamType.CLIENT_STREAM:
            stream_unary = self.channel.stream_unary(path, serialize, deserialize)

            async def client_stream(requests: AsyncIterator[Any], ctx: Context) -> Any:
                call = stream_unary(requests, **self._call_options(ctx))
                try:
                    return await call
                except grpc.aio.AioRpcError as error:
                    raise fail(error) from None
                finally:
                    call.cancel()  # a no-op once the call has ended

            return Endpoint.client_stream(method=info, function=client_stream)
        stream_stream = self.channel.stream_stream(path, serialize, deserialize)

        async def bidi_stream(requests: AsyncIterator[Any], ctx: Context) -> AsyncIterator[Any]:
            call = stream_stream(requests, **self._call_options(ctx))
            async for reply in _replies(call, fail):
                yield reply

        return Endpoint.bidi_stream(method=info, function=bidi_stream)

    def endpoints(self) -> Mapping[str, Any]:
        """URL path (`/<service>/<method>`) -> endpoint, for every method of the service."""
        return self._endpoints


async def _replies(
    call: Any, fail: Callable[[grpc.aio.AioRpcError], ConnectError]
) -> AsyncIterator[Any]:
    """The replies of a streaming call; its failure as a Connect error. A client that goes
    away (the generator is closed) cancels the call downstream."""
    try:
        async for reply in call:
            yield reply
    except grpc.aio.AioRpcError as error:
        raise fail(error) from None
    finally:
        call.cancel()  # a no-op once the call has ended


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
