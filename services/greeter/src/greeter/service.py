"""gRPC wiring of Greeter: translates messages to and from the greeting rules (rules.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import ResourceExhausted, Runtime, Service, ServicerContext
from greeter import rules
from greeter.settings import GreeterSettings


class GreeterService(greeter_pb2_grpc.GreeterServiceServicer):
    """Implements acme.greeter.v1.GreeterService."""

    def __init__(self, instance: str, max_stream_names: int) -> None:
        self.instance = instance
        self.max_stream_names = max_stream_names

    async def SayHello(
        self, request: greeter_pb2.SayHelloRequest, context: ServicerContext
    ) -> greeter_pb2.SayHelloResponse:
        message = rules.greet(request.name, request.language)
        return greeter_pb2.SayHelloResponse(message=message, served_by=self.instance)

    async def SayHelloLanguages(
        self, request: greeter_pb2.SayHelloLanguagesRequest, context: ServicerContext
    ) -> AsyncIterator[greeter_pb2.SayHelloLanguagesResponse]:
        for language, message in rules.greet_in_languages(request.name, request.languages):
            yield greeter_pb2.SayHelloLanguagesResponse(language=language, message=message)

    async def GreetMany(
        self,
        request_iterator: AsyncIterator[greeter_pb2.GreetManyRequest],
        context: ServicerContext,
    ) -> greeter_pb2.GreetManyResponse:
        names: list[str] = []
        async for request in request_iterator:
            self._check_stream_length(len(names))
            names.append(rules.clean_name(request.name))
        message = rules.greet_everyone(names)
        return greeter_pb2.GreetManyResponse(message=message, count=len(names))

    async def Chat(
        self, request_iterator: AsyncIterator[greeter_pb2.ChatRequest], context: ServicerContext
    ) -> AsyncIterator[greeter_pb2.ChatResponse]:
        sequence = 0
        async for request in request_iterator:
            self._check_stream_length(sequence)
            sequence += 1
            yield greeter_pb2.ChatResponse(message=rules.greet(request.name), sequence=sequence)

    def _check_stream_length(self, received: int) -> None:
        # A server setting (GREETER_MAX_STREAM_NAMES), so not a rule of the contract.
        if received >= self.max_stream_names:
            raise ResourceExhausted(f"a stream may carry at most {self.max_stream_names} names")


def build(settings: GreeterSettings, _runtime: Runtime) -> Service:
    """Greeter's servicer, as run_service hosts it."""
    servicer = GreeterService(settings.instance_name, settings.greeter_max_stream_names)
    return Service.of(
        greeter_pb2.DESCRIPTOR.services_by_name["GreeterService"],
        servicer,
        greeter_pb2_grpc.add_GreeterServiceServicer_to_server,
    )
