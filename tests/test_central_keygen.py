"""Central key generation (RFC 9483 4.1.6): the CA generates the key, signs it as the KGA and
encrypts it to the requester — by password (MAC-protected requests) or to the protection
certificate (RSA key transport, EC key agreement) — and the client engine opens it."""

from __future__ import annotations

import functools
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms
from asn1crypto.core import OctetBitString
from asn1crypto.csr import CertificationRequest
from asn1crypto.keys import PublicKeyInfo
from asn1crypto.x509 import Name as AsnName
from cmp_pki import (
    START,
    Crafter,
    DeterministicRandom,
    FixedClock,
    Identity,
    IssuingCA,
    body,
    cert_request,
    exchange,
    fail_info,
    make_client,
    make_server,
    name,
    perform,
    pki,
    statuses,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from sanscmp.engine.asn1 import ID_CT_KP_AKEYPACKAGE, AsymmetricKeyPackage, PKIMessage
from sanscmp.engine.client import CertRequestSpec, ClientConfig, ClientEngine, Phase
from sanscmp.engine.envelope import decrypt_with_password, envelope_with_password
from sanscmp.engine.errors import BadMessageCheck, SignerNotTrusted
from sanscmp.engine.events import CertificatesRequested, Issue
from sanscmp.engine.handlers import CmpServer
from sanscmp.engine.keygen import (
    CMKGA,
    KeyPackageFormat,
    open_private_key,
    seal_private_key,
    verify_signed_content,
)
from sanscmp.engine.protection import MacCredential, SignatureCredential, protect
from sanscmp.engine.server import ServerOptions
from sanscmp.engine.transfer import server_perform
from sanscmp.engine.trust import TrustConfig

EC_P256 = PublicKeyInfo.load(
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
)["algorithm"].dump()  # DER AlgorithmIdentifier id-ecPublicKey / prime256v1: the hint
RSA = bytes.fromhex("300d06092a864886f70d0101010500")  # rsaEncryption, as OpenSSL 3.5 hints


@functools.cache
def kga() -> Identity:
    """A key generation authority: a CA-issued certificate with EKU id-kp-cmKGA."""
    test_pki = pki()
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name("sanscmp test KGA"))
        .issuer_name(test_pki.ca_name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(START - timedelta(days=1))
        .not_valid_after(START + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.ExtendedKeyUsage([CMKGA]), critical=False)
        .sign(test_pki.ca_key, hashes.SHA256())
    )
    return Identity(key, certificate)


def kga_credential() -> SignatureCredential:
    return SignatureCredential(kga().key, kga().certificate, chain=(pki().ca_cert,))


def keygen_server(ca: IssuingCA, *, with_kga: bool = True, **kwargs: Any) -> CmpServer:
    """A test server whose KGA is `kga()` (by default the server's own credential signs)."""
    server = make_server(ca, **kwargs)
    if with_kga:
        server.engine.config.key_generation_authority = kga_credential()
    return server


def central(common_name: str = "central", **kwargs: Any) -> CertRequestSpec:
    return CertRequestSpec(central_keygen=True, subject=name(common_name), **kwargs)


def sealed_key(response: PKIMessage, index: int = 0) -> cms.EnvelopedData:
    """The EnvelopedData in a response's CertifiedKeyPair.privateKey."""
    pair = response["body"].chosen["response"][index]["certifiedKeyPair"]
    return cms.EnvelopedData.load(pair["privateKey"].chosen.untag().dump())


def same_key(a: Any, b: Any) -> bool:
    def der(key: Any) -> bytes:
        return bytes(key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()))

    return der(a) == der(b)


def step_through(server: CmpServer, transaction: Any) -> list[PKIMessage]:
    """Run a client transaction, keeping every response (the ip first)."""
    responses = []
    message = transaction.request
    while message is not None:
        response = exchange(server, message)
        responses.append(response)
        message = transaction.receive(response)
    return responses


# ---- end to end ---------------------------------------------------------------------------------


