"""The CA behind the engine, in process: profiles, issuing limits and the CA's decisions.

A provisioned directory is wired exactly as `sanscmp serve` wires it (`app.wiring`), and the
client engine talks to it through `engine.serve` with no network.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sanscmp.app.config import load_settings
from sanscmp.app.provision import provision
from sanscmp.app.wiring import ProfileEndpoint, build_endpoints
from sanscmp.ca.authority import CertificateRequest
from sanscmp.ca.profile import Profile, ProfileError, profile_from_table
from sanscmp.ca.store import SqliteStore
from sanscmp.engine.asn1 import PKIMessage
from sanscmp.engine.client import (
    CertRequestSpec,
    ClientConfig,
    ClientEngine,
    ClientResult,
    ClientTransaction,
    RevocationSpec,
)
from sanscmp.engine.errors import FailInfo
from sanscmp.engine.protection import MacCredential, SignatureCredential
from sanscmp.engine.trust import TrustConfig

REF, SECRET = b"ref", b"secret"


class Ca:
    def __init__(self, directory: Path) -> None:
        provision(directory, pbm_reference=REF.decode(), pbm_secret=SECRET.decode())
        self.settings = load_settings(directory)
        self.store = SqliteStore(self.settings.database)
        self.endpoints = build_endpoints(self.settings, self.store)
        self.ca_cert = x509.load_pem_x509_certificate(self.settings.ca_certificate.read_bytes())

    def run(self, txn: ClientTransaction, label: str = "") -> ClientResult:
        endpoint: ProfileEndpoint = self.endpoints[label]
        message: PKIMessage | None = txn.request
        while message is not None:
            message = txn.receive(endpoint.process(message.dump()))
        return txn.result

    def client(self, credential: MacCredential | SignatureCredential | None = None) -> ClientEngine:
        return ClientEngine(
            ClientConfig(
                clock=lambda: datetime.now(UTC),
                random=os.urandom,
                credential=credential or MacCredential(REF, SECRET),
                trust=TrustConfig(anchors=(self.ca_cert,)),
                accept_unprotected_errors=True,
            )
        )

    def enrol(self, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        result = self.run(self.client().ir([spec(key, name)]))
        return result.certificates[0], key


def spec(key: object, name: str, **kwargs: object) -> CertRequestSpec:
    return CertRequestSpec(key=key, subject=x509.Name.from_rfc4514_string(f"CN={name}"), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    return Ca(tmp_path / "ca")


def failure(result: ClientResult) -> set[str]:
    bits = set(result.fail_info)
    for info in result.statuses.values():
        if info["failInfo"].native:
            bits |= set(info["failInfo"].native)
    return bits


# ---- profiles ----------------------------------------------------------------------------------


def test_profile_tables_are_checked() -> None:
    assert profile_from_table("p", {"validity_days": 30}).default_validity == timedelta(days=30)
    for bad in (
        {"nonsense": 1},
        {"approval": "maybe"},
        {"key_types": ["dsa"]},
        {"min_rsa_bits": 1024},
        {"validity_days": 900, "max_validity_days": 10},
    ):
        with pytest.raises(ProfileError):
            profile_from_table("p", bad)


# ---- issuing limits ----------------------------------------------------------------------------


def test_validity_is_clamped_to_the_profile_and_reported(ca: Ca) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    far = datetime.now(UTC) + timedelta(days=5000)
    result = ca.run(ca.client().ir([spec(key, "long", not_after=far)]))
    cert = result.certificates[0]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=825)
    assert result.statuses[0]["status"].native == "grantedWithMods"


def test_weak_rsa_key_is_refused(ca: Ca) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    result = ca.run(ca.client().ir([spec(weak, "weak")]))
    assert not result.certificates and "badAlg" in failure(result)


def test_ca_certificates_are_never_issued_by_default(ca: Ca) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    wants_ca = x509.Extension(
        x509.oid.ExtensionOID.BASIC_CONSTRAINTS, True, x509.BasicConstraints(True, None)
    )
    result = ca.run(ca.client().ir([spec(key, "sub-ca", extensions=[wants_ca])]))
    assert not result.certificates and "notAuthorized" in failure(result)


def test_sans_are_copied(ca: Ca) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.Extension(
        x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        False,
        x509.SubjectAlternativeName([x509.DNSName("a.example"), x509.RFC822Name("a@example")]),
    )
    cert = ca.run(ca.client().ir([spec(key, "san", extensions=[san])])).certificates[0]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["a.example"]
    assert names.get_values_for_type(x509.RFC822Name) == ["a@example"]


def test_authority_refuses_an_empty_subject(ca: Ca) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    authority = ca.endpoints[""].ca.ca
    with pytest.raises(Exception) as refused:
        authority.issue(CertificateRequest(spki, x509.Name([])), Profile("p"), datetime.now(UTC), 7)
    assert refused.value.fail_info is FailInfo.badCertTemplate  # type: ignore[attr-defined]


# ---- decisions ---------------------------------------------------------------------------------


def test_unknown_pbm_reference_is_refused(ca: Ca) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    result = ca.run(ca.client(MacCredential(b"nobody", b"x")).ir([spec(key, "x")]))
    assert not result.certificates and "badMessageCheck" in failure(result)


def test_kur_with_a_mac_is_refused(ca: Ca) -> None:
    old, _ = ca.enrol("mac-kur")
    key = ec.generate_private_key(ec.SECP256R1())
    result = ca.run(ca.client().kur([spec(key, "mac-kur")], old))
    assert not result.certificates and "notAuthorized" in failure(result)


def test_kur_with_another_certificates_old_cert_id_is_refused(ca: Ca) -> None:
    mine, my_key = ca.enrol("mine")
    other, _ = ca.enrol("other")
    signer = ca.client(SignatureCredential(my_key, mine))
    key = ec.generate_private_key(ec.SECP256R1())
    result = ca.run(signer.kur([spec(key, "mine")], other))
    assert not result.certificates and "badCertId" in failure(result)


def test_rr_rules(ca: Ca) -> None:
    cert, key = ca.enrol("revokee")
    other, other_key = ca.enrol("bystander")
    as_other = ca.client(SignatureCredential(other_key, other))
    refused = ca.run(as_other.rr([RevocationSpec(cert.issuer, cert.serial_number)]))
    assert "notAuthorized" in failure(refused)
    as_owner = ca.client(SignatureCredential(key, cert))
    unknown = ca.run(as_owner.rr([RevocationSpec(cert.issuer, 12345)]))
    assert "badCertId" in failure(unknown)
    done = ca.run(as_owner.rr([RevocationSpec(cert.issuer, cert.serial_number, reason=1)]))
    assert done.statuses[0]["status"].native == "accepted"
    record = ca.store.get(cert.serial_number)
    assert record is not None and (record.status, record.reason) == ("revoked", 1)
    # the revoked certificate no longer authenticates anything
    again = ca.run(ca.client(SignatureCredential(key, cert)).cr([spec(key, "again")]))
    assert not again.certificates and "certRevoked" in failure(again)


def test_expiry_revokes_unconfirmed_certificates(ca: Ca) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    txn = ca.client().ir([spec(key, "never-confirmed")])
    endpoint = ca.endpoints[""]
    cert_conf = txn.receive(endpoint.process(txn.request.dump()))
    assert cert_conf is not None  # the client would now confirm; it never does
    (record,) = ca.store.list_certificates(status="unconfirmed")
    serial = record.serial
    later = datetime.now(UTC) + timedelta(hours=1)
    endpoint.engine.config.clock = type("Later", (), {"now": staticmethod(lambda: later)})()
    for ended in endpoint.engine.expire():
        endpoint.ca.expired(ended)
    revoked = ca.store.get(serial)
    assert revoked is not None and revoked.status == "revoked"


def test_manual_profile_defers_until_approved(ca: Ca) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    txn = ca.client().ir([spec(key, "waits")])
    endpoint = ca.endpoints["manual"]
    poll = txn.receive(endpoint.process(txn.request.dump()))
    assert poll is not None and poll["body"].name == "pollReq"
    poll = txn.receive(endpoint.process(poll.dump()))
    assert poll is not None and poll["body"].name == "pollReq"  # still pending
    (pending,) = ca.store.list_pending(state="pending")
    ca.store.decide_pending(pending.transaction_id, True, "", datetime.now(UTC))
    message: PKIMessage | None = poll
    while message is not None:
        message = txn.receive(endpoint.process(message.dump()))
    assert txn.result.certificates[0].subject.rfc4514_string() == "CN=waits"
