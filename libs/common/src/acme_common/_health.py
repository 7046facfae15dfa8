"""grpc.health.v1 for a server that stops gracefully: grpcio-health-checking's asyncio
servicer, whose open Watch streams end (status OK, after sending NOT_SERVING) once the server
stops taking calls, instead of holding the shutdown for the whole grace period."""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health, health_pb2

_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class HealthServicer(health.aio.HealthServicer):  # type: ignore[misc,name-defined]
    """The stock asyncio servicer plus end_watches().

    The stock Watch (grpc_health/v1/_async.py) waits for the next change forever, so
    server.stop(grace) waited out the grace and then cut watchers with UNAVAILABLE. Call
    end_watches() once the server refuses new calls (right after server.stop() began), not at
    enter_graceful_shutdown(): grpc's client-side health checking restarts a Watch that ended
    after a response at once (src/core/load_balancing/health_check_client.cc), so ending them
    while the server still accepts calls makes every health-checking client re-Watch in a
    tight loop for the whole drain delay (1,516 calls in 1 s, measured).

    Watch is upstream's loop (grpcio-health-checking 1.85) plus the `_ending` check; it uses
    the base class's state (_server_status, _server_watchers, _watcher_count_by_service),
    which tests/integration/test_shutdown.py covers.
    """

    _ending = False

    async def end_watches(self) -> None:
        """Make every open Watch send the current status if it has not, then end with OK."""
        self._ending = True
        for condition in list(self._server_watchers.values()):
            async with condition:
                condition.notify_all()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        service = request.service
        condition = self._server_watchers[service]
        self._watcher_count_by_service[service] += 1
        last_status = None
        try:
            async with condition:
                while True:
                    status = self._server_status.get(service, _UNKNOWN)
                    if status != last_status:
                        await context.write(health_pb2.HealthCheckResponse(status=status))
                    last_status = status
                    if self._ending:
                        return
                    await condition.wait()
        finally:
            self._watcher_count_by_service[service] -= 1
            if self._watcher_count_by_service[service] == 0:
                del self._server_watchers[service]
                del self._watcher_count_by_service[service]
