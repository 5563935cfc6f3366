"""Real `openssl cmp` (OpenSSL 3.0) messages decode with our definitions, re-encode byte for byte,
and carry exactly what the fixture manifest says they were asked to carry.

The fixtures are in tests/fixtures/openssl (see its README.md and regenerate.sh); manifest.json
describes every DER file. Expected values are computed on an independent path wherever possible:
names, keys, hashes and SKIDs come from `cryptography`, OIDs and bit names are spelled out here from
the RFCs, the protected part is cut from the raw DER with a tiny TLV reader, and the PBM MAC and
the signatures (protection and POPO) are recomputed and verified with hashlib/hmac/`cryptography`.

Facts of OpenSSL 3.0 that the manifest does not state but the tests pin (they hold for every run
of regenerate.sh): PBM uses iterationCount 500 and a 16-byte salt; transactionID and nonces are 16
bytes; every message carries messageTime; RSA signature AlgorithmIdentifiers omit the NULL
parameters; p10cr is answered and confirmed with certReqId -1 (RFC 9810 5.3.4); the 3.0 mock server
answers a genm by echoing the request's InfoTypeAndValues, i.e. without infoValue.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from sanscmp.engine.asn1 import (
    AlgorithmIdentifiers,
    CertId,
    DecodeError,
    InfoTypeAndValue,
    PBMParameter,
    PKIMessage,
    load_der,
)

FIXTURES = Path(__file__).parent / "fixtures" / "openssl"
MANIFEST: list[dict[str, Any]] = json.loads((FIXTURES / "manifest.json").read_text("utf-8"))
BY_FILE = {e["file"]: e for e in MANIFEST}
SCENARIOS: dict[str, list[dict[str, Any]]] = {}
for _e in sorted(MANIFEST, key=lambda e: e["index"]):
    SCENARIOS.setdefault(_e["scenario"], []).append(_e)

# ------------------------------------------------------------------------------------------
# Constants spelled out from the RFCs (not taken from the engine)
# ------------------------------------------------------------------------------------------

PBM = ("id-PasswordBasedMac", "1.2.840.113533.7.66.13")  # RFC 9810 5.1.3.1
OWF = {  # RFC 9481 2
    "sha1": ("id-sha1", "1.3.14.3.2.26"),
    "sha256": ("id-sha256", "2.16.840.1.101.3.4.2.1"),
    "sha384": ("id-sha384", "2.16.840.1.101.3.4.2.2"),
    "sha512": ("id-sha512", "2.16.840.1.101.3.4.2.3"),
}
MAC = {  # RFC 9481 6.2: manifest spelling -> (our name, OID, hashlib name)
    "hmac-sha1": ("hmac-sha1", "1.3.6.1.5.5.8.1.2", "sha1"),
    "hmacWithSHA256": ("id-hmacWithSHA256", "1.2.840.113549.2.9", "sha256"),
    "hmacWithSHA384": ("id-hmacWithSHA384", "1.2.840.113549.2.10", "sha384"),
    "hmacWithSHA512": ("id-hmacWithSHA512", "1.2.840.113549.2.11", "sha512"),
}
SIGNATURE = {  # RFC 9481 3: (key family, digest) -> (our name, OID)
    ("ec", "sha1"): ("ecdsa-with-SHA1", "1.2.840.10045.4.1"),
    ("ec", "sha256"): ("ecdsa-with-SHA256", "1.2.840.10045.4.3.2"),
    ("ec", "sha384"): ("ecdsa-with-SHA384", "1.2.840.10045.4.3.3"),
    ("ec", "sha512"): ("ecdsa-with-SHA512", "1.2.840.10045.4.3.4"),
    ("rsa", "sha256"): ("sha256WithRSAEncryption", "1.2.840.113549.1.1.11"),
    ("rsa", "sha384"): ("sha384WithRSAEncryption", "1.2.840.113549.1.1.12"),
    ("rsa", "sha512"): ("sha512WithRSAEncryption", "1.2.840.113549.1.1.13"),
    ("ed25519", None): ("id-Ed25519", "1.3.101.112"),
}
HASHES = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
PKI_STATUS = [  # RFC 9810 5.2.3
    "accepted",
    "grantedWithMods",
    "rejection",
    "waiting",
    "revocationWarning",
    "revocationNotification",
    "keyUpdateWarning",
]
FAIL_INFO = [  # RFC 9810 5.2.3, bit 0 first
    "badAlg",
    "badMessageCheck",
    "badRequest",
    "badTime",
    "badCertId",
    "badDataFormat",
    "wrongAuthority",
    "incorrectData",
    "missingTimeStamp",
    "badPOP",
    "certRevoked",
    "certConfirmed",
    "wrongIntegrity",
    "badRecipientNonce",
    "timeNotAvailable",
    "unacceptedPolicy",
    "unacceptedExtension",
    "addInfoNotAvailable",
    "badSenderNonce",
    "badCertTemplate",
    "signerNotTrusted",
    "transactionIdInUse",
    "unsupportedVersion",
    "notAuthorized",
    "systemUnavail",
    "systemFailure",
    "duplicateCertReq",
]
ID_IT_IMPLICIT_CONFIRM = "1.3.6.1.5.5.7.4.13"
ID_IT_SIGN_KEY_PAIR_TYPES = "1.3.6.1.5.5.7.4.2"
ID_REGCTRL_OLD_CERT_ID = "1.3.6.1.5.5.7.5.1.5"
ID_CE_CRL_REASONS = "2.5.29.21"
OPENSSL_PBM_ITERATIONS = 500  # OpenSSL 3.0 default (-pbm_itercnt does not exist in the CLI)
OPENSSL_PBM_SALT_LEN = 16

CERT_REQUESTS = ("ir", "cr", "kur")
CERT_RESPONSES = ("ip", "cp", "kup")


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def _params(pred: Any = lambda e: True) -> list[Any]:
    return [pytest.param(e, id=e["file"]) for e in MANIFEST if pred(e)]


def _of_body(*bodies: str) -> list[Any]:
    return _params(lambda e: e["body"] in bodies)


@cache
def _der(file: str) -> bytes:
    return (FIXTURES / file).read_bytes()


@cache
def _msg(file: str) -> PKIMessage:
    return PKIMessage.load(_der(file))


@cache
def _cert(file: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((FIXTURES / file).read_bytes())


def _cert_der(file: str) -> bytes:
    return _cert(file).public_bytes(serialization.Encoding.DER)


def _spki_der(file: str) -> bytes:
    return (
        _cert(file)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _dn(rfc4514: str) -> bytes:
    return x509.Name.from_rfc4514_string(rfc4514).public_bytes()


def _untagged(value: core.Asn1Value) -> bytes:
    """DER of a value without the context tag its field puts around it."""
    return value.untag().dump()


def _directory_name(general_name: core.Asn1Value) -> bytes:
    assert general_name.name == "directory_name"
    return _untagged(general_name.chosen)


def _absent(value: core.Asn1Value) -> bool:
    return isinstance(value, core.Void)


def _int(value: core.Integer) -> int:
    """The INTEGER's value from its content octets, bypassing any named-number map."""
    return int.from_bytes(value.contents, "big", signed=True)


