"""Row 9: the other peer a user could pick, Connect's Python runtime (connectrpc, the library
the gateway is built on) under hypercorn, serving SayHello over gRPC (h2c) with the greeter's
own servicer method and nothing else around it (no interceptor, health, metrics or logging).
The endpoint table is built by hand, as connectrpc's generated code would build it.

    python -m bench.servers.connect_server --port 50064
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, cast

from connectrpc.compat import google_protobuf_codecs
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.server import ConnectASGIApplication, Endpoint
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from acme.greeter.v1 import greeter_pb2
from bench.servers import cli
from greeter.service import GreeterService

SAY_HELLO = "/acme.greeter.v1.GreeterService/SayHello"


class GreeterApplication(ConnectASGIApplication[GreeterService]):
    """connectrpc's ASGI application for acme.greeter.v1.GreeterService (what its generated
    code subclasses)."""

    @property
    def path(self) -> str:
        return "/acme.greeter.v1.GreeterService"


def application() -> GreeterApplication:
    """The application with one endpoint: SayHello, answered by GreeterService."""
    servicer = GreeterService("bench-connect", max_stream_names=10_000)
    info: MethodInfo[greeter_pb2.SayHelloRequest, greeter_pb2.SayHelloResponse] = MethodInfo(
        name="SayHello",
        service_name="acme.greeter.v1.GreeterService",
        input=greeter_pb2.SayHelloRequest,
        output=greeter_pb2.SayHelloResponse,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=StreamType.UNARY,
    )

    async def say_hello(request: greeter_pb2.SayHelloRequest, _ctx: Any) -> Any:
        # SayHello reads nothing from its grpc.aio context: connectrpc has none to give it.
        return await servicer.SayHello(request, cast("Any", None))

    return GreeterApplication(
        service=servicer,
        endpoints=lambda _: {SAY_HELLO: Endpoint.unary(method=info, function=say_hello)},
        codecs=google_protobuf_codecs(),
    )


async def serve(host: str, port: int) -> None:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    # As the gateway: hypercorn's default rotation (1,000 requests) drops the streams in flight.
    config.keep_alive_max_requests = sys.maxsize
    stop = cli.stop_requested()
    print(f"serving on {host}:{port}", flush=True)
    await hypercorn_serve(cast("Any", application()), config, shutdown_trigger=stop.wait)


def main() -> None:
    args = cli.arguments(__doc__.splitlines()[0])
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