def test_mac_protected_ir_gets_the_key_by_password() -> None:
    ca = IssuingCA(central_keygen="ec")
    server = keygen_server(ca)
    client = make_client("mac")
    transaction = client.ir([central()])
    ip = step_through(server, transaction)[0]
    assert transaction.phase is Phase.done
    result = transaction.result
    key = result.private_keys[0]
    assert same_key(key, next(iter(ca.generated.values()))[0])
    assert result.certificates[0].public_key() == key.public_key()
    env = sealed_key(ip)
    (recipient,) = env["recipient_infos"]
    assert recipient.name == "pwri"
    assert env["version"].native == "v3"
    assert env["encrypted_content_info"]["content_type"].native == "signed_data"
    pwri = recipient.chosen
    assert pwri["key_encryption_algorithm"]["algorithm"].dotted == "1.2.840.113549.1.9.16.3.9"
    kdf = pwri["key_derivation_algorithm"]["parameters"]
    assert kdf["prf"]["algorithm"].native == "sha256"
    # RFC 9483 4.1.6.3: the salt is not the one of the MAC protection
    protection_salt = ip["header"]["protectionAlg"]["parameters"]["salt"].native
    assert kdf["salt"].native != protection_salt


@pytest.mark.parametrize(("kind", "recipient"), [("rsa", "ktri"), ("ec", "kari")])
def test_signed_cr_gets_the_key_to_its_protection_certificate(kind: str, recipient: str) -> None:
    ca = IssuingCA(central_keygen="ec")
    server = keygen_server(ca)
    transaction = make_client(kind).cr([central(key_algorithm=EC_P256)])
    ip = step_through(server, transaction)[0]
    assert transaction.phase is Phase.done
    assert same_key(transaction.result.private_keys[0], ca.generated[transaction.transaction_id][0])
    (info,) = sealed_key(ip)["recipient_infos"]
    assert info.name == recipient
    # named by the protection certificate's subjectKeyIdentifier (RFC 9483 4.1.6.1-2)
    skid = (
        pki()
        .clients[kind]
        .certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    )
    if recipient == "ktri":
        key_id = info.chosen["rid"].chosen.native
    else:
        key_id = info.chosen["recipient_encrypted_keys"][0]["rid"].chosen["subject_key_identifier"]
        key_id = key_id.native
    assert key_id == skid.value.digest


def test_key_package_is_rfc9483s() -> None:
    """SignedData v3 by the KGA (SKID), id-ct-KP-aKeyPackage, one OneAsymmetricKey v2 with its
    public key, signed attributes contentType + messageDigest, KGA certificate first."""
    ca = IssuingCA(central_keygen="ec")
    server = keygen_server(ca)
    transaction = make_client("mac").ir([central()])
    ip = step_through(server, transaction)[0]
    secret = pki().secrets[b"client-1"]
    signed = cms.SignedData.load(decrypt_with_password(sealed_key(ip), secret))
    assert signed["version"].native == "v3"
    assert signed["encap_content_info"]["content_type"].dotted == ID_CT_KP_AKEYPACKAGE
    (signer,) = signed["signer_infos"]
    assert signer["sid"].name == "subject_key_identifier"
    attributes = {a["type"].native for a in signer["signed_attrs"]}
    assert {"content_type", "message_digest", "signing_time"} <= attributes
    # the KGA certificate and its chain (a DER SET OF: in sorted, not signing, order)
    certificates = {c.chosen.dump() for c in signed["certificates"]}
    assert certificates == {
        c.public_bytes(Encoding.DER) for c in (kga().certificate, pki().ca_cert)
    }
    (one,) = AsymmetricKeyPackage.load(signed["encap_content_info"]["content"].native)
    assert one["version"].native == 1
    key = ca.generated[transaction.transaction_id][0]
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert one["publicKey"].native == point


def test_openssl_package_format() -> None:
    """`central_key_package=OPENSSL` signs the bare key as id-data (what OpenSSL 3.5 sends);
    the client engine reads it too."""
    ca = IssuingCA(central_keygen="ec")
    options = ServerOptions(central_key_package=KeyPackageFormat.OPENSSL)
    server = keygen_server(ca, options=options)
    transaction = make_client("ec").cr([central()])
    ip = step_through(server, transaction)[0]
    assert transaction.phase is Phase.done
    opened = open_private_key(
        sealed_key(ip),
        trust=TrustConfig(anchors=(pki().ca_cert,), extended_key_usage=CMKGA),
        now=START,
        decryption_key=pki().clients["ec"].key,
    )
    assert opened.package is KeyPackageFormat.OPENSSL
    assert same_key(opened.private_key, transaction.result.private_keys[0])