def _bit_mask(value: core.BitString) -> int:
    """The BIT STRING as an int with bit n (ASN.1 numbering) at 1 << n, from the raw DER."""
    unused, data = value.contents[0], value.contents[1:]
    bits = "".join(f"{b:08b}" for b in data)
    bits = bits[: len(bits) - unused] if unused else bits
    # DER, named bit list (X.690 11.2.2): no trailing zero bits
    assert not bits or bits[-1] == "1", "named BIT STRING with trailing 0 bits is not DER"
    return sum(1 << n for n, bit in enumerate(bits) if bit == "1")


def _tlv(data: bytes, pos: int) -> tuple[int, int]:
    """(start of contents, end) of the TLV at `pos` (single-byte tags only)."""
    first = data[pos + 1]
    if first < 0x80:
        return pos + 2, pos + 2 + first
    n = first & 0x7F
    length = int.from_bytes(data[pos + 2 : pos + 2 + n], "big")
    return pos + 2 + n, pos + 2 + n + length


def _children(der: bytes) -> list[bytes]:
    """The raw TLVs directly inside the outer SEQUENCE."""
    start, end = _tlv(der, 0)
    assert end == len(der)
    out, pos = [], start
    while pos < end:
        _c, stop = _tlv(der, pos)
        out.append(der[pos:stop])
        pos = stop
    return out


