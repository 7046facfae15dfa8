"""Server certificates that can be renewed without a restart: grpc asks for the current
configuration at every new TLS handshake (grpc.dynamic_ssl_server_credentials); the files
are read again when they changed, checked (the key must match the certificate, as Python's
ssl module checks), and a broken replacement is logged as an ERROR and ignored: new
connections keep the last good certificate. Connections already open keep theirs."""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from pathlib import Path

import grpc

log = logging.getLogger("acme.tls")


def _stamp(paths: list[Path]) -> tuple[tuple[int, int, int], ...]:
    """What changes when a file is replaced or rewritten (inode, size, mtime in ns)."""
    stamps = []
    for path in paths:
        status = path.stat()
        stamps.append((status.st_ino, status.st_size, status.st_mtime_ns))
    return tuple(stamps)


def _check_pair(certificate: bytes, key: bytes) -> None:
    """ssl.SSLError unless key is the private key of certificate (both PEM)."""
    with tempfile.TemporaryDirectory() as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_path.write_bytes(certificate)
        key_path.write_bytes(key)
        os.chmod(key_path, 0o600)
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)


class ReloadingCertificates:
    """The configuration grpc fetches per handshake: re-read when a file changed."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self.paths = [cert, key, *([client_ca] if client_ca else [])]
        self.stamp = _stamp(self.paths)
        self.current = self._load()  # at start a broken pair is fatal: raises

    def _load(self) -> grpc.ServerCertificateConfiguration:
        cert, key = self.paths[0].read_bytes(), self.paths[1].read_bytes()
        _check_pair(cert, key)
        client_ca = self.paths[2].read_bytes() if len(self.paths) > 2 else None
        return grpc.ssl_server_certificate_configuration([(key, cert)], client_ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration when the files changed and are good, else None (keep)."""
        try:
            stamp = _stamp(self.paths)
            if stamp == self.stamp:
                return None
            self.current = self._load()
        except (OSError, ssl.SSLError, ValueError) as error:
            log.error("renewed TLS certificate rejected; keeping the previous one", extra={
                "files": [str(path) for path in self.paths], "reason": str(error)[:300]
            })  # fmt: skip
            self.stamp = _stamp_or_none(self.paths) or self.stamp  # log once per change
            return None
        self.stamp = stamp
        log.info("TLS certificate reloaded", extra={"files": [str(p) for p in self.paths]})
        return self.current


def _stamp_or_none(paths: list[Path]) -> tuple[tuple[int, int, int], ...] | None:
    try:
        return _stamp(paths)
    except OSError:
        return None


def reloading_server_credentials(
    cert: Path, key: Path, client_ca: Path | None
) -> grpc.ServerCredentials:
    """TLS (mTLS with client_ca) credentials that pick up renewed files at new connections."""
    certificates = ReloadingCertificates(cert, key, client_ca)
    return grpc.dynamic_ssl_server_credentials(
        certificates.current,
        certificates.fetch,  # type: ignore[arg-type]  # grpc takes None: unchanged (its docs)
        require_client_authentication=bool(client_ca),
    )