def test_several_requests_and_implicit_confirm() -> None:
    ca = IssuingCA(central_keygen="ec")
    server = keygen_server(ca, options=ServerOptions(grant_implicit_confirm=True))
    client = make_client("mac", implicit_confirm=True)
    transaction = client.ir([cert_request("local"), central("one"), central("two")])
    result = perform(server, transaction)
    assert result.implicit_confirm_granted
    assert sorted(result.certificates) == [0, 1, 2]
    assert sorted(result.private_keys) == [1, 2]
    generated = ca.generated[transaction.transaction_id]
    assert same_key(result.private_keys[2], generated[2])


def test_delayed_delivery() -> None:
    ca = IssuingCA(central_keygen="ec", defer_kinds=frozenset({"cert"}), polls=1)
    server = keygen_server(ca)
    result = perform(server, make_client("rsa").cr([central()]))
    assert result.polls == 2
    assert 0 in result.private_keys


def test_server_own_credential_is_the_default_kga() -> None:
    """Without `key_generation_authority` the server's protection credential signs; a client
    that does not require EKU cmKGA of it (its own `kga_trust`) accepts."""
    ca = IssuingCA(central_keygen="ec")
    server = keygen_server(ca, with_kga=False)
    client = make_client("mac", kga_trust=TrustConfig(anchors=(pki().ca_cert,)))
    result = perform(server, client.ir([central()]))
    assert 0 in result.private_keys


# ---- the request side ---------------------------------------------------------------------------


def test_template_of_a_central_keygen_request() -> None:
    """No POPO; no publicKey, or the algorithm with empty key bits (as `openssl cmp
    -centralkeygen` sends it, e.g. rsaEncryption, whose empty bits hold no RSAPublicKey); the
    event says central_keygen."""
    for hint in (None, EC_P256, RSA):
        client = make_client("mac")
        transaction = client.ir([central(key_algorithm=hint)])
        (msg,) = transaction.request["body"].chosen
        assert msg["popo"].native is None
        public_key = msg["certReq"]["certTemplate"]["publicKey"]
        if hint is None:
            assert public_key.native is None
        else:
            assert public_key.contents.endswith(b"\x03\x01\x00")
        inbound = keygen_server(IssuingCA()).engine.receive(transaction.request)
        assert isinstance(inbound, CertificatesRequested)
        (request,) = inbound.requests
        assert request.central_keygen and request.popo.central_keygen
        assert request.popo.public_key is None


def test_central_keygen_spec_takes_no_key() -> None:
    with pytest.raises(ValueError, match="no key"):
        make_client("mac").ir([central(key=ec.generate_private_key(ec.SECP256R1()))])


def _p10cr_without_key() -> CertificationRequest:
    """A PKCS#10 request whose subjectPublicKey is empty (OpenSSL's central keygen rule)."""
    info = {
        "version": "v1",
        "subject": AsnName.load(name("p10 central").public_bytes()),
        "subject_pk_info": PublicKeyInfo.load(
            b"\x30" + bytes([len(EC_P256) + 3]) + EC_P256 + b"\x03\x01\x00"
        ),
        "attributes": [],
    }
    return CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": OctetBitString(b"\x30\x00"),
        }
    )


def test_p10cr_with_an_empty_key_is_central_keygen() -> None:
    clock = FixedClock()
    ca = IssuingCA(central_keygen="ec")
    server = keygen_server(ca, clock=clock)
    crafter = Crafter(clock)
    request = crafter.message(body("p10cr", _p10cr_without_key()))
    inbound = server.engine.receive(request)
    assert isinstance(inbound, CertificatesRequested)
    assert inbound.requests[0].central_keygen
    response = exchange(server, crafter.message(body("p10cr", _p10cr_without_key())))
    assert statuses(response) == {-1: "accepted"}
    assert sealed_key(response)["recipient_infos"][0].name == "pwri"


# ---- refusals -----------------------------------------------------------------------------------


def test_ca_that_cannot_generate_rejects() -> None:
    result = perform(keygen_server(IssuingCA()), make_client("mac").ir([central()]))
    assert result.fail_info == {"badCertTemplate"}
    assert result.private_keys == {}


@pytest.mark.parametrize("knob", ["omit", "mismatch"])
def test_issue_without_or_with_a_wrong_key_is_a_system_failure(knob: str) -> None:
    ca = IssuingCA(central_keygen=knob)
    transaction = make_client("mac").ir([central()])
    response = exchange(keygen_server(ca), transaction.request)
    assert fail_info(response) == {"systemFailure"}


