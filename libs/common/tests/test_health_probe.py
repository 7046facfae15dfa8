"""health_probe: what the container HEALTHCHECK and the stack runner ask a server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from acme_common import _health_probe as health_probe
from acme_common import check_health


@pytest.fixture
def serving() -> Iterator[tuple[str, health.HealthServicer]]:
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def test_the_probe_reports_the_status_name_and_exits_0_only_when_serving(
    serving: tuple[str, health.HealthServicer],
) -> None:
    address, servicer = serving
    assert check_health(address) == "SERVING"
    assert health_probe.main(["--addr", address]) == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert check_health(address) == "NOT_SERVING"
    assert health_probe.main(["--addr", address]) == 1


def test_an_unreachable_server_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert check_health(f"127.0.0.1:{port}", timeout=0.5) == "UNAVAILABLE"
    monkeypatch.setenv("GRPC_PORT", str(port))  # the default address, as images set it
    assert health_probe.main(["--timeout", "0.5"]) == 1


def test_the_default_address_is_the_admin_port_when_there_is_one(
    serving: tuple[str, health.HealthServicer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container whose main port speaks TLS stays healthy: the image's HEALTHCHECK (no
    --addr) asks the plaintext ADMIN_PORT; the main port here accepts no plaintext probe."""
    address, _ = serving
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("GRPC_PORT", str(closed.getsockname()[1]))
        assert health_probe.main(["--timeout", "0.5"]) == 1
        monkeypatch.setenv("ADMIN_PORT", address.rsplit(":", 1)[1])
        assert health_probe.main(["--timeout", "0.5"]) == 0
