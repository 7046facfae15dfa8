"""Greeter and Caller hosted in the test's event loop on real loopback sockets, built by
their own `build` functions as run_service builds them, so TLS, auth, metrics and tracing
can be inspected from inside."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider

from acme_common import Runtime, ServiceHost
from acme_devkit.certificates import CertificateAuthority
from caller.service import build as build_caller
from caller.settings import CallerSettings, GreeterClientSettings
from greeter.service import build as build_greeter
from greeter.settings import GreeterSettings

StartGreeter = Callable[..., Awaitable[ServiceHost]]
StartCaller = Callable[..., Awaitable[ServiceHost]]

BASE: dict[str, Any] = {"grpc_host": "127.0.0.1", "grpc_port": 0, "grpc_grace_period": 1}


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exit_stack:
        yield exit_stack


@pytest.fixture
def start_greeter(stack: AsyncExitStack) -> StartGreeter:
    """Start a greeter with settings overrides; stopped at teardown."""

    async def start(tracer_provider: TracerProvider | None = None, **overrides: Any) -> ServiceHost:
        settings = GreeterSettings(**{**BASE, "instance_name": "greeter-test", **overrides})
        service = build_greeter(settings, Runtime(tracer_provider=tracer_provider))
        host = ServiceHost(settings, [service], tracer_provider)
        await host.start()
        stack.push_async_callback(host.stop)
        return host

    return start


@pytest.fixture
def start_caller(stack: AsyncExitStack) -> StartCaller:
    """Start a caller pointed at a greeter port, with caller and GREETER_* overrides."""

    async def start(
        greeter_port: int,
        tracer_provider: TracerProvider | None = None,
        greeter_client: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> ServiceHost:
        settings = CallerSettings(**{**BASE, "instance_name": "caller-test", **overrides})
        client = GreeterClientSettings(
            **{"target": f"127.0.0.1:{greeter_port}", "timeout": 5, **(greeter_client or {})}
        )
        service = build_caller(settings, Runtime([client], tracer_provider, stack))
        host = ServiceHost(settings, [service], tracer_provider)
        await host.start()
        stack.push_async_callback(host.stop)
        return host

    return start


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority("test", tmp_path)


@pytest.fixture
def other_ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority("other", tmp_path)


def secure_channel(
    port: int,
    ca_file: Path,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca_file.read_bytes(),
        private_key=None if key_file is None else key_file.read_bytes(),
        certificate_chain=None if cert_file is None else cert_file.read_bytes(),
    )
    return grpc.aio.secure_channel(f"localhost:{port}", credentials)