def test_private_key_for_a_request_with_a_key_is_a_system_failure() -> None:
    engine = keygen_server(IssuingCA()).engine
    transaction = make_client("mac").ir([cert_request("local")])
    inbound = engine.receive(transaction.request)
    assert isinstance(inbound, CertificatesRequested)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = pki().issue(key.public_key(), name("local"))
    response = engine.respond(inbound, [Issue(certificate, private_key=key)])
    assert fail_info(response) == {"systemFailure"}


def test_no_kga_credential_refuses_the_request() -> None:
    ca = IssuingCA(central_keygen="ec")
    server = keygen_server(ca, with_kga=False, signs=False)
    result = perform(server, make_client("mac").ir([central()]))
    assert result.fail_info == {"badRequest"}
    assert ca.generated == {}  # refused before the application was asked


def test_unprotected_request_is_refused() -> None:
    ca = IssuingCA(central_keygen="ec")
    server = keygen_server(ca, options=ServerOptions(accept_unprotected=True))
    client = make_client("none")
    result = perform(server, client.ir([central()]))
    assert result.fail_info == {"badRequest"}
    assert ca.generated == {}


def test_signature_key_that_cannot_receive_is_refused() -> None:
    """An Ed25519 protection key can neither transport nor agree a key: badAlg, per request."""
    key = ed25519.Ed25519PrivateKey.generate()
    identity = Identity(key, pki().issue(key.public_key(), name("client ed25519")))
    ca = IssuingCA(central_keygen="ec")
    server = keygen_server(ca)
    clock = FixedClock()
    client = ClientEngine(
        ClientConfig(
            clock=clock,
            random=DeterministicRandom(b"ed"),
            credential=SignatureCredential(identity.key, identity.certificate),
            trust=pki().trust,
        )
    )
    result = perform(server, client.cr([central(), cert_request("local")]))
    assert result.statuses[0]["failInfo"].native == {"badAlg"}
    assert 1 in result.certificates and 0 not in result.certificates


# ---- what the client refuses --------------------------------------------------------------------


def _reprotected(message: PKIMessage, private_key: cms.EnvelopedData | None) -> PKIMessage:
    """`message` with its first CertResponse's privateKey replaced (or removed), MAC-protected
    again with client-1's secret (so only the change itself can make the client refuse it)."""
    response = message["body"].chosen["response"][0]
    new_pair: dict[str, Any] = {"certOrEncCert": response["certifiedKeyPair"]["certOrEncCert"]}
    if private_key is not None:
        new_pair["privateKey"] = {"envelopedData": private_key}
    body_value = {
        "response": [
            {
                "certReqId": response["certReqId"],
                "status": response["status"],
                "certifiedKeyPair": new_pair,
            }
        ]
    }
    header = message["header"].copy()
    rebuilt = PKIMessage({"header": header, "body": body(message["body"].name, body_value)})
    if message["extraCerts"].native is not None:
        rebuilt["extraCerts"] = message["extraCerts"]
    credential = MacCredential(b"client-1", pki().secrets[b"client-1"])
    return protect(rebuilt, credential, random_bytes=lambda n: b"\x01" * n)


def _central_ip(**server_kwargs: Any) -> tuple[Any, PKIMessage, CmpServer]:
    ca = IssuingCA(central_keygen="ec")
    server = keygen_server(ca, **server_kwargs)
    transaction = make_client("mac").ir([central()])
    return transaction, exchange(server, transaction.request), server


def _refused(transaction: Any, response: PKIMessage, server: CmpServer) -> str:
    """Feed `response`; the client rejects the certificate in certConf: the reason."""
    cert_conf = transaction.receive(response)
    assert cert_conf is not None and cert_conf["body"].name == "certConf"
    (status,) = cert_conf["body"].chosen
    assert status["statusInfo"]["status"].native == "rejection"
    assert transaction.receive(exchange(server, cert_conf)) is None
    assert transaction.phase is Phase.failed
    assert transaction.result.private_keys == {}
    return str(transaction.result.rejected[0])