def _sequence(content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return b"\x30" + bytes([n]) + content
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\x30" + bytes([0x80 | len(ln)]) + ln + content


def _protected_part(file: str) -> bytes:
    """ProtectedPart ::= SEQUENCE { header, body } (RFC 9810 5.1.3), cut from the raw DER."""
    header, body, *_rest = _children(_der(file))
    msg = _msg(file)
    assert msg["header"].dump() == header and msg["body"].dump() == body
    return _sequence(header + body)


def _previous(entry: dict[str, Any]) -> dict[str, Any]:
    return SCENARIOS[entry["scenario"]][entry["index"] - 1]


def _granted_cert(scenario: str) -> str | None:
    for e in SCENARIOS[scenario]:
        if "issued_cert" in e:
            return str(e["issued_cert"])
    return None


def _expected_cert_req_id(entry: dict[str, Any]) -> int:
    # RFC 9810 5.3.4/5.3.18: a p10cr is answered and confirmed with certReqId -1
    return -1 if SCENARIOS[entry["scenario"]][0]["body"] == "p10cr" else 0


def _check_status_info(si: core.Sequence, entry: dict[str, Any]) -> None:
    status = _int(si["status"])
    assert status == entry["pkistatus"]
    assert si["status"].native == PKI_STATUS[status]
    if "failurebits" in entry:
        mask = _bit_mask(si["failInfo"])
        assert mask == entry["failurebits"]
        assert si["failInfo"].native == {n for i, n in enumerate(FAIL_INFO) if mask >> i & 1}
        if "failure" in entry:
            assert mask >> entry["failure"] & 1
    else:
        assert _absent(si["failInfo"])
    if "status_string" in entry:
        assert si["statusString"].native == [entry["status_string"]]
    else:
        assert _absent(si["statusString"])


def _verify_signature(
    key: Any, signature: bytes, data: bytes, alg_name: str, digest: str | None
) -> None:
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, data)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        assert digest is not None
        key.verify(signature, data, ec.ECDSA(HASHES[digest]()))
    elif isinstance(key, rsa.RSAPublicKey):
        assert digest is not None
        key.verify(signature, data, padding.PKCS1v15(), HASHES[digest]())
    else:  # pragma: no cover
        raise AssertionError(f"unexpected key type for {alg_name}")


# ------------------------------------------------------------------------------------------
# Every message
# ------------------------------------------------------------------------------------------


