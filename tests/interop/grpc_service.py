"""grpc.testing.TestService, the server side of gRPC's interop cases
(doc/interop-test-descriptions.md in grpc/grpc, "Server"), as a grpc.aio service on
acme_common's server stack, the way the real services run: `python -m
tests.interop.grpc_service`, configured by the GRPC_* variables with ServerSettings'
defaults, the stubs (grpc_testing_stubs.py) in the directory ACME_INTEROP_STUBS names.

Server features implemented: EmptyCall, UnaryCall, StreamingOutputCall, StreamingInputCall,
FullDuplexCall, HalfDuplexCall, Echo Status, Echo Metadata and ResponseParameters.interval_us;
UnimplementedCall is left to the generated base class (UNIMPLEMENTED). Not implemented, as
in grpc's own Python and Go interop servers (run_interop_tests.py lists them as unimplemented):
CompressedRequest (grpcio does not tell a handler whether a request arrived compressed),
CompressedResponse, CacheableUnaryCall (needs a caching proxy), ORCA and the auth echoes
(cloud credentials).

The stubs exist only at run time, so their modules are typed Any here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from acme_common import Runtime, ServerSettings, Service, ServicerContext, run_service
from tests.interop import grpc_testing_stubs as stubs

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _payload(messages: Any, size: int) -> Any:
    """A COMPRESSABLE payload of `size` zero bytes."""
    return messages.Payload(type=messages.COMPRESSABLE, body=bytes(size))


class TestService:
    """The servicer (add_TestServiceServicer_to_server looks its methods up by name).
    messages: the generated messages_pb2 module, empty: empty_pb2."""

    def __init__(self, messages: Any, empty: Any) -> None:
        self.messages = messages
        self.empty = empty

    async def _echo_metadata(self, context: ServicerContext) -> None:
        """Echo Metadata: the initial key back as initial metadata (now, before any reply),
        the trailing one as trailing metadata."""
        received = dict(context.invocation_metadata() or ())
        if ECHO_INITIAL in received:
            await context.send_initial_metadata(((ECHO_INITIAL, received[ECHO_INITIAL]),))
        if ECHO_TRAILING in received:
            context.set_trailing_metadata(((ECHO_TRAILING, received[ECHO_TRAILING]),))

    async def _echo_status(self, context: ServicerContext, request: Any) -> None:
        """Echo Status: end the call with the request's response_status, when it is not OK."""
        if request.HasField("response_status") and request.response_status.code != 0:
            status = request.response_status
            code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
            await context.abort(code, status.message)

    async def EmptyCall(self, request: Any, context: ServicerContext) -> Any:
        return self.empty.Empty()

    async def UnaryCall(self, request: Any, context: ServicerContext) -> Any:
        await self._echo_metadata(context)
        await self._echo_status(context, request)
        if request.response_type != self.messages.COMPRESSABLE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unsupported response_type")
        return self.messages.SimpleResponse(payload=_payload(self.messages, request.response_size))

    async def _replies(self, request: Any) -> AsyncIterator[Any]:
        """One StreamingOutputCallResponse per ResponseParameters, each after its interval."""
        for parameters in request.response_parameters:
            if parameters.interval_us:
                await asyncio.sleep(parameters.interval_us / 1e6)
            yield self.messages.StreamingOutputCallResponse(
                payload=_payload(self.messages, parameters.size)
            )

    async def StreamingOutputCall(
        self, request: Any, context: ServicerContext
    ) -> AsyncIterator[Any]:
        await self._echo_metadata(context)
        await self._echo_status(context, request)
        async for reply in self._replies(request):
            yield reply

    async def StreamingInputCall(
        self, requests: AsyncIterator[Any], context: ServicerContext
    ) -> Any:
        total = 0
        async for request in requests:
            total += len(request.payload.body)
        return self.messages.StreamingInputCallResponse(aggregated_payload_size=total)

    async def FullDuplexCall(
        self, requests: AsyncIterator[Any], context: ServicerContext
    ) -> AsyncIterator[Any]:
        # Before the first request: the shared stack's check of how the request stream ended
        # (acme_common's stream_end) sends the initial metadata itself after it.
        await self._echo_metadata(context)
        async for request in requests:
            await self._echo_status(context, request)
            async for reply in self._replies(request):
                yield reply

    async def HalfDuplexCall(
        self, requests: AsyncIterator[Any], context: ServicerContext
    ) -> AsyncIterator[Any]:
        await self._echo_metadata(context)
        received = [request async for request in requests]
        for request in received:
            await self._echo_status(context, request)
            async for reply in self._replies(request):
                yield reply


def build(_settings: ServerSettings, _runtime: Runtime) -> Service:
    """The TestService servicer, as run_service hosts it."""
    directory = Path(os.environ[stubs.STUBS_VARIABLE])
    messages = stubs.load(directory, "messages_pb2")
    test = stubs.load(directory, "test_pb2")
    test_grpc = stubs.load(directory, "test_pb2_grpc")
    # The generated base class answers the methods TestService leaves out (UNIMPLEMENTED).
    servicer = type("Servicer", (TestService, test_grpc.TestServiceServicer), {})
    return Service.of(
        test.DESCRIPTOR.services_by_name["TestService"],
        servicer(messages, stubs.load(directory, "empty_pb2")),
        test_grpc.add_TestServiceServicer_to_server,
    )


def main() -> None:
    run_service("interop", ServerSettings, build)


if __name__ == "__main__":
    main()
