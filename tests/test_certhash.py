"""certHash of certConf (RFC 9810 5.3.18): CMPv2 by signature digest, CMPv3 by hashAlg."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from asn1crypto.x509 import Certificate
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, padding, rsa
from cryptography.x509.oid import NameOID

from sanscmp.engine.asn1 import AlgorithmIdentifier, CertStatus, PKIMessage, load_der
from sanscmp.engine.certhash import cert_hash, certificate_signature_algorithm, check_cert_hash
from sanscmp.engine.errors import BadAlg, BadCertId, BadRequest, DecodeError, UnsupportedVersion

FIXTURES = Path(__file__).parent / "fixtures" / "openssl"


def _builder(public_key: object) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certhash test")])
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


_rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_p256 = ec.generate_private_key(ec.SECP256R1())
_p384 = ec.generate_private_key(ec.SECP384R1())
_ed25519 = ed25519.Ed25519PrivateKey.generate()
_ed448 = ed448.Ed448PrivateKey.generate()
_pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)

CERTS: dict[str, tuple[bytes, bytes]] = {}  # name -> (cert DER, expected CMPv2 certHash)


def _add(name: str, der: bytes, expected: bytes) -> None:
    CERTS[name] = (der, expected)


def _build_certs() -> None:
    der = _der(_builder(_rsa_key.public_key()).sign(_rsa_key, hashes.SHA256()))
    _add("rsa-sha256", der, hashlib.sha256(der).digest())
    der = _der(_builder(_rsa_key.public_key()).sign(_rsa_key, hashes.SHA512()))
    _add("rsa-sha512", der, hashlib.sha512(der).digest())
    der = _der(_builder(_rsa_key.public_key()).sign(_rsa_key, hashes.SHA384(), rsa_padding=_pss))
    _add("rsa-pss-sha384", der, hashlib.sha384(der).digest())
    der = _der(_builder(_p256.public_key()).sign(_p256, hashes.SHA256()))
    _add("ecdsa-p256-sha256", der, hashlib.sha256(der).digest())
    der = _der(_builder(_p384.public_key()).sign(_p384, hashes.SHA384()))
    _add("ecdsa-p384-sha384", der, hashlib.sha384(der).digest())
    der = _der(_builder(_ed25519.public_key()).sign(_ed25519, None))
    _add("ed25519", der, hashlib.sha512(der).digest())
    der = _der(_builder(_ed448.public_key()).sign(_ed448, None))
    _add("ed448", der, hashlib.shake_256(der).digest(64))
    for key in (mldsa.MLDSA44PrivateKey.generate(), mldsa.MLDSA87PrivateKey.generate()):
        der = _der(_builder(key.public_key()).sign(key, None))
        _add(f"ml-dsa-{type(key).__name__[5:7]}", der, hashlib.sha512(der).digest())


_build_certs()


def _status(cert_hash_value: bytes, hash_alg: str | None = None, req_id: int = 0) -> CertStatus:
    fields: dict[str, object] = {"certHash": cert_hash_value, "certReqId": req_id}
    if hash_alg is not None:
        fields["hashAlg"] = AlgorithmIdentifier({"algorithm": hash_alg})
    return load_der(CertStatus, CertStatus(fields).dump())


@pytest.mark.parametrize("name", sorted(CERTS))
def test_cmpv2_hash_uses_the_signature_digest(name: str) -> None:
    der, expected = CERTS[name]
    assert cert_hash(der) == expected
    assert cert_hash(der, certificate_signature_algorithm(der)) == expected
    check_cert_hash(der, _status(expected), pvno=2)
    check_cert_hash(der, _status(expected), pvno=3)  # v3 without hashAlg hashes as v2


def test_ml_dsa_certificate_really_is_ml_dsa() -> None:
    for name, oid in (("ml-dsa-44", "id-ml-dsa-44"), ("ml-dsa-87", "id-ml-dsa-87")):
        alg = certificate_signature_algorithm(CERTS[name][0])
        assert alg["algorithm"].native == oid
        assert alg["parameters"].native is None


@pytest.mark.parametrize("name", sorted(CERTS))
@pytest.mark.parametrize(
    ("hash_alg", "hashlib_name"),
    [("id-sha256", "sha256"), ("id-sha384", "sha384"), ("id-sha3-256", "sha3_256")],
)
def test_cmpv3_hash_alg_overrides(name: str, hash_alg: str, hashlib_name: str) -> None:
    der, _ = CERTS[name]
    expected = hashlib.new(hashlib_name, der).digest()
    assert cert_hash(der, hash_alg=AlgorithmIdentifier({"algorithm": hash_alg})) == expected
    check_cert_hash(der, _status(expected, hash_alg), pvno=3)


def test_cmpv3_shake_hash_alg() -> None:
    der, _ = CERTS["rsa-sha256"]
    check_cert_hash(der, _status(hashlib.shake_128(der).digest(32), "id-shake128"), pvno=3)
    check_cert_hash(der, _status(hashlib.shake_256(der).digest(64), "id-shake256"), pvno=3)


def test_mismatch_is_bad_cert_id() -> None:
    der, expected = CERTS["ecdsa-p256-sha256"]
    wrong = bytes([expected[0] ^ 1]) + expected[1:]
    with pytest.raises(BadCertId, match="certReqId 7"):
        check_cert_hash(der, _status(wrong, req_id=7), pvno=2)
    with pytest.raises(BadCertId):
        check_cert_hash(der, _status(expected[:-1]), pvno=2)
    # The hash of another certificate does not confirm this one.
    with pytest.raises(BadCertId):
        check_cert_hash(der, _status(CERTS["ecdsa-p384-sha384"][1]), pvno=2)


def test_v3_hash_alg_mismatch_is_bad_cert_id() -> None:
    der, v2_hash = CERTS["rsa-sha256"]
    # The v2 hash (SHA-256) sent with hashAlg SHA-384 does not match.
    with pytest.raises(BadCertId):
        check_cert_hash(der, _status(v2_hash, "id-sha384"), pvno=3)


def test_hash_alg_with_pvno_2_is_bad_request() -> None:
    der, _ = CERTS["rsa-sha256"]
    status = _status(hashlib.sha256(der).digest(), "id-sha256")
    with pytest.raises(BadRequest, match="pvno 3"):
        check_cert_hash(der, status, pvno=2)


@pytest.mark.parametrize("pvno", [0, 1, 4])
def test_other_pvno_is_unsupported_version(pvno: int) -> None:
    der, expected = CERTS["rsa-sha256"]
    with pytest.raises(UnsupportedVersion):
        check_cert_hash(der, _status(expected), pvno=pvno)


@pytest.mark.parametrize("alg", ["id-hmacWithSHA256", "1.2.840.113549.2.5", "rsaEncryption"])
def test_unsupported_hash_alg_is_bad_alg(alg: str) -> None:
    der, expected = CERTS["rsa-sha256"]
    with pytest.raises(BadAlg):
        check_cert_hash(der, _status(expected, alg), pvno=3)


def test_signature_without_digest_is_bad_alg() -> None:
    der, _ = CERTS["rsa-sha256"]
    with pytest.raises(BadAlg):
        cert_hash(der, AlgorithmIdentifier({"algorithm": "id-RSASSA-PSS-SHAKE128"}))


# --- real OpenSSL certConf messages ------------------------------------------------------------


def _manifest() -> list[dict[str, object]]:
    path = FIXTURES / "manifest.json"
    if not path.exists():
        pytest.skip("no OpenSSL fixtures (tests/fixtures/openssl/manifest.json)")
    data = json.loads(path.read_text())
    entries = data["messages"] if isinstance(data, dict) and "messages" in data else data
    return list(entries)


def _issued_certs(response: PKIMessage) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for cert_response in response["body"].chosen["response"]:
        pair = cert_response["certifiedKeyPair"]
        if pair.native is None or pair["certOrEncCert"].name != "certificate":
            continue
        # certificate is [0] EXPLICIT in CertOrEncCert: untag for the plain DER.
        out[cert_response["certReqId"].native] = pair["certOrEncCert"].chosen.untag().dump()
    return out


def test_openssl_cert_conf_hashes_match_the_issued_certificate() -> None:
    """Each certConf confirms a certificate of an ip/cp/kup of the same scenario (by certReqId)."""
    by_scenario: dict[str, list[PKIMessage]] = {}
    for entry in _manifest():
        if entry.get("body") in ("ip", "cp", "kup", "ccp", "certConf"):
            msg = PKIMessage.load((FIXTURES / str(entry["file"])).read_bytes())
            by_scenario.setdefault(str(entry["scenario"]), []).append(msg)
    checked = 0
    for scenario, messages in sorted(by_scenario.items()):
        issued: dict[int, list[bytes]] = {}
        for msg in messages:
            if msg["body"].name != "certConf":
                for req_id, cert in _issued_certs(msg).items():
                    issued.setdefault(req_id, []).append(cert)
        for msg in messages:
            if msg["body"].name != "certConf":
                continue
            pvno = msg["header"]["pvno"].native
            for status in msg["body"].chosen:
                candidates = issued.get(status["certReqId"].native, [])
                assert candidates, f"{scenario}: certConf without a response issuing its cert"
                matched = [c for c in candidates if _confirms(c, status, pvno)]
                assert len(matched) == 1, f"{scenario}: certHash matches {len(matched)} certs"
                if status["hashAlg"].native is None:
                    assert status["certHash"].native == cert_hash(matched[0])
                checked += 1
    if checked == 0:
        pytest.skip("the OpenSSL fixtures contain no certConf with a matching response")


def _confirms(cert_der: bytes, status: CertStatus, pvno: int) -> bool:
    try:
        check_cert_hash(cert_der, status, pvno)
    except BadCertId:
        return False
    return True


@pytest.mark.parametrize(
    "der_hex",
    [
        "",
        "30",  # truncated
        "3000",  # no fields
        "30020300",  # one field
        "300630003000030000",  # trailing octet
        "310630003000030100",  # a SET
        "3006300004000300",  # signatureAlgorithm is an OCTET STRING
    ],
)
def test_malformed_certificate_is_a_decode_error(der_hex: str) -> None:
    with pytest.raises(DecodeError):
        cert_hash(bytes.fromhex(der_hex))


def test_an_unknown_signature_algorithm_stays_bad_alg() -> None:
    der, _ = CERTS[sorted(CERTS)[0]]
    unknown = AlgorithmIdentifier({"algorithm": "1.2.3.4"}).dump()
    cert = load_der(Certificate, der)
    tbs, signature = cert["tbs_certificate"].dump(), cert["signature_value"].dump()
    content = tbs + unknown + signature
    forged = b"\x30\x82" + len(content).to_bytes(2, "big") + content
    for _ in range(2):  # a failure is not remembered as a digest
        with pytest.raises(BadAlg):
            cert_hash(forged)
