"""Row 2: a bare `grpc.aio` server hosting the greeter's own servicer and nothing else: no
interceptor, health, reflection, metrics, logging or auth. The floor our production stack
(row 3) is compared against.

    python -m bench.servers.aio_server --port 50062 [--loop uvloop]

Row 2 runs on the default asyncio loop (the issue's baseline); row 2u is the same server on
uvloop, so a gain of our stack from uvloop is not mistaken for a gain over grpc.aio.
"""

from __future__ import annotations

import asyncio

import grpc

from acme.greeter.v1 import greeter_pb2_grpc
from acme_common import loop_factory
from bench.servers import cli
from greeter.service import GreeterService


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server()
    # The greeter's own servicer (its rules, no libs/common around it).
    servicer = GreeterService("bench-aio", max_stream_names=10_000)
    greeter_pb2_grpc.add_GreeterServiceServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"serving on {host}:{bound}", flush=True)
    stop = cli.stop_requested()
    await stop.wait()
    await server.stop(1)


def main() -> None:
    args = cli.arguments(__doc__.splitlines()[0], loop_choice=True)
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
