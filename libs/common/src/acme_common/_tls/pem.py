"""PEM files checked the way TLS will use them, before grpc is given them: grpc core takes a
broken client CA without a word and then fails every handshake, and a key that is not the
certificate's fails only at the first connection. Parsed in memory with `cryptography` (no
copy of a private key on disk). Every check raises ValueError with a message naming the file
and what is wrong."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

_BEGIN, _END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
_PUBLIC = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def certificates(data: bytes, path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM file (a chain or a CA bundle); ValueError when it holds none,
    one cannot be parsed, or one is cut short (a half-written file)."""
    count = data.count(_BEGIN)
    if count == 0:
        raise ValueError(f"{path}: no PEM certificate in it")
    if data.count(_END) != count:
        raise ValueError(f"{path}: a PEM certificate is cut short (half-written?)")
    try:
        parsed = x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise ValueError(f"{path}: not a valid PEM certificate ({error})") from None
    if len(parsed) != count:
        raise ValueError(f"{path}: {count - len(parsed)} of {count} certificates unreadable")
    return parsed


def check_pair(certificate: bytes, certificate_path: Path, key: bytes, key_path: Path) -> None:
    """ValueError unless key (PEM, unencrypted) is the private key of the first certificate of
    the chain in certificate (the check `ssl.SSLContext.load_cert_chain` makes)."""
    leaf = certificates(certificate, certificate_path)[0]
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as error:  # TypeError: encrypted
        raise ValueError(f"{key_path}: not an unencrypted PEM private key ({error})") from None
    if private_key.public_key().public_bytes(*_PUBLIC) != leaf.public_key().public_bytes(*_PUBLIC):
        raise ValueError(f"{key_path} is not the private key of the certificate {certificate_path}")


def check_ca_bundle(data: bytes, path: Path) -> None:
    """ValueError unless every certificate in data is a CA certificate (basicConstraints CA),
    which is what verifying a peer against the bundle needs."""
    for certificate in certificates(data, path):
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            subject = certificate.subject.rfc4514_string()
            raise ValueError(f"{path}: {subject!r} is not a CA certificate")
