"""The admin (maintenance) services, the pattern of grpc's xds example: grpc.health.v1,
server reflection and channelz (grpcio-channelz), on an optional plaintext ADMIN_PORT meant
for the cluster network only (probes, debugging), and on the main port unless
ADMIN_SERVICES_ON_MAIN_PORT=false (they reveal the API and the server's connections)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_channelz.v1 import channelz
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from acme_common._listen import cannot_listen

CHANNELZ_SERVICE = "grpc.channelz.v1.Channelz"


def add_introspection(server: grpc.aio.Server, names: Sequence[str]) -> None:
    """Reflection (of names, health, reflection and channelz) and channelz on server."""
    channelz.add_channelz_servicer(server)  # type: ignore[arg-type]  # the aio server too
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME, CHANNELZ_SERVICE], server
    )


class AdminServer:
    """A second, plaintext grpc.aio server in the process: health (the main server's
    servicer, so it follows the drain), reflection and channelz, under the main server's
    limits (options, maximum_concurrent_rpcs): it is reachable without a token."""

    def __init__(
        self,
        health_servicer: object,
        names: Sequence[str],
        options: Sequence[tuple[str, int]],
        maximum_concurrent_rpcs: int,
    ) -> None:
        self.server = grpc.aio.server(
            options=list(options), maximum_concurrent_rpcs=maximum_concurrent_rpcs
        )
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, self.server)
        add_introspection(self.server, names)
        self.port = 0

    def bind(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); the port. Exit 2 naming ADMIN_PORT when it
        cannot."""
        try:
            self.port = self.server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as error:
            cannot_listen("ADMIN_PORT", f"{host}:{port}", error)
        return self.port

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop(None)
