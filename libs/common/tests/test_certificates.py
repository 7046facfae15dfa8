"""certificates: what a reload does with each state of the files (the served result, over real
TLS connections, is tests/integration/test_certificate_rotation.py)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from acme_common._tls import certificates
from acme_common._tls.certificates import ReloadingCertificates
from acme_common._tls.pem import check_pair
from acme_devkit.certificates import CertificateAuthority, KeyPair


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority("reload", tmp_path)


def install(pair: KeyPair, ca: CertificateAuthority, directory: Path) -> tuple[Path, Path, Path]:
    directory.mkdir(exist_ok=True)
    files = directory / "tls.crt", directory / "tls.key", directory / "ca.crt"
    for source, target in zip((pair.cert, pair.key, ca.pem), files, strict=True):
        shutil.copy(source, target)
    return files


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_unchanged_files_are_not_read_again(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert, key, client_ca = install(ca.issue("a", server=True), ca, tmp_path / "tls")
    reloading = ReloadingCertificates(cert, key, client_ca)
    assert reloading.fetch() is None
    shutil.copy(ca.issue("b", server=True).cert, cert)
    shutil.copy(tmp_path / "reload-b.key", key)
    assert reloading.fetch() is not None
    assert reloading.fetch() is None


def test_a_renewal_finished_while_the_first_half_was_read_is_picked_up(
    ca: CertificateAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cp new.crt tls.crt; cp new.key tls.key`: the key lands while the reload reads the
    files (new certificate, old key: rejected). The next handshake must read them again."""
    cert, key, client_ca = install(ca.issue("a", server=True), ca, tmp_path / "tls")
    reloading = ReloadingCertificates(cert, key, client_ca)
    renewed = ca.issue("b", server=True)
    shutil.copy(renewed.cert, cert)

    def key_lands_meanwhile(*args: object) -> None:
        shutil.copy(renewed.key, key)  # the second half of the renewal, mid-read
        check_pair(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(certificates, "check_pair", key_lands_meanwhile)
    assert reloading.fetch() is None  # new certificate with the old key bytes: rejected
    monkeypatch.setattr(certificates, "check_pair", check_pair)
    assert reloading.fetch() is not None  # the files changed since: read again, good


def test_a_missing_file_is_one_error_not_one_per_handshake(
    ca: CertificateAuthority, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key, client_ca = install(ca.issue("a", server=True), ca, tmp_path / "tls")
    reloading = ReloadingCertificates(cert, key, client_ca)
    cert.unlink()
    assert [reloading.fetch() for _ in range(20)] == [None] * 20
    assert len(errors(caplog)) == 1
    install(ca.issue("b", server=True), ca, tmp_path / "tls")
    assert reloading.fetch() is not None


@pytest.mark.parametrize("replacement", ["empty", "leaf", "half"])
def test_a_broken_client_ca_is_rejected_and_the_last_good_one_kept(
    ca: CertificateAuthority,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    replacement: str,
) -> None:
    pair = ca.issue("a", server=True)
    cert, key, client_ca = install(pair, ca, tmp_path / "tls")
    reloading = ReloadingCertificates(cert, key, client_ca)
    good = reloading.current
    data = ca.pem.read_bytes()
    client_ca.write_bytes(
        {"empty": b"", "leaf": pair.cert.read_bytes(), "half": data[: len(data) // 2]}[replacement]
    )
    assert reloading.fetch() is None
    assert reloading.current is good
    [error] = errors(caplog)
    assert error == "renewed TLS certificate rejected; keeping the previous one"
    assert str(client_ca) in caplog.records[-1].reason  # type: ignore[attr-defined]
