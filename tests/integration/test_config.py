"""Start-up failures: bad configuration, or a port taken, exits 2 naming the variable."""

from __future__ import annotations

import socket
import time

import pytest

from tests.processes import HOST, ServiceFactory

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("module", "variable", "value"),
    [
        ("greeter", "GRPC_PORT", "notaport"),
        ("greeter", "LOG_FORMAT", "xml"),
        ("caller", "GREETER_TIMEOUT", "-1"),
        ("caller", "GRPC_GRACE_PERIOD", "soon"),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(
    services: ServiceFactory, module: str, variable: str, value: str
) -> None:
    service = services.start(module, {variable: value}, wait_healthy=False)
    assert service.wait_exit() == 2, service.log_text()
    lines = service.log_text().splitlines()
    assert lines[0].startswith("invalid configuration for ")
    assert any(line.strip().startswith(f"{variable}:") and repr(value) in line for line in lines)


@pytest.mark.parametrize(
    ("variable", "workers"),
    [
        ("GRPC_PORT", 1),
        ("METRICS_PORT", 1),
        ("ADMIN_PORT", 1),
        # GRPC_WORKERS: the supervisor binds GRPC_PORT's claim and METRICS_PORT itself.
        ("GRPC_PORT", 2),
        ("METRICS_PORT", 2),
    ],
)
def test_a_port_taken_by_another_program_exits_2_naming_the_variable(
    services: ServiceFactory, variable: str, workers: int
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as occupant:
        occupant.bind((HOST, 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        env = {variable: str(port), "GRPC_WORKERS": str(workers)}
        service = services.start("greeter", env, wait_healthy=False)
        assert service.wait_exit() == 2, service.log_text()
    log = service.log_text()
    assert f"cannot listen on {HOST}:{port} ({variable}): " in log
    assert "Traceback" not in log


def test_a_port_taken_by_another_instance_is_refused(services: ServiceFactory) -> None:
    """gRPC turns SO_REUSEPORT on by default: without grpc.so_reuseport=0 a second instance
    would bind the same port silently and take half of the connections."""
    first = services.start_greeter()
    second = services.start("greeter", {"GRPC_PORT": str(first.port)}, wait_healthy=False)
    deadline = time.monotonic() + 15
    while second.returncode is None:
        if "serving" in second.log_messages():
            pytest.fail(f"a second greeter is serving on {first.address} too")
        assert time.monotonic() < deadline, second.log_text()
        time.sleep(0.05)
    assert second.returncode == 2
    assert f"cannot listen on {first.address} (GRPC_PORT)" in second.log_text()
