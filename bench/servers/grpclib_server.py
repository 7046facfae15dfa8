"""Row 8: the peer a user could pick instead of grpcio: grpclib (pure-Python asyncio gRPC on
the h2 library), serving SayHello with the greeter's own servicer method, nothing else around
it (no interceptor, health, reflection, metrics or logging). grpclib maps methods itself
(`__mapping__`), so no grpclib code generation is needed.

    python -m bench.servers.grpclib_server --port 50063
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from grpclib.const import Cardinality, Handler
from grpclib.server import Server, Stream

from acme.greeter.v1 import greeter_pb2
from bench.servers import cli
from greeter.service import GreeterService

SAY_HELLO = "/acme.greeter.v1.GreeterService/SayHello"


class GrpclibGreeter:
    """acme.greeter.v1 SayHello on grpclib, answered by GreeterService.SayHello."""

    def __init__(self) -> None:
        self.servicer = GreeterService("bench-grpclib", max_stream_names=10_000)

    async def say_hello(
        self, stream: Stream[greeter_pb2.SayHelloRequest, greeter_pb2.SayHelloResponse]
    ) -> None:
        request = await stream.recv_message()
        if request is None:
            return
        # SayHello reads nothing from its grpc.aio context: grpclib has none to give it.
        await stream.send_message(await self.servicer.SayHello(request, cast("Any", None)))

    def __mapping__(self) -> dict[str, Handler]:
        return {
            SAY_HELLO: Handler(
                self.say_hello,
                Cardinality.UNARY_UNARY,
                greeter_pb2.SayHelloRequest,
                greeter_pb2.SayHelloResponse,
            )
        }


async def serve(host: str, port: int) -> None:
    server = Server([GrpclibGreeter()])
    await server.start(host, port)
    print(f"serving on {host}:{port}", flush=True)
    stop = cli.stop_requested()
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> None:
    args = cli.arguments(__doc__.splitlines()[0])
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
