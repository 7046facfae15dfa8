"""Row 2: a bare `grpc.aio` server with the same unary SayHello handler as row 1 (the
greeter's own greeting rule) and nothing else: no interceptor, health, reflection, metrics,
logging or auth. The floor our production stack (row 3) is compared against.

    python -m bench.servers.aio_server --port 50062
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from greeter import greetings

Context = grpc.aio.ServicerContext[Any, Any]


class AioGreeter(greeter_pb2_grpc.GreeterServiceServicer):
    """The greeter's RPCs on its greeting rules, without anything else around them."""

    def __init__(self, instance: str) -> None:
        self.instance = instance

    async def SayHello(
        self, request: greeter_pb2.SayHelloRequest, context: Context
    ) -> greeter_pb2.SayHelloResponse:
        message = greetings.greet(request.name, request.language)
        return greeter_pb2.SayHelloResponse(message=message, served_by=self.instance)

    async def SayHelloLanguages(
        self, request: greeter_pb2.SayHelloLanguagesRequest, context: Context
    ) -> AsyncIterator[greeter_pb2.SayHelloLanguagesResponse]:
        for language, message in greetings.greet_in_languages(request.name, request.languages):
            yield greeter_pb2.SayHelloLanguagesResponse(language=language, message=message)

    async def GreetMany(
        self, request_iterator: AsyncIterator[greeter_pb2.GreetManyRequest], context: Context
    ) -> greeter_pb2.GreetManyResponse:
        names = [greetings.validate_name(request.name) async for request in request_iterator]
        return greeter_pb2.GreetManyResponse(
            message=greetings.greet_everyone(names), count=len(names)
        )

    async def Chat(
        self, request_iterator: AsyncIterator[greeter_pb2.ChatRequest], context: Context
    ) -> AsyncIterator[greeter_pb2.ChatResponse]:
        sequence = 0
        async for request in request_iterator:
            sequence += 1
            yield greeter_pb2.ChatResponse(message=greetings.greet(request.name), sequence=sequence)


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server()
    greeter_pb2_grpc.add_GreeterServiceServicer_to_server(AioGreeter("bench-aio"), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"serving on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
