"""Reading option values the way `openssl` does: certificates, keys and CRLs in PEM, DER and
PKCS#12, pass-phrase sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from cmp_pki import pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    pkcs12,
)

from sanscmp.app.openssl_inputs import (
    InputError,
    load_certificate,
    load_certificates,
    load_crl,
    load_private_key,
)


def test_certificates_from_pem_bundles_der_and_lists(tmp_path: Path) -> None:
    test_pki = pki()
    ca, server = test_pki.ca_cert, test_pki.server.certificate
    (tmp_path / "bundle.pem").write_bytes(
        ca.public_bytes(Encoding.PEM) + server.public_bytes(Encoding.PEM)
    )
    (tmp_path / "one.der").write_bytes(server.public_bytes(Encoding.DER))
    names = f"{tmp_path / 'bundle.pem'}, {tmp_path / 'one.der'}"
    assert load_certificates(names) == [ca, server, server]
    assert load_certificate(str(tmp_path / "bundle.pem")) == ca


def test_encrypted_keys_and_pkcs12_with_pass_phrase_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = pki().server
    encrypted = identity.key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"s3cret")
    )
    (tmp_path / "key.pem").write_bytes(encrypted)
    monkeypatch.setenv("KEYPASS", "s3cret")
    key = load_private_key(str(tmp_path / "key.pem"), "env:KEYPASS")
    assert key.public_key() == identity.key.public_key()
    with pytest.raises(InputError, match="cannot load the private key"):
        load_private_key(str(tmp_path / "key.pem"), "pass:wrong")
    bundle = pkcs12.serialize_key_and_certificates(
        b"server",
        identity.key,
        identity.certificate,
        [pki().ca_cert],
        BestAvailableEncryption(b"p"),
    )
    (tmp_path / "server.p12").write_bytes(bundle)
    assert load_certificates(str(tmp_path / "server.p12"), "pass:p") == [
        identity.certificate,
        pki().ca_cert,
    ]
    p12_key = load_private_key(str(tmp_path / "server.p12"), "pass:p")
    assert p12_key.public_key() == identity.key.public_key()


def test_crl_and_missing_files(tmp_path: Path) -> None:
    test_pki = pki()
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(test_pki.ca_cert.subject)
        .last_update(test_pki.ca_cert.not_valid_before_utc)
        .next_update(test_pki.ca_cert.not_valid_after_utc)
        .sign(test_pki.ca_key, hashes.SHA256())
    )
    (tmp_path / "crl.der").write_bytes(crl.public_bytes(Encoding.DER))
    assert load_crl(str(tmp_path / "crl.der")) == crl
    with pytest.raises(InputError, match="cannot read the certificate file"):
        load_certificates(str(tmp_path / "absent.pem"))
    (tmp_path / "junk.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n")
    with pytest.raises(InputError):
        load_certificate(str(tmp_path / "junk.pem"))