def test_flipped_bit_in_the_envelope_fails() -> None:
    transaction, ip, server = _central_ip()
    env = sealed_key(ip)
    info = env["encrypted_content_info"]
    ciphertext = bytearray(info["encrypted_content"].native)
    ciphertext[len(ciphertext) // 2] ^= 0x01
    tampered = cms.EnvelopedData.load(env.dump())
    tampered["encrypted_content_info"]["encrypted_content"] = bytes(ciphertext)
    tampered = cms.EnvelopedData.load(tampered.dump(force=True))
    reason = _refused(transaction, _reprotected(ip, private_key=tampered), server)
    assert "private key not accepted" in reason


def test_altered_key_package_fails_the_signature_check() -> None:
    """Re-enveloped with the right secret but a changed key package: the KGA signature fails."""
    transaction, ip, server = _central_ip()
    secret = pki().secrets[b"client-1"]
    signed = cms.SignedData.load(decrypt_with_password(sealed_key(ip), secret))
    content = bytearray(signed["encap_content_info"]["content"].native)
    content[-1] ^= 0x01
    signed["encap_content_info"]["content"] = bytes(content)
    forged = envelope_with_password(
        signed.dump(force=True), secret, lambda n: b"\x02" * n, content_type="signed_data"
    )
    reason = _refused(transaction, _reprotected(ip, private_key=forged), server)
    assert "messageDigest" in reason or "does not verify" in reason


def test_key_of_another_certificate_fails() -> None:
    transaction, ip, server = _central_ip()
    other = ec.generate_private_key(ec.SECP256R1())
    forged = seal_private_key(
        other, kga_credential(), pki().secrets[b"client-1"], lambda n: b"\x03" * n, START
    )
    reason = _refused(transaction, _reprotected(ip, private_key=forged), server)
    assert "does not belong" in reason


def test_missing_private_key_fails() -> None:
    transaction, ip, server = _central_ip()
    reason = _refused(transaction, _reprotected(ip, private_key=None), server)
    assert "no private key" in reason


def test_kga_without_cmkga_is_not_trusted_by_default() -> None:
    """The server's own certificate has no EKU cmKGA: the default client refuses its key (as
    OpenSSL's client: 'unsuitable certificate purpose')."""
    transaction, ip, server = _central_ip(with_kga=False)
    reason = _refused(transaction, ip, server)
    assert "not trusted" in reason


def test_unrequested_private_key_fails() -> None:
    ca = IssuingCA()
    server = keygen_server(ca)
    transaction = make_client("mac").ir([cert_request("local")])
    ip = exchange(server, transaction.request)
    key = ec.generate_private_key(ec.SECP256R1())
    sealed = seal_private_key(
        key, kga_credential(), pki().secrets[b"client-1"], lambda n: b"\x04" * n, START
    )
    reason = _refused(transaction, _reprotected(ip, private_key=sealed), server)
    assert "not requested" in reason


def test_open_private_key_errors() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sealed = seal_private_key(key, kga_credential(), b"secret", lambda n: b"\x05" * n, START)
    trust = TrustConfig(anchors=(pki().ca_cert,), extended_key_usage=CMKGA)
    opened = open_private_key(sealed, trust=trust, now=START, password=b"secret")
    assert same_key(opened.private_key, key) and opened.signer == kga().certificate
    stranger = Identity(ec.generate_private_key(ec.SECP256R1()), pki().clients["other"].certificate)
    other_anchor = TrustConfig(anchors=(stranger.certificate,), extended_key_usage=CMKGA)
    with pytest.raises(SignerNotTrusted):
        open_private_key(sealed, trust=other_anchor, now=START, password=b"secret")
    no_eku = TrustConfig(
        anchors=(pki().ca_cert,), extended_key_usage=x509.ObjectIdentifier("1.2.3")
    )
    with pytest.raises(SignerNotTrusted):
        open_private_key(sealed, trust=no_eku, now=START, password=b"secret")
    with pytest.raises(SignerNotTrusted):  # expired KGA certificate
        open_private_key(sealed, trust=trust, now=START + timedelta(days=400), password=b"secret")
    signed = cms.SignedData.load(decrypt_with_password(sealed, b"secret"))
    signed["signer_infos"][0]["signature"] = b"\x00" * 8
    with pytest.raises(BadMessageCheck):
        verify_signed_content(signed.dump(force=True), trust, START)


# ---- interoperability with openssl cms ----------------------------------------------------------

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


def _openssl(*args: str | Path | int) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False)


def _content_info(content_type: str, value: Any) -> bytes:
    return bytes(cms.ContentInfo({"content_type": content_type, "content": value}).dump())