def test_manifest_describes_every_der_file() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.der")}
    assert on_disk == set(BY_FILE)
    assert len(BY_FILE) == len(MANIFEST)
    for entries in SCENARIOS.values():
        assert [e["index"] for e in entries] == list(range(len(entries)))
        directions = [e["direction"] for e in entries]
        assert directions == ["request", "response"] * (len(entries) // 2)


@pytest.mark.parametrize("entry", _params())
def test_parses_strictly_and_reencodes_byte_identically(entry: dict[str, Any]) -> None:
    der = _der(entry["file"])
    msg = PKIMessage.load(der)
    assert msg.dump() == der
    assert msg.dump(force=True) == der
    # strict: the same bytes with anything trailing are refused
    with pytest.raises(DecodeError):
        PKIMessage.load(der + b"\x00")


@pytest.mark.parametrize("entry", _params())
def test_body_choice_and_full_traversal(entry: dict[str, Any]) -> None:
    msg = PKIMessage.load(_der(entry["file"]))
    assert msg["body"].name == entry["body"]
    msg["body"].chosen.native  # noqa: B018 - must not raise
    msg.native  # noqa: B018


@pytest.mark.parametrize("entry", _params())
def test_header(entry: dict[str, Any]) -> None:
    header = _msg(entry["file"])["header"]
    assert _int(header["pvno"]) == 2  # cmp2000: OpenSSL 3.0 speaks CMPv2
    assert len(header["transactionID"].native) == 16
    assert len(header["senderNonce"].native) == 16
    assert not _absent(header["messageTime"])
    assert _absent(header["recipKID"]) and _absent(header["freeText"])
    if "recipient" in entry:
        assert _directory_name(header["recipient"]) == _dn(entry["recipient"])
    implicit = [
        itav
        for itav in (header["generalInfo"] if not _absent(header["generalInfo"]) else [])
        if itav["infoType"].dotted == ID_IT_IMPLICIT_CONFIRM
    ]
    if entry.get("implicit_confirm", False):
        assert len(implicit) == 1
        assert implicit[0]["infoType"].native == "implicitConfirm"
        assert implicit[0]["infoValue"].dump() == b"\x05\x00"  # ImplicitConfirmValue ::= NULL
    else:
        assert implicit == []


@pytest.mark.parametrize("entry", _params(lambda e: e["protection"] == "none"))
def test_unprotected(entry: dict[str, Any]) -> None:
    msg = _msg(entry["file"])
    assert _absent(msg["header"]["protectionAlg"])
    assert _absent(msg["protection"])


@pytest.mark.parametrize("entry", _params(lambda e: e["protection"] == "pbm"))
def test_pbm_protection(entry: dict[str, Any]) -> None:
    msg = _msg(entry["file"])
    header = msg["header"]
    alg = header["protectionAlg"]
    assert (alg["algorithm"].native, alg["algorithm"].dotted) == PBM
    params = alg["parameters"]
    assert isinstance(params, PBMParameter)  # typed through the AlgorithmIdentifier registry
    assert (params["owf"]["algorithm"].native, params["owf"]["algorithm"].dotted) == OWF[
        entry["digest"]
    ]
    mac_name, mac_oid, mac_hash = MAC[entry["mac"]]
    assert (params["mac"]["algorithm"].native, params["mac"]["algorithm"].dotted) == (
        mac_name,
        mac_oid,
    )
    iterations = _int(params["iterationCount"])
    salt = params["salt"].native
    assert iterations == OPENSSL_PBM_ITERATIONS
    assert len(salt) == OPENSSL_PBM_SALT_LEN
    assert header["senderKID"].native == entry["sender_kid"].encode()
    assert _absent(msg["extraCerts"])
    # RFC 9810 5.1.3.1: key = OWF^iterationCount(secret || salt), protection = MAC(key, part)
    key = entry["secret"].encode() + salt
    for _ in range(iterations):
        key = hashlib.new(entry["digest"], key).digest()
    expected = hmac.new(key, _protected_part(entry["file"]), mac_hash).digest()
    assert msg["protection"].native == expected


@pytest.mark.parametrize("entry", _params(lambda e: e["protection"] == "signature"))
def test_signature_protection(entry: dict[str, Any]) -> None:
    msg = _msg(entry["file"])
    header = msg["header"]
    family = entry["key_type"].split("-")[0]
    name, oid = SIGNATURE[(family, entry["digest"])]
    alg = header["protectionAlg"]
    assert (alg["algorithm"].native, alg["algorithm"].dotted) == (name, oid)
    # ECDSA: parameters absent (RFC 5758). RSA: RFC 4055 wants NULL, OpenSSL 3.0 omits it.
    assert _absent(alg["parameters"])
    signer = _cert(entry["signer_cert"])
    assert len(msg["extraCerts"]) == 1
    assert msg["extraCerts"][0].dump() == _cert_der(entry["signer_cert"])
    assert _directory_name(header["sender"]) == signer.subject.public_bytes()
    try:
        skid = signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:  # pragma: no cover - all fixture certs have one
        assert _absent(header["senderKID"])
    else:
        assert header["senderKID"].native == skid
    _verify_signature(
        signer.public_key(),
        msg["protection"].native,
        _protected_part(entry["file"]),
        name,
        entry["digest"],
    )


# ------------------------------------------------------------------------------------------
# Transactions
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_transaction_ids_and_nonces(scenario: str) -> None:
    entries = SCENARIOS[scenario]
    headers = [_msg(e["file"])["header"] for e in entries]
    assert len({h["transactionID"].native for h in headers}) == 1
    nonces = [h["senderNonce"].native for h in headers]
    assert len(set(nonces)) == len(nonces), "every message has a fresh senderNonce"
    for entry, header in zip(entries, headers, strict=True):
        if entry["index"] == 0:
            # a replayed error message was itself an answer and keeps that recipNonce
            assert _absent(header["recipNonce"]) == (entry["body"] != "error")
            continue
        # RFC 9810 5.1.1: recipNonce is the senderNonce of the previous message
        assert header["recipNonce"].native == nonces[entry["index"] - 1]
        if entry["direction"] == "response":
            request = headers[entry["index"] - 1]
            assert header["recipient"].dump() == request["sender"].dump()


# ------------------------------------------------------------------------------------------
# Requests
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", _of_body(*CERT_REQUESTS))
def test_cert_request(entry: dict[str, Any]) -> None:
    body = _msg(entry["file"])["body"].chosen
    assert len(body) == 1
    crm = body[0]
    cert_req = crm["certReq"]
    assert _int(cert_req["certReqId"]) == 0
    template = cert_req["certTemplate"]
    assert _untagged(template["subject"]) == _dn(entry["expected_subject"])
    assert not _absent(template["publicKey"])
    spki = _untagged(template["publicKey"])
    granted = _granted_cert(entry["scenario"])
    if granted is not None:  # the requested key is the key the CA certified
        assert spki == _spki_der(granted)
    if entry["body"] != "kur":
        assert _absent(cert_req["controls"])
    assert _absent(crm["regInfo"])

    popo = crm["popo"]
    assert popo.name == entry.get("popo", "signature")
    if popo.name == "raVerified":
        assert popo.chosen.native is None
        return
    signing_key = popo.chosen
    # RFC 4211 4.1: poposkInput is absent when the template has subject and publicKey
    assert _absent(signing_key["poposkInput"])
    if entry.get("newkey_type") == "ed25519":
        family, digest = "ed25519", None
    else:
        family, digest = "ec", entry.get("digest", "sha256")  # the requested key is P-256
    name, oid = SIGNATURE[(family, digest)]
    alg = signing_key["algorithmIdentifier"]
    assert (alg["algorithm"].native, alg["algorithm"].dotted) == (name, oid)
    key = serialization.load_der_public_key(spki)
    # the signature is over the DER of certReq (RFC 4211 4.1)
    _verify_signature(key, signing_key["signature"].native, cert_req.dump(), name, digest)


@pytest.mark.parametrize("entry", _params(lambda e: "old_cert" in e and e["body"] == "kur"))
def test_kur_old_cert_id(entry: dict[str, Any]) -> None:
    old = _cert(entry["old_cert"])
    controls = _msg(entry["file"])["body"].chosen[0]["certReq"]["controls"]
    # OpenSSL 3.0 sends the oldCertID control (RFC 4211 6.5), and nothing else
    assert [c["type"].dotted for c in controls] == [ID_REGCTRL_OLD_CERT_ID]
    assert controls[0]["type"].native == "oldCertID"
    cert_id = controls[0]["value"]
    assert isinstance(cert_id, CertId)
    assert _directory_name(cert_id["issuer"]) == old.issuer.public_bytes()
    assert _int(cert_id["serialNumber"]) == old.serial_number


@pytest.mark.parametrize("entry", _of_body("p10cr"))
def test_p10cr_carries_the_csr(entry: dict[str, Any]) -> None:
    csr = x509.load_pem_x509_csr((FIXTURES / entry["csr"]).read_bytes())
    chosen = _msg(entry["file"])["body"].chosen
    assert _untagged(chosen) == csr.public_bytes(serialization.Encoding.DER)
    assert chosen["certification_request_info"]["subject"].dump() == _dn(entry["expected_subject"])


@pytest.mark.parametrize("entry", _of_body("rr"))
def test_revocation_request(entry: dict[str, Any]) -> None:
    old = _cert(entry["old_cert"])
    body = _msg(entry["file"])["body"].chosen
    assert len(body) == 1
    details = body[0]["certDetails"]
    present = {name for name, _s, _p in details._fields if not _absent(details[name])}
    assert present == {"issuer", "serialNumber"}
    assert _untagged(details["issuer"]) == old.issuer.public_bytes()
    assert _int(details["serialNumber"]) == old.serial_number
    extensions = body[0]["crlEntryDetails"]
    assert [ext["extn_id"].dotted for ext in extensions] == [ID_CE_CRL_REASONS]
    assert extensions[0]["critical"].native is False
    # reasonCode CRLReason ::= ENUMERATED
    assert extensions[0]["extn_value"].contents == bytes([0x0A, 0x01, entry["revreason"]])


@pytest.mark.parametrize("entry", _of_body("pollReq"))
def test_poll_request(entry: dict[str, Any]) -> None:
    body = _msg(entry["file"])["body"].chosen
    assert [_int(p["certReqId"]) for p in body] == [0]


@pytest.mark.parametrize("entry", _of_body("certConf"))
def test_cert_conf(entry: dict[str, Any]) -> None:
    previous = _previous(entry)
    issued = previous["issued_cert"]
    prev_body = _msg(previous["file"])["body"].chosen
    response = prev_body["response"][0]
    issued_der = _untagged(response["certifiedKeyPair"]["certOrEncCert"].chosen)
    assert issued_der == _cert_der(issued)

    statuses = _msg(entry["file"])["body"].chosen
    assert len(statuses) == 1
    status = statuses[0]
    assert _int(status["certReqId"]) == _int(response["certReqId"])
    assert _int(status["certReqId"]) == _expected_cert_req_id(entry)
    # CMPv2 (pvno 2): no hashAlg; the hash is the one of the certificate's signature algorithm
    assert _absent(status["hashAlg"])
    hash_name = _cert(issued).signature_hash_algorithm.name
    assert hash_name == "sha256"
    assert status["certHash"].native == hashlib.new(hash_name, _cert_der(issued)).digest()
    if "pkistatus" in entry:
        _check_status_info(status["statusInfo"], entry)
    else:  # OpenSSL 3.0 always states acceptance explicitly
        info = status["statusInfo"]
        assert _int(info["status"]) == 0
        assert _absent(info["failInfo"]) and _absent(info["statusString"])


# ------------------------------------------------------------------------------------------
# Responses
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", _of_body(*CERT_RESPONSES))
def test_cert_response(entry: dict[str, Any]) -> None:
    body = _msg(entry["file"])["body"].chosen
    assert _absent(body["caPubs"])
    assert len(body["response"]) == 1
    response = body["response"][0]
    assert _int(response["certReqId"]) == _expected_cert_req_id(entry)
    _check_status_info(response["status"], entry)
    assert _absent(response["rspInfo"])
    pair = response["certifiedKeyPair"]
    if entry["pkistatus"] in (0, 1):
        assert pair["certOrEncCert"].name == "certificate"
        assert _untagged(pair["certOrEncCert"].chosen) == _cert_der(entry["issued_cert"])
        assert _absent(pair["privateKey"]) and _absent(pair["publicationInfo"])
    else:
        assert "issued_cert" not in entry
        assert _absent(pair)


@pytest.mark.parametrize("entry", _of_body("rp"))
def test_revocation_response(entry: dict[str, Any]) -> None:
    body = _msg(entry["file"])["body"].chosen
    assert len(body["status"]) == 1
    _check_status_info(body["status"][0], entry)
    old = _cert(_previous(entry)["old_cert"])
    assert len(body["revCerts"]) == 1
    cert_id = body["revCerts"][0]
    assert _directory_name(cert_id["issuer"]) == old.issuer.public_bytes()
    assert _int(cert_id["serialNumber"]) == old.serial_number
    assert _absent(body["crls"])


@pytest.mark.parametrize("entry", _of_body("pollRep"))
def test_poll_response(entry: dict[str, Any]) -> None:
    body = _msg(entry["file"])["body"].chosen
    assert len(body) == 1
    assert _int(body[0]["certReqId"]) == 0
    assert _int(body[0]["checkAfter"]) == entry["check_after"]
    assert _absent(body[0]["reason"])


@pytest.mark.parametrize("entry", _of_body("genm", "genp"))
def test_general_message(entry: dict[str, Any]) -> None:
    body = _msg(entry["file"])["body"].chosen
    if "infotype" not in entry:
        assert len(body) == 0  # `-cmd genm` without -infotype: an empty GenMsgContent
        return
    assert len(body) == 1
    itav = body[0]
    assert itav["infoType"].native == entry["infotype"]
    assert itav["infoType"].dotted == ID_IT_SIGN_KEY_PAIR_TYPES
    # the request asks without a value (RFC 9483 4.3); the 3.0 mock server echoes it unchanged
    assert _absent(itav["infoValue"])


@pytest.mark.parametrize(
    "entry", _params(lambda e: e["body"] == "genp" and e.get("infotype") == "signKeyPairTypes")
)
def test_genp_value_is_typed_by_the_registry(entry: dict[str, Any]) -> None:
    """The fixture genp has no infoValue, so give its InfoTypeAndValue one and decode it."""
    info_type = _msg(entry["file"])["body"].chosen[0]["infoType"].dump()
    ecdsa_sha256 = bytes.fromhex("300a06082a8648ce3d040302")
    ed25519_alg = bytes.fromhex("300506032b6570")
    value = _sequence(ecdsa_sha256 + ed25519_alg)
    itav = load_der(InfoTypeAndValue, _sequence(info_type + value))
    parsed = itav["infoValue"]
    assert isinstance(parsed, AlgorithmIdentifiers)
    assert [a["algorithm"].native for a in parsed] == ["ecdsa-with-SHA256", "id-Ed25519"]
    assert [a["algorithm"].dotted for a in parsed] == ["1.2.840.10045.4.3.2", "1.3.101.112"]


@pytest.mark.parametrize("entry", _of_body("error"))
def test_error_message(entry: dict[str, Any]) -> None:
    body = _msg(entry["file"])["body"].chosen
    _check_status_info(body["pKIStatusInfo"], entry)
    # OpenSSL adds its own packed error code and the error text lines
    assert not _absent(body["errorCode"])
    assert all(isinstance(line, str) for line in body["errorDetails"].native)


@pytest.mark.parametrize("entry", _of_body("pkiconf"))
def test_pki_confirm(entry: dict[str, Any]) -> None:
    chosen = _msg(entry["file"])["body"].chosen
    assert _untagged(chosen) == b"\x05\x00"
