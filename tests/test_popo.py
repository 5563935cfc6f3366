"""Proof-of-possession (RFC 4211 4, RFC 9810 5.2.8): every POPO kind, its rejections, real data."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
from pathlib import Path
from unittest import mock

import pytest
from asn1crypto import csr as acsr
from asn1crypto.keys import PublicKeyInfo
from asn1crypto.x509 import GeneralName, Name
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    ec,
    ed448,
    ed25519,
    mldsa,
    mlkem,
    rsa,
    x448,
    x25519,
)
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sanscmp.engine import popo as popo_module
from sanscmp.engine.asn1 import (
    AlgorithmIdentifier,
    CertReqMsg,
    CertRequest,
    DecodeError,
    PBMParameter,
    PKIMessage,
    PKMACValue,
    POPOPrivKey,
    POPOSigningKeyInput,
    ProofOfPossession,
    load_der,
)
from sanscmp.engine.envelope import envelope
from sanscmp.engine.errors import BadAlg, BadPOP, CmpError
from sanscmp.engine.pbm import pbmac1_algorithm
from sanscmp.engine.popo import (
    PopoMethod,
    PopoResult,
    central_keygen_requested,
    pkmac_verifier,
    signature_popo,
    template_public_key,
    verify_p10cr,
    verify_popo,
)
from sanscmp.engine.signature import pss_algorithm

FIXTURES = Path(__file__).parent / "fixtures" / "openssl"

SIGNING_KEYS: dict[str, object] = {
    "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
    "ed448": ed448.Ed448PrivateKey.generate(),
    "ml-dsa-44": mldsa.MLDSA44PrivateKey.generate(),
    "ml-dsa-65": mldsa.MLDSA65PrivateKey.generate(),
}
RSA = SIGNING_KEYS["rsa"]
P256 = SIGNING_KEYS["p256"]
SECRET = b"shared secret of the requester"


def _spki_der(key: object) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key  # type: ignore[attr-defined]
    return bytes(
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _name(cn: str = "popo test") -> Name:
    return Name.build({"common_name": cn})


def _dir_name(cn: str) -> GeneralName:
    return GeneralName({"directory_name": _name(cn)})


def _cert_request(
    key: object | None, *, subject: Name | None = None, spki: bytes | None = None
) -> CertRequest:
    template: dict[str, object] = {}
    if subject is not None:
        template["subject"] = subject
    if spki is None and key is not None:
        spki = _spki_der(key)
    if spki is not None:
        template["publicKey"] = PublicKeyInfo.load(spki)
    return CertRequest({"certReqId": 0, "certTemplate": template})


def _received(cert_req: CertRequest, popo: ProofOfPossession | None) -> CertReqMsg:
    """The CertReqMsg as a server receives it: encoded, then strictly decoded."""
    fields: dict[str, object] = {"certReq": cert_req}
    if popo is not None:
        fields["popo"] = popo
    der = CertReqMsg(fields).dump()
    try:
        return load_der(CertReqMsg, der)
    except DecodeError:
        # asn1crypto cannot type ML-DSA/ML-KEM keys, so strict decoding fails (reported); the
        # lazy parse still yields the received bytes.
        return CertReqMsg.load(der)


def _signed(
    key: object, *, cn: str = "popo test", alg: AlgorithmIdentifier | None = None
) -> CertReqMsg:
    cert_req = _cert_request(key, subject=_name(cn))
    return _received(cert_req, signature_popo(cert_req, key, alg=alg))  # type: ignore[arg-type]


# --- PasswordBasedMac oracle (RFC 4211 4.4, RFC 9810 5.1.3.1), independent of the engine -------


def _pbm_alg(salt: bytes = b"0123456789abcdef", iterations: int = 1000) -> AlgorithmIdentifier:
    params = PBMParameter(
        {
            "salt": salt,
            "owf": AlgorithmIdentifier({"algorithm": "id-sha256"}),
            "iterationCount": iterations,
            "mac": AlgorithmIdentifier({"algorithm": "id-hmacWithSHA256"}),
        }
    )
    return AlgorithmIdentifier({"algorithm": "id-PasswordBasedMac", "parameters": params})


def _pbm(alg: AlgorithmIdentifier, secret: bytes, data: bytes) -> bytes:
    params = alg["parameters"]
    assert params["owf"]["algorithm"].native == "id-sha256"
    assert params["mac"]["algorithm"].native == "id-hmacWithSHA256"
    key = secret + params["salt"].native
    for _ in range(params["iterationCount"].native):
        key = hashlib.sha256(key).digest()
    return hmac.new(key, data, "sha256").digest()


def _pbmac1(secret: bytes, data: bytes) -> tuple[AlgorithmIdentifier, bytes]:
    """RFC 8018 PBMAC1 with PBKDF2-HMAC-SHA256 (RFC 9045 allows it in PKMACValue)."""
    salt = b"pbmac1 salt 0123"
    key = hashlib.pbkdf2_hmac("sha256", secret, salt, 2000, 32)
    alg = pbmac1_algorithm(salt, iterations=2000, key_length=32)
    return alg, hmac.new(key, data, "sha256").digest()


def _with_input(
    key: object,
    auth_info: dict[str, object],
    *,
    input_key: object | None = None,
    subject: Name | None = None,
) -> CertReqMsg:
    cert_req = _cert_request(key, subject=subject)
    spki = PublicKeyInfo.load(_spki_der(input_key if input_key is not None else key))
    poposk_input = POPOSigningKeyInput({"authInfo": auth_info, "publicKey": spki})
    return _received(cert_req, signature_popo(cert_req, key, poposk_input=poposk_input))  # type: ignore[arg-type]


def _mac_auth(key: object, secret: bytes = SECRET) -> dict[str, object]:
    alg = _pbm_alg()
    value = _pbm(alg, secret, _spki_der(key))
    return {"publicKeyMAC": PKMACValue({"algId": alg, "value": value})}


# --- signature POPO ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SIGNING_KEYS))
def test_signature_popo_verifies(name: str) -> None:
    key = SIGNING_KEYS[name]
    result = verify_popo(_signed(key))
    assert result == PopoResult(PopoMethod.SIGNATURE, "signature", _spki_der(key), None)
    assert not result.encrypt_certificate


def test_signature_popo_rsa_pss() -> None:
    verify_popo(_signed(RSA, alg=pss_algorithm("sha256")))
    verify_popo(_signed(RSA, alg=pss_algorithm("sha512")))


@pytest.mark.parametrize("name", sorted(SIGNING_KEYS))
def test_flipped_signature_is_bad_pop(name: str) -> None:
    msg = _signed(SIGNING_KEYS[name])
    der = bytearray(msg.dump())
    der[-3] ^= 0x01  # the signature BIT STRING ends the CertReqMsg
    with pytest.raises(BadPOP, match="does not verify"):
        verify_popo(CertReqMsg.load(bytes(der)))


def test_changed_template_is_bad_pop() -> None:
    der = _signed(P256, cn="alice").dump()
    tampered = der.replace(b"alice", b"alicf")
    assert tampered != der
    with pytest.raises(BadPOP):
        verify_popo(load_der(CertReqMsg, tampered))


def test_signature_over_the_bytes_as_received() -> None:
    """Re-encoding would not change DER, but the check must use the received bytes as they are."""
    msg = _signed(P256)
    assert msg["certReq"].dump() == CertReqMsg.load(msg.dump())["certReq"].dump()
    verify_popo(msg)


def test_signature_by_another_key_is_bad_pop() -> None:
    cert_req = _cert_request(P256, subject=_name())
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(BadPOP, match="does not verify"):
        verify_popo(_received(cert_req, signature_popo(cert_req, other)))


def test_signature_algorithm_not_fitting_the_key_is_bad_alg() -> None:
    cert_req = _cert_request(RSA, subject=_name())
    popo = signature_popo(cert_req, RSA)  # type: ignore[arg-type]
    popo.chosen["algorithmIdentifier"] = AlgorithmIdentifier({"algorithm": "ecdsa-with-SHA256"})
    with pytest.raises(BadAlg):
        verify_popo(_received(cert_req, popo))
    popo.chosen["algorithmIdentifier"] = AlgorithmIdentifier({"algorithm": "1.2.3.4.5"})
    with pytest.raises(BadAlg):
        verify_popo(_received(cert_req, popo))


def test_signature_popo_without_subject_needs_poposk_input() -> None:
    cert_req = _cert_request(P256)
    with pytest.raises(BadPOP, match="subject"):
        verify_popo(_received(cert_req, signature_popo(cert_req, P256)))  # type: ignore[arg-type]


def test_signature_popo_without_public_key_is_bad_pop() -> None:
    cert_req = _cert_request(None, subject=_name())
    with pytest.raises(BadPOP, match="no publicKey"):
        verify_popo(_received(cert_req, signature_popo(cert_req, P256)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    [
        x25519.X25519PrivateKey.generate(),
        x448.X448PrivateKey.generate(),
        mlkem.MLKEM768PrivateKey.generate(),
    ],
    ids=["x25519", "x448", "ml-kem-768"],
)
def test_signature_popo_for_a_non_signing_key_is_bad_pop(key: object) -> None:
    cert_req = _cert_request(key, subject=_name())
    popo = signature_popo(_cert_request(P256, subject=_name()), P256)  # type: ignore[arg-type]
    with pytest.raises(BadPOP, match="not possible"):
        verify_popo(_received(cert_req, popo))


def test_unknown_key_algorithm_is_bad_alg() -> None:
    # SEQUENCE { SEQUENCE { OID 1.2.3.4 }, BIT STRING 0x0102 }
    spki = bytes.fromhex("300c300506032a03040303000102")
    cert_req = _cert_request(None, subject=_name(), spki=spki)
    popo = signature_popo(_cert_request(P256, subject=_name()), P256)  # type: ignore[arg-type]
    with pytest.raises(BadAlg, match="unsupported public key algorithm"):
        verify_popo(_received(cert_req, popo))


# --- POPOSigningKeyInput --------------------------------------------------------------------------


def test_poposk_input_with_sender() -> None:
    msg = _with_input(P256, {"sender": _dir_name("requester")})
    result = verify_popo(msg, sender=_dir_name("requester"))
    assert result.auth_info == "sender"
    assert result.method is PopoMethod.SIGNATURE
    # Directory names compare per RFC 5280 (case and spacing insensitive).
    verify_popo(msg, sender=_dir_name("  REQUESTER "))


def test_poposk_input_sender_mismatch_is_bad_pop() -> None:
    msg = _with_input(P256, {"sender": _dir_name("requester")})
    with pytest.raises(BadPOP, match="differs"):
        verify_popo(msg, sender=_dir_name("somebody else"))
    with pytest.raises(BadPOP, match="differs"):
        verify_popo(msg, sender=GeneralName({"dns_name": "requester"}))
    with pytest.raises(BadPOP, match="no authenticated sender"):
        verify_popo(msg)


def test_poposk_input_with_public_key_mac() -> None:
    msg = _with_input(RSA, _mac_auth(RSA))
    result = verify_popo(msg, pkmac_verify=pkmac_verifier(SECRET))
    assert result.auth_info == "publicKeyMAC"
    assert result.public_key == _spki_der(RSA)


def test_poposk_input_with_pbmac1_public_key_mac() -> None:
    alg, value = _pbmac1(SECRET, _spki_der(P256))
    msg = _with_input(P256, {"publicKeyMAC": PKMACValue({"algId": alg, "value": value})})
    assert verify_popo(msg, pkmac_verify=pkmac_verifier(SECRET)).auth_info == "publicKeyMAC"
    with pytest.raises(BadPOP, match="publicKeyMAC does not verify"):
        verify_popo(msg, pkmac_verify=pkmac_verifier(SECRET + b"!"))


def test_public_key_mac_with_the_wrong_secret_is_bad_pop() -> None:
    msg = _with_input(RSA, _mac_auth(RSA))
    with pytest.raises(BadPOP, match="publicKeyMAC does not verify"):
        verify_popo(msg, pkmac_verify=pkmac_verifier(b"wrong secret"))
    with pytest.raises(BadPOP, match="no shared secret"):
        verify_popo(msg)


def test_public_key_mac_over_another_key_is_bad_pop() -> None:
    msg = _with_input(P256, _mac_auth(RSA))  # MAC computed over a different public key
    with pytest.raises(BadPOP, match="publicKeyMAC does not verify"):
        verify_popo(msg, pkmac_verify=pkmac_verifier(SECRET))


def test_public_key_mac_unsupported_algorithm_is_bad_alg() -> None:
    auth = {"publicKeyMAC": PKMACValue({"algId": {"algorithm": "id-DHBasedMac"}, "value": b"x"})}
    msg = _with_input(P256, auth)
    with pytest.raises(BadAlg):
        verify_popo(msg, pkmac_verify=pkmac_verifier(SECRET))
    weak = _pbm_alg(iterations=10)  # below the MAC policy's minimum iteration count
    auth = {"publicKeyMAC": PKMACValue({"algId": weak, "value": _pbm(weak, SECRET, b"")})}
    with pytest.raises(BadAlg, match="iterationCount"):
        verify_popo(_with_input(P256, auth), pkmac_verify=pkmac_verifier(SECRET))


def test_poposk_input_public_key_must_equal_the_template() -> None:
    msg = _with_input(P256, {"sender": _dir_name("r")}, input_key=SIGNING_KEYS["p384"])
    with pytest.raises(BadPOP, match="differs from the template"):
        verify_popo(msg, sender=_dir_name("r"))


def test_poposk_input_not_allowed_with_subject() -> None:
    msg = _with_input(P256, {"sender": _dir_name("r")}, subject=_name())
    with pytest.raises(BadPOP, match="must be absent"):
        verify_popo(msg, sender=_dir_name("r"))


def test_poposk_input_signature_covers_the_input() -> None:
    msg = _with_input(P256, {"sender": _dir_name("requester")})
    der = msg.dump().replace(b"requester", b"requestes")
    with pytest.raises(BadPOP):
        verify_popo(load_der(CertReqMsg, der), sender=_dir_name("requestes"))


# --- raVerified, missing POPO, central key generation --------------------------------------------


def test_ra_verified_only_where_allowed() -> None:
    cert_req = _cert_request(P256, subject=_name())
    msg = _received(cert_req, ProofOfPossession({"raVerified": None}))
    with pytest.raises(BadPOP, match="raVerified"):
        verify_popo(msg)
    result = verify_popo(msg, accept_ra_verified=True)
    assert result.method is PopoMethod.RA_VERIFIED
    assert result.public_key == _spki_der(P256)


def test_missing_popo_is_bad_pop() -> None:
    msg = _received(_cert_request(P256, subject=_name()), None)
    assert not central_keygen_requested(msg)
    with pytest.raises(BadPOP, match="missing"):
        verify_popo(msg)


def test_central_key_generation_is_recognised() -> None:
    no_key = _received(_cert_request(None, subject=_name()), None)
    assert central_keygen_requested(no_key)
    assert template_public_key(no_key) is None
    empty = PublicKeyInfo({"algorithm": {"algorithm": "ec", "parameters": ("named", "secp256r1")},
                           "public_key": b""})  # fmt: skip
    empty_key = _received(_cert_request(None, subject=_name(), spki=empty.dump()), None)
    assert central_keygen_requested(empty_key)
    with_popo = _received(_cert_request(None, subject=_name(), spki=empty.dump()),
                          ProofOfPossession({"raVerified": None}))  # fmt: skip
    assert not central_keygen_requested(with_popo)
    popo = ProofOfPossession({"keyAgreement": POPOPrivKey({"subsequentMessage": "encrCert"})})
    with pytest.raises(BadPOP, match="empty public key"):
        verify_popo(_received(_cert_request(None, subject=_name(), spki=empty.dump()), popo))


# --- keyEncipherment / keyAgreement --------------------------------------------------------------


def _privkey_msg(key: object, kind: str, privkey: POPOPrivKey) -> CertReqMsg:
    return _received(_cert_request(key, subject=_name()), ProofOfPossession({kind: privkey}))


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("keyEncipherment", RSA),
        ("keyAgreement", P256),
        ("keyAgreement", ec.generate_private_key(ec.SECP521R1())),
        ("keyAgreement", x25519.X25519PrivateKey.generate()),
        ("keyAgreement", x448.X448PrivateKey.generate()),
    ],
    ids=["enc-rsa", "agree-p256", "agree-p521", "agree-x25519", "agree-x448"],
)
def test_encr_cert_is_accepted(kind: str, key: object) -> None:
    result = verify_popo(_privkey_msg(key, kind, POPOPrivKey({"subsequentMessage": "encrCert"})))
    assert result == PopoResult(PopoMethod.ENCR_CERT, kind, _spki_der(key), None)
    assert result.encrypt_certificate


def test_encr_cert_to_a_key_we_cannot_encrypt_to_is_bad_alg() -> None:
    key = mlkem.MLKEM768PrivateKey.generate()
    msg = _privkey_msg(key, "keyEncipherment", POPOPrivKey({"subsequentMessage": "encrCert"}))
    with pytest.raises(BadAlg):
        verify_popo(msg)
    brainpool = ec.generate_private_key(ec.BrainpoolP256R1())
    msg = _privkey_msg(brainpool, "keyAgreement", POPOPrivKey({"subsequentMessage": "encrCert"}))
    with pytest.raises(BadAlg):
        verify_popo(msg)


@pytest.mark.parametrize(
    ("kind", "key", "label"),
    [
        ("keyEncipherment", P256, "EC"),
        ("keyEncipherment", SIGNING_KEYS["ed25519"], "Ed25519"),
        ("keyAgreement", RSA, "RSA"),
        ("keyAgreement", SIGNING_KEYS["ml-dsa-44"], "ML-DSA-44"),
    ],
)
def test_kind_not_fitting_the_key_is_bad_pop(kind: str, key: object, label: str) -> None:
    msg = _privkey_msg(key, kind, POPOPrivKey({"subsequentMessage": "encrCert"}))
    with pytest.raises(BadPOP, match=f"{kind} POPO is not possible with an {label} key"):
        verify_popo(msg)


def test_encr_cert_without_public_key_is_bad_pop() -> None:
    msg = _received(
        _cert_request(None, subject=_name()),
        ProofOfPossession({"keyEncipherment": POPOPrivKey({"subsequentMessage": "encrCert"})}),
    )
    with pytest.raises(BadPOP, match="no publicKey"):
        verify_popo(msg)


def _mac_value() -> PKMACValue:
    return PKMACValue({"algId": _pbm_alg(), "value": b"\x00" * 32})


def _encrypted_key() -> object:
    return envelope(b"k", _spki_der(RSA), os.urandom)


_ENC, _AGREE = "keyEncipherment", "keyAgreement"
_CHALLENGE = "challenge-response POP not supported"


@pytest.mark.parametrize(
    ("kind", "key", "privkey", "text"),
    [
        (_ENC, RSA, lambda: {"subsequentMessage": "challengeResp"}, _CHALLENGE),
        (_AGREE, P256, lambda: {"subsequentMessage": "challengeResp"}, _CHALLENGE),
        (_ENC, RSA, lambda: {"thisMessage": b"\x01\x02"}, "thisMessage POP is deprecated"),
        (_AGREE, P256, lambda: {"dhMAC": b"\x01\x02"}, "dhMAC POP is deprecated"),
        (_AGREE, P256, lambda: {"agreeMAC": _mac_value()}, "agreeMAC POP not supported"),
        (_ENC, RSA, lambda: {"encryptedKey": _encrypted_key()}, "encryptedKey POP"),
        (_ENC, RSA, lambda: {"subsequentMessage": 7}, "unknown subsequentMessage"),
    ],
    ids=[
        "challengeResp-enc",
        "challengeResp-agree",
        "thisMessage",
        "dhMAC",
        "agreeMAC",
        "encryptedKey",
        "unknown-subsequent",
    ],
)
def test_unsupported_privkey_methods_are_bad_pop(
    kind: str, key: object, privkey: object, text: str
) -> None:
    msg = _privkey_msg(key, kind, POPOPrivKey(privkey()))  # type: ignore[operator]
    with pytest.raises(BadPOP, match=text):
        verify_popo(msg)


# --- PKCS#10 --------------------------------------------------------------------------------------


def _csr(key: object, algorithm: hashes.HashAlgorithm | None) -> acsr.CertificationRequest:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p10 test")])
    built = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, algorithm)  # type: ignore[arg-type]
    return load_der(acsr.CertificationRequest, built.public_bytes(serialization.Encoding.DER))


@pytest.mark.parametrize(
    ("name", "algorithm"),
    [("rsa", hashes.SHA256()), ("p256", hashes.SHA256()), ("p384", hashes.SHA384()),
     ("ed25519", None), ("ed448", None)],
)  # fmt: skip
def test_p10cr_signature_verifies(name: str, algorithm: hashes.HashAlgorithm | None) -> None:
    key = SIGNING_KEYS[name]
    result = verify_p10cr(_csr(key, algorithm))
    assert result == PopoResult(PopoMethod.SIGNATURE, "p10cr", _spki_der(key), None)


def test_p10cr_flipped_signature_or_subject_is_bad_pop() -> None:
    der = _csr(P256, hashes.SHA256()).dump()
    flipped = bytearray(der)
    flipped[-5] ^= 0x40
    with pytest.raises(BadPOP, match="PKCS#10"):
        verify_p10cr(acsr.CertificationRequest.load(bytes(flipped)))
    changed = der.replace(b"p10 test", b"p10 tesu")
    with pytest.raises(BadPOP, match="PKCS#10"):
        verify_p10cr(load_der(acsr.CertificationRequest, changed))


# --- property: our own signature POPO verifies; any single-bit change does not -------------------

_PROPERTY_KEYS = ["rsa", "p256", "ed25519", "ml-dsa-44"]
_cn = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)


@given(key_name=st.sampled_from(_PROPERTY_KEYS), cn=_cn, req_id=st.integers(0, 2**31))
@settings(max_examples=60, deadline=None)
def test_own_signature_popo_verifies(key_name: str, cn: str, req_id: int) -> None:
    key = SIGNING_KEYS[key_name]
    cert_req = CertRequest(
        {
            "certReqId": req_id,
            "certTemplate": {"subject": _name(cn), "publicKey": PublicKeyInfo.load(_spki_der(key))},
        }
    )
    msg = _received(cert_req, signature_popo(cert_req, key))  # type: ignore[arg-type]
    assert verify_popo(msg).method is PopoMethod.SIGNATURE


@functools.lru_cache(maxsize=256)
def _signed_der(key_name: str, cn: str) -> bytes:
    """Signed once per input: ECDSA and ML-DSA signatures are randomised, hypothesis replays."""
    return bytes(_signed(SIGNING_KEYS[key_name], cn=cn).dump())


@given(
    key_name=st.sampled_from(_PROPERTY_KEYS),
    cn=_cn,
    data=st.data(),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_bit_flip_in_signed_bytes_fails(key_name: str, cn: str, data: st.DataObject) -> None:
    """A flip in the subject string or the signature is badPOP; anywhere else in the signed
    certReq it is badPOP, or the message no longer decodes / names an unusable key or algorithm."""
    cn = "popo:" + cn  # a marker that locates the value in the DER
    der = _signed_der(key_name, cn)
    msg = CertReqMsg.load(der)
    cert_req_der = msg["certReq"].dump()
    start = der.index(cert_req_der)
    signature = msg["popo"].chosen["signature"].native
    sig_start = der.rindex(signature)
    cn_bytes = cn.encode()
    cn_start = der.index(cn_bytes, start)
    region = data.draw(st.sampled_from(["subject", "signature", "certReq"]))
    if region == "subject":
        index = data.draw(st.integers(cn_start, cn_start + len(cn_bytes) - 1))
        bit = data.draw(st.integers(0, 6))  # stays ASCII, so the UTF8String still decodes
    elif region == "signature":
        index = data.draw(st.integers(sig_start, sig_start + len(signature) - 1))
        bit = data.draw(st.integers(0, 7))
    else:
        index = data.draw(st.integers(start, start + len(cert_req_der) - 1))
        bit = data.draw(st.integers(0, 7))
    mutated = bytearray(der)
    mutated[index] ^= 1 << bit
    if region in ("subject", "signature"):
        parsed = CertReqMsg.load(bytes(mutated))
        with pytest.raises(BadPOP):
            verify_popo(parsed)
        return
    try:
        parsed = load_der(CertReqMsg, bytes(mutated))
    except DecodeError:
        if not key_name.startswith("ml-dsa"):
            return
        try:
            parsed = CertReqMsg.load(bytes(mutated))
            parsed["certReq"]["certTemplate"]["subject"].native  # noqa: B018
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeError):
            return
    try:
        verify_popo(parsed)
    except (BadPOP, BadAlg, DecodeError):
        return
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeError):
        # Only possible with the lazy (non-strict) parse used for ML-DSA keys.
        assert key_name.startswith("ml-dsa")
        return
    pytest.fail(f"bit {bit} of byte {index} flipped and the POPO still verified")


def _verdict(msg: CertReqMsg) -> tuple[str, str]:
    try:
        result = verify_popo(msg)
    except CmpError as error:
        return type(error).__name__, error.text
    return result.method.name, repr(result)


@given(key_name=st.sampled_from(_PROPERTY_KEYS), cn=_cn, data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_der_fast_path_gives_the_general_verdict(
    key_name: str, cn: str, data: st.DataObject
) -> None:
    """The signature POPO read from the DER (`_plain_signature_popo`) answers as the general,
    asn1crypto path does: for intact requests and for any bit flipped in them."""
    der = bytearray(_signed_der(key_name, cn))
    if data.draw(st.booleans()):
        der[data.draw(st.integers(0, len(der) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    try:
        msg = load_der(CertReqMsg, bytes(der))
    except DecodeError:
        return
    assert popo_module._plain_signature_popo(msg) is not None or bytes(der) != _signed_der(
        key_name, cn
    )
    fast = _verdict(msg)
    with mock.patch.object(popo_module, "_plain_signature_popo", lambda _msg: None):
        general = _verdict(load_der(CertReqMsg, bytes(der)))
    assert fast == general


# --- real OpenSSL messages -----------------------------------------------------------------------


def _manifest() -> list[dict[str, object]]:
    path = FIXTURES / "manifest.json"
    if not path.exists():
        pytest.skip("no OpenSSL fixtures (tests/fixtures/openssl/manifest.json)")
    data = json.loads(path.read_text())
    entries = data["messages"] if isinstance(data, dict) and "messages" in data else data
    return list(entries)


def _fixture_requests() -> list[tuple[str, PKIMessage, dict[str, object]]]:
    out = []
    for entry in _manifest():
        if entry.get("body") in ("ir", "cr", "kur", "p10cr"):
            file = str(entry["file"])
            out.append((file, PKIMessage.load((FIXTURES / file).read_bytes()), entry))
    if not out:
        pytest.skip("the OpenSSL fixtures contain no certificate requests")
    return out


def _verify_message(msg: PKIMessage, *, accept_ra_verified: bool = False) -> list[PopoResult]:
    body = msg["body"]
    if body.name == "p10cr":
        return [verify_p10cr(body.chosen)]
    sender = msg["header"]["sender"]
    return [
        verify_popo(crm, sender=sender, accept_ra_verified=accept_ra_verified)
        for crm in body.chosen
    ]


def test_openssl_request_popos_verify() -> None:
    counts: dict[str, int] = {}
    for file, msg, entry in _fixture_requests():
        if entry.get("popo") == "raVerified":
            with pytest.raises(BadPOP, match="raVerified"):
                _verify_message(msg)
            results = _verify_message(msg, accept_ra_verified=True)
            assert [r.method for r in results] == [PopoMethod.RA_VERIFIED], file
        else:
            results = _verify_message(msg)
            assert [r.method for r in results] == [PopoMethod.SIGNATURE], file
        assert all(r.public_key is not None for r in results), file
        counts[msg["body"].name] = counts.get(msg["body"].name, 0) + 1
    # Every request kind the fixtures hold was seen (ir, cr, kur and p10cr when present).
    assert counts.get("ir", 0) > 0


def test_openssl_p10cr_key_is_the_csr_key() -> None:
    for file, msg, entry in _fixture_requests():
        if msg["body"].name != "p10cr":
            continue
        csr = x509.load_pem_x509_csr((FIXTURES / str(entry["csr"])).read_bytes())
        expected = csr.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert verify_p10cr(msg["body"].chosen).public_key == expected, file


def _flip(der: bytes, index: int, mask: int = 0x01) -> bytes:
    mutated = bytearray(der)
    mutated[index] ^= mask
    return bytes(mutated)


def test_openssl_request_flipped_signature_is_bad_pop() -> None:
    for _file, msg, _entry in _fixture_requests():
        der = msg.dump()
        body = msg["body"]
        if body.name == "p10cr":
            signature = body.chosen["signature"].native
        else:
            popo = body.chosen[0]["popo"]
            if popo.name != "signature":
                continue
            signature = popo.chosen["signature"].native
        index = der.index(signature) + len(signature) // 2
        with pytest.raises(BadPOP):
            _verify_message(PKIMessage.load(_flip(der, index)))


def test_openssl_request_flipped_template_is_bad_pop() -> None:
    for file, msg, _entry in _fixture_requests():
        der = msg.dump()
        body = msg["body"]
        if body.name == "p10cr":
            signed = body.chosen["certification_request_info"]
            name = signed["subject"]
        else:
            if body.chosen[0]["popo"].name != "signature":
                continue
            signed = body.chosen[0]["certReq"]
            name = signed["certTemplate"]["subject"]
        # Flip the lowest bit of the last character of the subject's last attribute value (not
        # in the header's sender, which often is the same name): the message still decodes.
        value_bytes = name.chosen[-1][0]["value"].contents
        index = der.index(value_bytes, der.index(signed.dump())) + len(value_bytes) - 1
        mutated = PKIMessage.load(_flip(der, index))
        try:
            with pytest.raises(BadPOP):
                _verify_message(mutated)
        except CmpError as exc:  # pragma: no cover - reported with the file name
            pytest.fail(f"{file}: {exc!r}")


# ---- reading a SubjectPublicKeyInfo from its DER ------------------------------------------------


@pytest.mark.parametrize("key_name", SIGNING_KEYS)
def test_spki_parts_agree_with_a_full_parse(key_name: str) -> None:
    spki = _spki_der(SIGNING_KEYS[key_name])
    parsed = popo_module.core.Sequence.load(spki)
    expected_oid = popo_module.core.ObjectIdentifier.load(parsed[0][0].dump()).dotted
    expected_bits = popo_module.core.BitString.load(parsed[1].dump()).contents[1:]
    assert popo_module._spki_parts(spki) == (expected_oid, expected_bits)


def test_spki_parts_of_an_empty_public_key() -> None:
    spki = bytes.fromhex("3010300b0609608648016503040312030100")
    assert popo_module._spki_parts(spki) == ("2.16.840.1.101.3.4.3.18", b"")


@pytest.mark.parametrize(
    "spki_hex",
    [
        "",
        "30",
        "3003020100",  # no BIT STRING
        "300730020500030100",  # no OID in the AlgorithmIdentifier
        "300a31050603550403030100",  # AlgorithmIdentifier is a SET
        "3007300506035504030301",  # truncated
        "300a3005060355040303010000",  # trailing bytes
        "300a30050603550403040100",  # OCTET STRING instead of BIT STRING
    ],
)
def test_malformed_spki_is_a_decode_error(spki_hex: str) -> None:
    with pytest.raises(DecodeError):
        popo_module._spki_parts(bytes.fromhex(spki_hex))
