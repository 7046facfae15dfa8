"""Server certificates that can be renewed without a restart: grpc asks for the current
configuration at every new TLS handshake (grpc.dynamic_ssl_server_credentials); the files
are read again when they changed and checked first (acme_common._tls.pem: the key must be the
certificate's, the client CA bundle must hold only CA certificates), and a broken
replacement is logged as an ERROR, once, and ignored: new connections keep the last good
certificate. Connections already open keep theirs."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc

from acme_common._tls.pem import check_ca_bundle, check_pair

log = logging.getLogger("acme.tls")

# Per file: (inode, size, mtime in ns), what changes when it is replaced or rewritten; None
# while it is missing.
Stamp = tuple[tuple[int, int, int] | None, ...]


def _stamp(paths: list[Path]) -> Stamp:
    stamps: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            stamps.append(None)
        else:
            stamps.append((status.st_ino, status.st_size, status.st_mtime_ns))
    return tuple(stamps)


def load_configuration(
    cert: Path, key: Path, client_ca: Path | None
) -> grpc.ServerCertificateConfiguration:
    """The files read and checked as one configuration; OSError or ValueError (naming the
    file and the fault) when one is missing or broken."""
    certificate, private_key = cert.read_bytes(), key.read_bytes()
    check_pair(certificate, cert, private_key, key)
    roots = None
    if client_ca is not None:
        roots = client_ca.read_bytes()
        check_ca_bundle(roots, client_ca)
    return grpc.ssl_server_certificate_configuration([(private_key, certificate)], roots)


class ReloadingCertificates:
    """The configuration grpc fetches per handshake: re-read when a file changed."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self.paths = [cert, key, *([client_ca] if client_ca else [])]
        self.stamp = _stamp(self.paths)
        self.current = load_configuration(cert, key, client_ca)  # broken at start: raises

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration when the files changed and are good, else None (keep)."""
        # Taken before the files are read: if they change again while being read (the second
        # half of an in-place renewal), the next handshake sees a new stamp and reads again.
        stamp = _stamp(self.paths)
        if stamp == self.stamp:
            return None
        self.stamp = stamp  # this state of the files is judged once: one ERROR, not one a handshake
        try:
            self.current = load_configuration(self.cert, self.key, self.client_ca)
        except (OSError, ValueError) as error:
            log.error(
                "renewed TLS certificate rejected; keeping the previous one",
                extra={"reason": str(error)[:300]},
            )
            return None
        log.info("TLS certificate reloaded", extra={"files": [str(p) for p in self.paths]})
        return self.current


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
