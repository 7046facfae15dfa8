"""pem: the checks every TLS file passes before grpc gets it (at start and at each reload)."""

from __future__ import annotations

from pathlib import Path

import pytest

from acme_common._tls import pem
from acme_devkit.certificates import CertificateAuthority


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority("pem", tmp_path)


def test_a_certificate_and_its_own_key_pass(ca: CertificateAuthority) -> None:
    pair = ca.issue("server", server=True)
    pem.check_pair(pair.cert.read_bytes(), pair.cert, pair.key.read_bytes(), pair.key)
    pem.check_ca_bundle(ca.pem.read_bytes(), ca.pem)


def test_another_certificates_key_is_named(ca: CertificateAuthority) -> None:
    pair, other = ca.issue("server", server=True), ca.issue("other", server=True)
    with pytest.raises(ValueError, match=f"{other.key} is not the private key of"):
        pem.check_pair(pair.cert.read_bytes(), pair.cert, other.key.read_bytes(), other.key)


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (lambda _: b"", "no PEM certificate"),
        (lambda _: b"   \n", "no PEM certificate"),
        (lambda data: data[: len(data) // 2], "cut short"),
        (lambda data: data.replace(b"M", b"!", 3), "not a valid PEM certificate"),
    ],
    ids=["empty", "blank", "half-written", "garbled"],
)
def test_broken_certificate_files_are_refused(
    ca: CertificateAuthority, tmp_path: Path, cut: object, message: str
) -> None:
    pair = ca.issue("server", server=True)
    broken = cut(pair.cert.read_bytes())  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        pem.check_pair(broken, pair.cert, pair.key.read_bytes(), pair.key)


def test_a_broken_key_is_refused(ca: CertificateAuthority) -> None:
    pair = ca.issue("server", server=True)
    key = pair.key.read_bytes()
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        pem.check_pair(pair.cert.read_bytes(), pair.cert, key[: len(key) // 2], pair.key)


def test_a_ca_bundle_half_written_during_a_ca_change_is_refused(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    new = CertificateAuthority("new", tmp_path)
    old = ca.pem.read_bytes()
    bundle = new.pem.read_bytes() + old
    pem.check_ca_bundle(bundle, ca.pem)  # both CAs: what a CA change publishes
    with pytest.raises(ValueError, match="cut short"):
        pem.check_ca_bundle(new.pem.read_bytes() + old[: len(old) // 2], ca.pem)


def test_a_leaf_certificate_is_not_a_client_ca(ca: CertificateAuthority) -> None:
    leaf = ca.issue("client", server=False)
    with pytest.raises(ValueError, match="'CN=client' is not a CA certificate"):
        pem.check_ca_bundle(leaf.cert.read_bytes(), leaf.cert)
