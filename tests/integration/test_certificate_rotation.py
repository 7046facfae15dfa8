"""Certificate rotation without a restart: the files are replaced as a Kubernetes Secret
update replaces them (an atomic swap of the directory they are read through); new connections
get the new certificate, a call open on the old one completes, and a broken replacement is
rejected with an ERROR line while the last good certificate stays in use."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
from functools import partial
from pathlib import Path

import grpc
import pytest

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import check_health
from acme_devkit.certificates import CertificateAuthority, KeyPair
from tests.processes import HOST, RPC_TIMEOUT, ServiceFactory, free_port

pytestmark = pytest.mark.integration


def install(pair: KeyPair, directory: Path) -> Path:
    directory.mkdir()
    shutil.copy(pair.cert, directory / "tls.crt")
    shutil.copy(pair.key, directory / "tls.key")
    return directory


def swap(link: Path, target: Path) -> None:
    """Point link at target atomically (rename over it), as kubelet updates a Secret volume."""
    temporary = link.with_name(link.name + ".new")
    temporary.symlink_to(target)
    os.replace(temporary, link)


def served_certificate(port: int, ca: Path) -> bytes:
    """The DER certificate a new TLS connection to 127.0.0.1:port is shown."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((HOST, port), timeout=RPC_TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def admin_health(address: str) -> str | None:
    status = check_health(address, "", timeout=1.0)
    return None if status == "SERVING" else f"admin health: {status}"


def der(pair: KeyPair) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pair.cert.read_text())


async def test_renewed_certificates_are_served_without_a_restart(
    services: ServiceFactory, tmp_path: Path
) -> None:
    ca = CertificateAuthority("rotation", tmp_path)
    first, second, other = (ca.issue(name, server=True) for name in ("first", "second", "other"))
    link = tmp_path / "current"
    link.symlink_to(install(first, tmp_path / "a"))
    admin = free_port()  # plaintext health for the harness: the main port speaks only TLS
    greeter = services.start(
        "greeter",
        {
            "TLS_CERT_FILE": str(link / "tls.crt"),
            "TLS_KEY_FILE": str(link / "tls.key"),
            "ADMIN_PORT": str(admin),
        },
        wait_healthy=False,
    )
    greeter.wait_ready(partial(admin_health, f"{HOST}:{admin}"))
    assert served_certificate(greeter.port, ca.pem) == der(first)
    credentials = grpc.ssl_channel_credentials(ca.pem.read_bytes())
    async with grpc.aio.secure_channel(f"localhost:{greeter.port}", credentials) as channel:
        chat = greeter_pb2_grpc.GreeterServiceStub(channel).Chat(None, timeout=RPC_TIMEOUT * 4)
        await chat.write(greeter_pb2.ChatRequest(name="Ada"))
        assert await chat.read() == greeter_pb2.ChatResponse(message="Hello, Ada!", sequence=1)

        swap(link, install(second, tmp_path / "b"))
        assert served_certificate(greeter.port, ca.pem) == der(second)
        await chat.write(greeter_pb2.ChatRequest(name="Alan"))  # still on the first one
        assert await chat.read() == greeter_pb2.ChatResponse(message="Hello, Alan!", sequence=2)

        # A broken replacement: the key of another certificate.
        broken = install(second, tmp_path / "c")
        shutil.copy(other.key, broken / "tls.key")
        swap(link, broken)
        assert served_certificate(greeter.port, ca.pem) == der(second)
        await chat.done_writing()
        assert await chat.code() == grpc.StatusCode.OK
    record = await greeter.wait_for_log(
        "renewed TLS certificate rejected; keeping the previous one"
    )
    assert record["level"] == "ERROR"
    await asyncio.sleep(0)
    assert greeter.returncode is None
