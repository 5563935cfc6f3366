"""`sanscmp init`: a new CA directory with keys, certificates, a PBM reference and the config file.

Creates the CA (self-signed; EC P-256 by default, RSA-3072 on request), a CMP server certificate it
issues (what signs responses to signature-protected requests), one PBM reference and secret for a
first enrolment, a default profile, and `sanscmp.toml`. Private keys and the config (which holds the
secret) are written with mode 0600.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from .config import CONFIG_NAME

KEY_TYPES = ("ec", "rsa")
CMC_CA = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.27")  # id-kp-cmcCA (RFC 6402, RFC 9483 3.1)


@dataclass(frozen=True)
class Provisioned:
    """What a user needs to enrol against the new directory."""

    directory: Path
    ca_certificate: Path
    pbm_reference: str
    pbm_secret: str
    port: int


class ProvisionError(ValueError):
    """The directory cannot be provisioned (e.g. it already holds a configuration)."""


def provision(
    directory: Path,
    *,
    key_type: str = "ec",
    pbm_reference: str | None = None,
    pbm_secret: str | None = None,
    ca_name: str = "sanscmp demo CA",
    port: int = 8080,
    now: datetime | None = None,
) -> Provisioned:
    """Create everything in `directory` (made if absent); an existing config is never replaced."""
    if key_type not in KEY_TYPES:
        raise ProvisionError(f"key type must be one of {KEY_TYPES}")
    if (directory / CONFIG_NAME).exists():
        raise ProvisionError(f"{directory / CONFIG_NAME} exists already; not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(UTC)
    reference = pbm_reference or "client-" + secrets.token_hex(4)
    secret = pbm_secret or secrets.token_urlsafe(18)

    ca_key = _new_key(key_type)
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (
        _builder(ca_subject, ca_subject, ca_key.public_key(), now, timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = _new_key(key_type)
    server_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name + " CMP server")])
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    server_cert = (
        _builder(server_subject, ca_subject, server_key.public_key(), now, timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([CMC_CA]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(directory / "ca-key.pem", _pem_key(ca_key))
    _write_private(directory / "server-key.pem", _pem_key(server_key))
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.pem").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(directory / CONFIG_NAME, _config_text(reference, secret, port).encode())
    return Provisioned(directory, directory / "ca.pem", reference, secret, port)


def _new_key(key_type: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return ec.generate_private_key(ec.SECP256R1())


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    now: datetime,
    lifetime: timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + lifetime)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _config_text(reference: str, secret: str, port: int) -> str:
    return f"""# sanscmp configuration, written by `sanscmp init`. Paths are relative to this file.

[server]
host = "127.0.0.1"
port = {port}
workers = 1
legacy_paths = ["/pkix/"]        # besides /.well-known/cmp, for clients with a fixed path
max_request_bytes = 262144

[storage]
database = "sanscmp.db"          # SQLite: certificates, revocations, open transactions
synchronous = "FULL"             # each commit survives a power cut; "NORMAL": only a crash

[ca]
key = "ca-key.pem"
certificate = "ca.pem"

[cmp]
key = "server-key.pem"           # signs answers to signature-protected requests
certificate = "server.pem"
transaction_timeout_seconds = 600
max_time_skew_seconds = 600
send_unprotected_errors = false
accept_raverified = false

[pbm.secrets]
# reference = secret: clients enrol with `openssl cmp -ref REFERENCE -secret pass:SECRET`
"{reference}" = "{secret}"

[profiles.default]               # served at /.well-known/cmp and /.well-known/cmp/p/default
validity_days = 365
max_validity_days = 825
key_types = ["ec", "rsa", "ed25519", "ed448"]
extended_key_usage = ["clientAuth"]
approval = "auto"                # "manual": requests wait until `sanscmp requests approve`
implicit_confirm = true
kur_old_certificate = "revoke"

[profiles.manual]                # /.well-known/cmp/p/manual: an operator approves each request
approval = "manual"
check_after = 1
"""
