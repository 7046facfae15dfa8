"""Row 1: the classic helloworld shape, a sync `grpc.server(ThreadPoolExecutor(max_workers=10))`
serving acme.greeter.v1 SayHello with the greeter's own greeting rule and nothing else (no
interceptor, health, reflection, metrics or logging).

    python -m bench.servers.sync_server --port 50061
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from greeter import rules


class SyncGreeter(greeter_pb2_grpc.GreeterServiceServicer):
    """The greeter's RPCs on its greeting rules, without anything else around them."""

    def __init__(self, instance: str) -> None:
        self.instance = instance

    def SayHello(
        self, request: greeter_pb2.SayHelloRequest, context: grpc.ServicerContext
    ) -> greeter_pb2.SayHelloResponse:
        message = rules.greet(request.name, request.language)
        return greeter_pb2.SayHelloResponse(message=message, served_by=self.instance)

    def SayHelloLanguages(
        self, request: greeter_pb2.SayHelloLanguagesRequest, context: grpc.ServicerContext
    ) -> Iterator[greeter_pb2.SayHelloLanguagesResponse]:
        for language, message in rules.greet_in_languages(request.name, request.languages):
            yield greeter_pb2.SayHelloLanguagesResponse(language=language, message=message)

    def GreetMany(
        self,
        request_iterator: Iterator[greeter_pb2.GreetManyRequest],
        context: grpc.ServicerContext,
    ) -> greeter_pb2.GreetManyResponse:
        names = [rules.clean_name(request.name) for request in request_iterator]
        return greeter_pb2.GreetManyResponse(message=rules.greet_everyone(names), count=len(names))

    def Chat(
        self, request_iterator: Iterator[greeter_pb2.ChatRequest], context: grpc.ServicerContext
    ) -> Iterator[greeter_pb2.ChatResponse]:
        for sequence, request in enumerate(request_iterator, start=1):
            yield greeter_pb2.ChatResponse(message=rules.greet(request.name), sequence=sequence)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-workers", type=int, default=10)
    args = parser.parse_args()

    server = grpc.server(ThreadPoolExecutor(max_workers=args.max_workers))
    greeter_pb2_grpc.add_GreeterServiceServicer_to_server(SyncGreeter("bench-sync"), server)
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    print(f"serving on {args.host}:{port}", flush=True)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    stop.wait()
    server.stop(1).wait()


if __name__ == "__main__":
    main()
