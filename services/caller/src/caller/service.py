"""gRPC wiring of Caller: every RPC asks Greeter, with a deadline, over one shared channel."""

from __future__ import annotations

import asyncio

import grpc

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import Runtime, Service, ServicerContext, outgoing_timeout
from caller.rules import check_names, greeter_failure_message, translate_greeter_error
from caller.settings import CallerSettings, GreeterClientSettings

GREETER_SERVICE = greeter_pb2.DESCRIPTOR.services_by_name["GreeterService"].full_name


class CallerService(caller_pb2_grpc.CallerServiceServicer):
    """Implements acme.caller.v1.CallerService on top of a Greeter stub."""

    def __init__(
        self,
        greeter: greeter_pb2_grpc.GreeterServiceAsyncStub,
        default_timeout: float,
        max_names: int,
        fanout_concurrency: int,
    ) -> None:
        self.greeter = greeter
        self.default_timeout = default_timeout
        self.max_names = max_names
        self.fanout_concurrency = fanout_concurrency

    async def Introduce(
        self, request: caller_pb2.IntroduceRequest, context: ServicerContext
    ) -> caller_pb2.IntroduceResponse:
        try:
            reply = await self.greeter.SayHello(
                greeter_pb2.SayHelloRequest(name=request.name, language=request.language),
                timeout=outgoing_timeout(context, self.default_timeout),
            )
        except grpc.aio.AioRpcError as error:
            raise translate_greeter_error(error) from error
        return caller_pb2.IntroduceResponse(message=reply.message, greeter_instance=reply.served_by)

    async def IntroduceAll(
        self, request: caller_pb2.IntroduceAllRequest, context: ServicerContext
    ) -> caller_pb2.IntroduceAllResponse:
        check_names(request.names, self.max_names)
        count = len(request.names)
        timeout = outgoing_timeout(context, self.default_timeout)
        limit = asyncio.Semaphore(self.fanout_concurrency)

        async def introduce(name: str) -> caller_pb2.Introduction:
            async with limit:
                try:
                    reply = await self.greeter.SayHello(
                        greeter_pb2.SayHelloRequest(name=name, language=request.language),
                        timeout=timeout,
                    )
                except grpc.aio.AioRpcError as error:
                    return caller_pb2.Introduction(
                        name=name,
                        error_code=error.code().name,
                        error_message=greeter_failure_message(error),
                    )
            return caller_pb2.Introduction(
                name=name, message=reply.message, greeter_instance=reply.served_by
            )

        introductions = await asyncio.gather(*(introduce(name) for name in request.names))
        failed = sum(1 for item in introductions if item.error_code)
        return caller_pb2.IntroduceAllResponse(
            introductions=introductions, succeeded=count - failed, failed=failed
        )


def build(settings: CallerSettings, runtime: Runtime) -> Service:
    """Caller's servicer on one long-lived channel to Greeter (round_robin, retries of
    GreeterService's calls, TLS, token, tracing), as run_service hosts it."""
    greeter = runtime.client(GreeterClientSettings)
    channel = runtime.channel(GreeterClientSettings, retry_services=[GREETER_SERVICE])
    servicer = CallerService(
        greeter_pb2_grpc.GreeterServiceStub(channel),
        default_timeout=greeter.timeout,
        max_names=settings.caller_max_names,
        fanout_concurrency=settings.caller_fanout_concurrency,
    )
    return Service.of(
        caller_pb2.DESCRIPTOR.services_by_name["CallerService"],
        servicer,
        caller_pb2_grpc.add_CallerServiceServicer_to_server,
    )
