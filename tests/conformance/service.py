"""connectrpc.conformance.v1.ConformanceService as a grpc.aio service on acme_common's server
stack (run_service: the shared interceptor, health, graceful shutdown), the way the real
services run: `python -m tests.conformance.service`, configured by GRPC_* variables, with the
generated stubs (tests/conformance/stubs.py) first on PYTHONPATH.

It answers as the suite's docs say (docs/testing_servers.md of the module, and its reference
server): each request's response definition gives the response headers (sent as initial
metadata), trailers (trailing metadata), data, delay and error (code, message, details: a
google.rpc.Status in grpc-status-details-bin); every payload echoes the request's metadata,
timeout and messages. The service sees gRPC only: what the client sent over HTTP reaches it
through the gateway, which is what the suite tests.

The stubs exist only at run time, so their modules are typed Any here.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2

from acme_common import (
    Runtime,
    ServerSettings,
    Service,
    ServicerContext,
    reject_malformed,
    run_service,
)
from tests.conformance import CLIENT_TIMEOUTS_BELOW, stubs

Pairs = tuple[tuple[str, str | bytes], ...]

# The suite's Code enum numbers the codes as gRPC does (CODE_CANCELED = 1, ...).
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _text(value: str | bytes) -> str:
    """A metadata value as HTTP carried it: -bin values are unpadded base64."""
    return value if isinstance(value, str) else base64.b64encode(value).decode().rstrip("=")


def _pairs(headers: Sequence[Any]) -> Pairs:
    """The suite's Header messages as metadata pairs (a -bin header's values are base64)."""
    pairs: list[tuple[str, str | bytes]] = []
    for header in headers:
        name = header.name.lower()
        for value in header.value:
            if name.endswith("-bin"):
                pairs.append((name, base64.b64decode(value + "=" * (-len(value) % 4))))
            else:
                pairs.append((name, value))
    return tuple(pairs)


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


async def _send_headers(context: ServicerContext, definition: Any) -> None:
    """The definition's response headers, as initial metadata (none: grpc sends them empty
    with the first message or the status)."""
    headers = _pairs(definition.response_headers)
    if headers:
        await context.send_initial_metadata(headers)


async def _sleep_ms(milliseconds: int) -> None:
    if milliseconds:
        await asyncio.sleep(milliseconds / 1000)


class ConformanceService:
    """The servicer (add_ConformanceServiceServicer_to_server looks its methods up by name).
    messages: the generated service_pb2 module."""

    def __init__(self, messages: Any) -> None:
        self.messages = messages

    def _request_info(self, context: ServicerContext, requests: Sequence[Any]) -> Any:
        """What the service saw of the request: its metadata, its deadline, its messages."""
        info = self.messages.ConformancePayload.RequestInfo(
            requests=[_packed(request) for request in requests]
        )
        grouped: dict[str, list[str]] = {}
        for key, value in context.invocation_metadata() or ():
            grouped.setdefault(key, []).append(_text(value))
        for key, values in grouped.items():
            info.request_headers.add(name=key, value=values)
        remaining = context.time_remaining()
        if remaining is not None and remaining < CLIENT_TIMEOUTS_BELOW:
            info.timeout_ms = int(remaining * 1000)
        return info

    async def _fail(
        self, context: ServicerContext, error: Any, echo: Any | None, trailers: Pairs
    ) -> None:
        """End the call with the definition's error: its code and message, its details plus
        the request info (echo) as a google.rpc.Status, and the trailers."""
        details = [*error.details, *([_packed(echo)] if echo is not None else [])]
        code = _CODES.get(error.code) or grpc.StatusCode.UNKNOWN
        status = status_pb2.Status(code=code.value[0], message=error.message, details=details)
        metadata = (*trailers, ("grpc-status-details-bin", status.SerializeToString()))
        await context.abort(code, error.message, metadata)

    async def _unary(
        self,
        context: ServicerContext,
        definition: Any | None,
        requests: Sequence[Any],
        response: Any,
        *,
        headers_sent: bool = False,
    ) -> Any:
        """Unary, IdempotentUnary and ClientStream: one response (of type `response`), or
        the error the definition (a UnaryResponseDefinition, None when unset) asks for."""
        info = self._request_info(context, requests)
        payload = self.messages.ConformancePayload(request_info=info)
        if definition is None:
            return response(payload=payload)
        trailers = _pairs(definition.response_trailers)
        if not headers_sent:
            await _send_headers(context, definition)
        await _sleep_ms(definition.response_delay_ms)
        if definition.WhichOneof("response") == "error":
            await self._fail(context, definition.error, info, trailers)
        context.set_trailing_metadata(trailers)
        payload.data = definition.response_data
        return response(payload=payload)

    async def Unary(self, request: Any, context: ServicerContext) -> Any:
        definition = (
            request.response_definition if request.HasField("response_definition") else None
        )
        return await self._unary(context, definition, [request], self.messages.UnaryResponse)

    async def IdempotentUnary(self, request: Any, context: ServicerContext) -> Any:
        definition = (
            request.response_definition if request.HasField("response_definition") else None
        )
        response = self.messages.IdempotentUnaryResponse
        return await self._unary(context, definition, [request], response)

    async def ClientStream(self, requests: AsyncIterator[Any], context: ServicerContext) -> Any:
        received: list[Any] = []
        definition: Any | None = None
        async for request in requests:
            reject_malformed(request)
            received.append(request)
            if len(received) == 1 and request.HasField("response_definition"):
                definition = request.response_definition
                # Now, not after the request stream: the shared stack's check of how that
                # stream ended (acme_common._call.stream_end) sends the initial metadata then.
                await _send_headers(context, definition)
        return await self._unary(
            context, definition, received, self.messages.ClientStreamResponse, headers_sent=True
        )

    async def ServerStream(self, request: Any, context: ServicerContext) -> AsyncIterator[Any]:
        if not request.HasField("response_definition"):
            return
        definition = request.response_definition
        info = self._request_info(context, [request])
        trailers = _pairs(definition.response_trailers)
        context.set_trailing_metadata(trailers)
        # The headers go at once, before any delay, so that the client can read them.
        await context.send_initial_metadata(_pairs(definition.response_headers))
        sent = 0
        for data in definition.response_data:
            payload = self.messages.ConformancePayload(data=data)
            if sent == 0:
                payload.request_info.CopyFrom(info)
            await _sleep_ms(definition.response_delay_ms)
            yield self.messages.ServerStreamResponse(payload=payload)
            sent += 1
        if definition.HasField("error"):
            await self._fail(context, definition.error, info if sent == 0 else None, trailers)

    async def BidiStream(
        self, requests: AsyncIterator[Any], context: ServicerContext
    ) -> AsyncIterator[Any]:
        definition: Any | None = None
        full_duplex = False
        received: list[Any] = []  # since the last response (full duplex), or all (half)
        sent = 0
        first = True
        async for request in requests:
            reject_malformed(request)
            received.append(request)
            if first:
                first = False
                full_duplex = request.full_duplex
                if request.HasField("response_definition"):
                    definition = request.response_definition
                    context.set_trailing_metadata(_pairs(definition.response_trailers))
                    # Now, half duplex too: after the request stream, the shared stack's
                    # check of how it ended (acme_common._call.stream_end) sends them first. The
                    # gateway sends the client nothing before the first reply anyway.
                    await context.send_initial_metadata(_pairs(definition.response_headers))
            if not full_duplex:
                continue
            if definition is None or sent >= len(definition.response_data):
                break
            response = self._bidi_response(context, definition, sent, received)
            await _sleep_ms(definition.response_delay_ms)
            yield response
            sent += 1
            received = []
        if definition is None:
            return
        while sent < len(definition.response_data):
            response = self._bidi_response(
                context, definition, sent, received if sent == 0 else None
            )
            await _sleep_ms(definition.response_delay_ms)
            yield response
            sent += 1
        if definition.HasField("error"):
            echo = self._request_info(context, received) if sent == 0 else None
            await self._fail(context, definition.error, echo, _pairs(definition.response_trailers))

    def _bidi_response(
        self, context: ServicerContext, definition: Any, sent: int, received: list[Any] | None
    ) -> Any:
        """The reply number `sent`: the first one says all about the request, later ones
        (full duplex, in step with the requests) the requests since the previous one, or
        (after the request stream) nothing."""
        payload = self.messages.ConformancePayload(data=definition.response_data[sent])
        if sent == 0:
            payload.request_info.CopyFrom(self._request_info(context, received or []))
        elif received is not None:
            payload.request_info.requests.extend(_packed(request) for request in received)
        return self.messages.BidiStreamResponse(payload=payload)

    async def Unimplemented(self, request: Any, context: ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Unimplemented is not implemented")


def build(_settings: ServerSettings, _runtime: Runtime) -> Service:
    """The conformance servicer, as run_service hosts it; the stubs are the directory in
    ACME_CONFORMANCE_STUBS, else the first PYTHONPATH entry."""
    directory = (
        os.environ.get(stubs.STUBS_VARIABLE) or os.environ["PYTHONPATH"].split(os.pathsep)[0]
    )
    messages = stubs.load(Path(directory), "service_pb2")
    grpc_stubs = stubs.load(Path(directory), "service_pb2_grpc")
    return Service.of(
        messages.DESCRIPTOR.services_by_name["ConformanceService"],
        ConformanceService(messages),
        grpc_stubs.add_ConformanceServiceServicer_to_server,
    )


def main() -> None:
    run_service("conformance", ServerSettings, build)


if __name__ == "__main__":
    main()
