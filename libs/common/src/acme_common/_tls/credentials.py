"""TLS/mTLS credentials from settings (bearer tokens: auth.py)."""

from __future__ import annotations

import grpc

from acme_common._settings import ClientSettings, ServerSettings
from acme_common._tls.certificates import reloading_server_credentials


def server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    """TLS credentials when a certificate is configured (mTLS with a client CA), else None;
    renewed files are picked up by new connections (certificates.py)."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    return reloading_server_credentials(
        settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    )


def channel_credentials(settings: ClientSettings) -> grpc.ChannelCredentials | None:
    """TLS credentials (with a client certificate for mTLS) when a CA is configured, else None."""
    if settings.tls_ca_file is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=settings.tls_ca_file.read_bytes(),
        private_key=None if settings.tls_key_file is None else settings.tls_key_file.read_bytes(),
        certificate_chain=(
            None if settings.tls_cert_file is None else settings.tls_cert_file.read_bytes()
        ),
    )
