"""health.HealthServicer on a real loopback server: watches follow the drain and then end."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from acme_common._health import HealthServicer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
EOF_MARK: object = grpc.aio.EOF  # type: ignore[attr-defined]


async def test_open_watches_see_not_serving_then_end_with_ok() -> None:
    servicer = HealthServicer()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=""), timeout=10
            )
            assert (await watch.read()).status == SERVING
            await servicer.enter_graceful_shutdown()
            assert (await watch.read()).status == NOT_SERVING
            await servicer.end_watches()
            assert await watch.read() is EOF_MARK
            assert await watch.code() == grpc.StatusCode.OK
    finally:
        await server.stop(None)