@needs_openssl
def test_openssl_opens_and_verifies_the_password_envelope(tmp_path: Path) -> None:
    """`openssl cms -decrypt -pwri_password` opens our PWRI envelope; `openssl cms -verify`
    accepts the KGA's SignedData and yields the key package."""
    _transaction, ip, _server = _central_ip()
    secret = pki().secrets[b"client-1"].decode()
    (tmp_path / "env.der").write_bytes(_content_info("enveloped_data", sealed_key(ip)))
    decrypted = _openssl(
        "cms", "-decrypt", "-inform", "DER", "-in", tmp_path / "env.der",
        "-pwri_password", secret, "-binary",
    )  # fmt: skip
    assert decrypted.returncode == 0, decrypted.stderr
    signed = cms.SignedData.load(decrypted.stdout)
    (tmp_path / "sd.der").write_bytes(_content_info("signed_data", signed))
    (tmp_path / "ca.pem").write_bytes(pki().ca_cert.public_bytes(Encoding.PEM))
    verified = _openssl(
        "cms", "-verify", "-inform", "DER", "-in", tmp_path / "sd.der", "-CAfile",
        tmp_path / "ca.pem", "-purpose", "any", "-binary", "-attime", int(START.timestamp()),
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout == signed["encap_content_info"]["content"].native


@needs_openssl
@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_openssl_decrypts_the_certificate_envelope(tmp_path: Path, kind: str) -> None:
    ca = IssuingCA(central_keygen="ec")
    server = keygen_server(ca)
    transaction = make_client(kind).cr([central()])
    ip = exchange(server, transaction.request)
    identity = pki().clients[kind]
    (tmp_path / "env.der").write_bytes(_content_info("enveloped_data", sealed_key(ip)))
    (tmp_path / "key.pem").write_bytes(
        identity.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    (tmp_path / "cert.pem").write_bytes(identity.certificate.public_bytes(Encoding.PEM))
    decrypted = _openssl(
        "cms", "-decrypt", "-inform", "DER", "-in", tmp_path / "env.der",
        "-inkey", tmp_path / "key.pem", "-recip", tmp_path / "cert.pem", "-binary",
    )  # fmt: skip
    assert decrypted.returncode == 0, decrypted.stderr
    signed = cms.SignedData.load(decrypted.stdout)
    assert signed["encap_content_info"]["content_type"].dotted == ID_CT_KP_AKEYPACKAGE


@needs_openssl
def test_we_open_an_openssl_made_key_package(tmp_path: Path) -> None:
    """The other direction: `openssl cms -sign` (as the KGA) then `-encrypt -pwri_password`,
    the bare key as OpenSSL 3.5's server sends it; `open_private_key` reads it."""
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "new.der").write_bytes(
        key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    )
    (tmp_path / "kga.pem").write_bytes(kga().certificate.public_bytes(Encoding.PEM))
    (tmp_path / "kga.key").write_bytes(
        kga().key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    signed = _openssl(
        "cms", "-sign", "-binary", "-nodetach", "-in", tmp_path / "new.der", "-outform", "DER",
        "-signer", tmp_path / "kga.pem", "-inkey", tmp_path / "kga.key",
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    signed_data = cms.ContentInfo.load(signed.stdout)["content"].untag()  # bare, as OpenSSL 3.5
    (tmp_path / "sd.der").write_bytes(signed_data.dump())
    enveloped = _openssl(
        "cms", "-encrypt", "-binary", "-aes256", "-pwri_password", "sesame", "-in",
        tmp_path / "sd.der", "-outform", "DER",
    )  # fmt: skip
    assert enveloped.returncode == 0, enveloped.stderr
    env = cms.ContentInfo.load(enveloped.stdout)["content"]
    trust = TrustConfig(anchors=(pki().ca_cert,), extended_key_usage=CMKGA)
    opened = open_private_key(env, trust=trust, now=START, password=b"sesame")
    assert opened.package is KeyPackageFormat.OPENSSL
    assert same_key(opened.private_key, key)


def test_client_engine_against_server_perform() -> None:
    """The in-process transfer (OSSL_CMP_CTX_server_perform) delivers keys too."""
    ca = IssuingCA(central_keygen="ec")
    server = keygen_server(ca)
    transaction = make_client("ec").ir([central()])
    transfer = server_perform(server)
    message = transaction.request
    while message is not None:
        message = transaction.receive(transfer(message))
    assert transaction.phase is Phase.done and 0 in transaction.result.private_keys
