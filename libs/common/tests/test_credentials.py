"""security: TLS credentials from settings, only when files are configured."""

from __future__ import annotations

from pathlib import Path

import grpc

from acme_common._settings import ClientSettings, ServerSettings
from acme_common._tls.credentials import channel_credentials, server_credentials
from acme_devkit.certificates import CertificateAuthority


def test_plaintext_without_files(tmp_path: Path) -> None:
    assert server_credentials(ServerSettings()) is None
    assert channel_credentials(ClientSettings(target="x:1")) is None


def test_tls_and_mtls_credentials_from_files(tmp_path: Path) -> None:
    ca = CertificateAuthority("unit", tmp_path)
    server, client = ca.issue("server", server=True), ca.issue("client", server=False)
    tls = ServerSettings(tls_cert_file=server.cert, tls_key_file=server.key)
    assert isinstance(server_credentials(tls), grpc.ServerCredentials)
    mtls = ServerSettings(
        tls_cert_file=server.cert, tls_key_file=server.key, tls_client_ca_file=ca.pem
    )
    assert isinstance(server_credentials(mtls), grpc.ServerCredentials)
    settings = ClientSettings(
        target="x:1", tls_ca_file=ca.pem, tls_cert_file=client.cert, tls_key_file=client.key
    )
    assert isinstance(channel_credentials(settings), grpc.ChannelCredentials)
