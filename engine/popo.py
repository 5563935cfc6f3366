"""Proof-of-possession of certificate requests (RFC 4211 4, RFC 9810 5.2.8, RFC 9483 4.1.1).

`verify_popo` checks the POPO of one CertReqMsg (ir/cr/kur/krr/ccr), `verify_p10cr` the
self-signature of a PKCS#10 request; both return a `PopoResult` telling the server how the
private key was proven, e.g. that the certificate must go back encrypted (indirect method).
A request for central key generation (RFC 9483 4.1.6) has no key to prove: `central_keygen_popo`
gives its `PopoResult` (check `central_keygen_requested` / `p10cr_central_keygen_requested` first,
as OpenSSL's server checks OSSL_CRMF_MSG_centralkeygen_requested before verifying any POPO).

Failure bits: a POPO that is missing, of a kind the key cannot give or the server does not
accept, inconsistent with the template, or whose signature or MAC does not verify is `badPOP`
(as OpenSSL's server answers every POPO failure). An algorithm this engine does not implement
(unknown key type, signature algorithm that is unsupported or does not fit the key, no way to
encrypt to the key) is `badAlg`: the client could succeed with another algorithm.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from asn1crypto import core
from asn1crypto.csr import CertificationRequest
from asn1crypto.x509 import GeneralName

from .asn1 import (
    AlgorithmIdentifier,
    CertReqMsg,
    CertRequest,
    POPOSigningKeyInput,
    ProofOfPossession,
    load_der,
)
from .encode import contents_of, sequence, split
from .envelope import check_recipient_key
from .errors import BadAlg, BadPOP, DecodeError
from .memo import IDENTIFIER_BYTES, remembered
from .pbm import DEFAULT_POLICY, DerivedKeyCache, MacPolicy, parse_mac_algorithm, verify_mac
from .signature import SigningKey, default_algorithm, load_public_key, sign, verify

PkMacVerifier = Callable[[AlgorithmIdentifier, bytes, bytes], bool]
"""`(algId, data, mac_value) -> bool`: checks a PKMACValue (RFC 4211 4.4, RFC 9045) with the
shared secret the caller holds for this requester; may raise `BadAlg` for an unsupported algId."""


def pkmac_verifier(
    secret: bytes, policy: MacPolicy = DEFAULT_POLICY, cache: DerivedKeyCache | None = None
) -> PkMacVerifier:
    """A `PkMacVerifier` for PasswordBasedMac or PBMAC1 (RFC 9045) with the requester's secret."""

    def check(alg_id: AlgorithmIdentifier, data: bytes, mac_value: bytes) -> bool:
        return verify_mac(parse_mac_algorithm(alg_id, policy), secret, data, mac_value, cache)

    return check


class PopoMethod(enum.Enum):
    """How possession of the private key was established."""

    RA_VERIFIED = "raVerified"
    SIGNATURE = "signature"
    ENCR_CERT = "encrCert"  # indirect method: the certificate must be returned encrypted
    CENTRAL_KEYGEN = "centralKeyGen"  # no key yet: the CA generates it (RFC 9483 4.1.6)


@dataclass(frozen=True)
class PopoResult:
    """The outcome of a successful POPO check: what the server must do next follows from it."""

    method: PopoMethod
    kind: str  # ProofOfPossession alternative, or "p10cr": raVerified, signature, keyEncipherment…
    public_key: bytes | None  # DER SubjectPublicKeyInfo from the template / CSR, if present
    auth_info: str | None = None  # "sender" or "publicKeyMAC" when POPOSigningKeyInput was used

    @property
    def encrypt_certificate(self) -> bool:
        """Whether the issued certificate must be sent as EnvelopedData (encrCert)."""
        return self.method is PopoMethod.ENCR_CERT

    @property
    def central_keygen(self) -> bool:
        """Whether the requester asked the CA to generate the key pair (no POPO, no key): the
        answer must carry the private key (CertifiedKeyPair.privateKey)."""
        return self.method is PopoMethod.CENTRAL_KEYGEN


# What a key can prove, by SubjectPublicKeyInfo algorithm OID (RFC 9481 3-4, RFC 9814, FIPS 203).
_SIGN, _ENCIPHER, _AGREE = "sign", "encipher", "agree"
_KEY_USES: dict[str, tuple[str, frozenset[str]]] = {
    "1.2.840.113549.1.1.1": ("RSA", frozenset({_SIGN, _ENCIPHER})),
    "1.2.840.113549.1.1.10": ("RSASSA-PSS", frozenset({_SIGN})),
    "1.2.840.10045.2.1": ("EC", frozenset({_SIGN, _AGREE})),
    "1.3.101.112": ("Ed25519", frozenset({_SIGN})),
    "1.3.101.113": ("Ed448", frozenset({_SIGN})),
    "1.3.101.110": ("X25519", frozenset({_AGREE})),
    "1.3.101.111": ("X448", frozenset({_AGREE})),
    "2.16.840.1.101.3.4.3.17": ("ML-DSA-44", frozenset({_SIGN})),
    "2.16.840.1.101.3.4.3.18": ("ML-DSA-65", frozenset({_SIGN})),
    "2.16.840.1.101.3.4.3.19": ("ML-DSA-87", frozenset({_SIGN})),
    "2.16.840.1.101.3.4.4.1": ("ML-KEM-512", frozenset({_ENCIPHER})),
    "2.16.840.1.101.3.4.4.2": ("ML-KEM-768", frozenset({_ENCIPHER})),
    "2.16.840.1.101.3.4.4.3": ("ML-KEM-1024", frozenset({_ENCIPHER})),
}
_USE_OF_KIND = {"signature": _SIGN, "keyEncipherment": _ENCIPHER, "keyAgreement": _AGREE}
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)
_POPO_SIGNATURE = 0xA1  # ProofOfPossession signature [1] IMPLICIT POPOSigningKey
_TEMPLATE_SUBJECT = 0xA5  # CertTemplate subject [5] (EXPLICIT: Name is a CHOICE)
_TEMPLATE_PUBLIC_KEY = 0xA6  # CertTemplate publicKey [6] IMPLICIT SubjectPublicKeyInfo

# POPOPrivKey alternatives this engine does not implement, with the reason given to the client.
_REJECTED_PRIVKEY = {
    "thisMessage": "thisMessage POP is deprecated by RFC 9810 and not supported",
    "dhMAC": "dhMAC POP is deprecated by RFC 9810 and not supported",
    "agreeMAC": "agreeMAC POP not supported",
    "encryptedKey": "encryptedKey POP (private key in EnvelopedData) not supported",
}


def template_public_key(cert_req_msg: CertReqMsg) -> bytes | None:
    """The template's publicKey as DER SubjectPublicKeyInfo, or None if absent."""
    field = cert_req_msg["certReq"]["certTemplate"]["publicKey"]
    if _is_void(field):
        return None
    # publicKey is [6] IMPLICIT in the template: rebuild the SEQUENCE header around its contents.
    return sequence(field.contents)


def central_keygen_requested(cert_req_msg: CertReqMsg) -> bool:
    """Whether the request asks the CA to generate the key (RFC 9483 4.1.6): no POPO and no key.

    "No key" is an absent publicKey or one with an empty subjectPublicKey BIT STRING (which names
    the wanted algorithm). Check this before `verify_popo`, which requires a POPO.
    """
    if not _is_void(cert_req_msg["popo"]):
        return False
    spki = template_public_key(cert_req_msg)
    return spki is None or _spki_parts(spki)[1] == b""


def p10cr_central_keygen_requested(csr: CertificationRequest) -> bool:
    """OpenSSL's rule for a p10cr (OSSL_CRMF_MSG_centralkeygen_requested): an empty
    subjectPublicKey asks for central key generation; its self-signature is then not checked."""
    try:
        spki = csr["certification_request_info"]["subject_pk_info"].dump()
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed PKCS#10 request: {exc}") from None
    return _spki_parts(spki)[1] == b""


def central_keygen_popo() -> PopoResult:
    """The `PopoResult` of a central key generation request: nothing proven, no public key (the
    template's publicKey, if any, only names the wanted algorithm and stays in the template)."""
    return PopoResult(PopoMethod.CENTRAL_KEYGEN, "none", None)


def verify_popo(
    cert_req_msg: CertReqMsg,
    *,
    sender: GeneralName | None = None,
    accept_ra_verified: bool = False,
    pkmac_verify: PkMacVerifier | None = None,
) -> PopoResult:
    """Verify the proof-of-possession of one parsed CertReqMsg; raise `BadPOP`/`BadAlg` if not.

    `sender` is the message's authenticated sender (checked against poposkInput's authInfo
    sender); `accept_ra_verified` allows raVerified (OpenSSL's accept_raverified: only for an
    RA the server trusts); `pkmac_verify` checks a publicKeyMAC with the requester's secret.
    """
    signed = _plain_signature_popo(cert_req_msg)
    if signed is not None:
        return _verify_plain_signature(*signed)
    popo = cert_req_msg["popo"]
    if _is_void(popo):
        raise BadPOP("proof-of-possession missing (required unless central key generation)")
    kind = popo.name
    if kind == "raVerified":
        if not accept_ra_verified:
            raise BadPOP("raVerified POPO not accepted")
        return PopoResult(PopoMethod.RA_VERIFIED, kind, template_public_key(cert_req_msg))
    spki = template_public_key(cert_req_msg)
    if spki is None:
        raise BadPOP(f"{kind} POPO but the certificate template has no publicKey")
    oid, bits = _spki_parts(spki)
    if bits == b"":
        raise BadPOP(f"{kind} POPO for an empty public key (central key generation takes none)")
    _check_key_use(oid, kind)
    if kind == "signature":
        return _verify_signature_popo(cert_req_msg, spki, sender, pkmac_verify)
    return _verify_privkey_popo(popo.chosen, kind, spki)


def verify_p10cr(csr: CertificationRequest) -> PopoResult:
    """Verify a PKCS#10 request's self-signature over certificationRequestInfo as received."""
    try:
        info_der = csr["certification_request_info"].dump()
        spki = csr["certification_request_info"]["subject_pk_info"].dump()
        alg_der = csr["signature_algorithm"].dump()
        signature = csr["signature"].native
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed PKCS#10 request: {exc}") from None
    _check_key_use(_spki_parts(spki)[0], "signature")
    alg = load_der(AlgorithmIdentifier, alg_der)
    if not verify(load_public_key(spki), alg, info_der, signature):
        raise BadPOP("PKCS#10 request signature does not verify")
    return PopoResult(PopoMethod.SIGNATURE, "p10cr", spki)


def signature_popo(
    cert_request: CertRequest,
    key: SigningKey,
    *,
    alg: AlgorithmIdentifier | None = None,
    poposk_input: POPOSigningKeyInput | None = None,
) -> ProofOfPossession:
    """Build a signature POPO (client side): over certReq, or over poposkInput when given."""
    if alg is None:
        alg = default_algorithm(key)
    signed = cert_request.dump() if poposk_input is None else poposk_input.dump()
    value: dict[str, object] = {"algorithmIdentifier": alg, "signature": sign(key, alg, signed)}
    if poposk_input is not None:
        value["poposkInput"] = poposk_input
    return ProofOfPossession({"signature": value})


def _verify_signature_popo(
    cert_req_msg: CertReqMsg,
    spki: bytes,
    sender: GeneralName | None,
    pkmac_verify: PkMacVerifier | None,
) -> PopoResult:
    """RFC 4211 4.1: the signature is over certReq, or over poposkInput if the subject is absent."""
    popo_key = cert_req_msg["popo"].chosen
    template = cert_req_msg["certReq"]["certTemplate"]
    has_subject = not _is_void(template["subject"])
    poposk_input = popo_key["poposkInput"]
    auth_info: str | None = None
    if _is_void(poposk_input):
        if not has_subject:
            raise BadPOP("signature POPO without poposkInput requires a subject in the template")
        signed = cert_req_msg["certReq"].dump()
    else:
        if has_subject:
            raise BadPOP("poposkInput must be absent when the template has subject and publicKey")
        if poposk_input["publicKey"].contents != template["publicKey"].contents:
            raise BadPOP("poposkInput publicKey differs from the template's publicKey")
        auth_info = _check_auth_info(poposk_input, sender, pkmac_verify)
        # poposkInput is [0] IMPLICIT: the signature covers it as a plain SEQUENCE.
        signed = sequence(poposk_input.contents)
    alg = popo_key["algorithmIdentifier"]
    if not verify(load_public_key(spki), alg, signed, popo_key["signature"].native):
        raise BadPOP("signature POPO does not verify")
    return PopoResult(PopoMethod.SIGNATURE, "signature", spki, auth_info)


def _plain_signature_popo(cert_req_msg: CertReqMsg) -> tuple[bytes, bytes, bytes, bytes] | None:
    """(SPKI, signed certReq, algorithm, signature) of the most common POPO, read from the DER:
    a signature over certReq by the key of a template with subject and publicKey (RFC 9483
    4.1.1). None for anything else, which `verify_popo` reads through asn1crypto as it must."""
    try:
        parts = split(contents_of(cert_req_msg.dump()))
        cert_req, popo = parts[0], parts[1]
        if popo[0] != _POPO_SIGNATURE:
            return None
        key_parts = split(contents_of(popo))
        template = split(contents_of(cert_req))[1]
        fields = {field[0]: field for field in split(contents_of(template))}
    except (ValueError, IndexError):
        return None
    public_key = fields.get(_TEMPLATE_PUBLIC_KEY)
    if len(key_parts) != 2 or _TEMPLATE_SUBJECT not in fields or public_key is None:
        return None  # poposkInput, or no subject, or no key: the general path
    algorithm, signature = key_parts
    signature_contents = contents_of(signature)
    if algorithm[0] != 0x30 or signature[0] != 0x03 or signature_contents[:1] != b"\x00":
        return None  # not an OCTET-aligned BIT STRING: the general path says what is wrong
    return sequence(contents_of(public_key)), cert_req, algorithm, signature_contents[1:]


def _verify_plain_signature(
    spki: bytes, signed: bytes, algorithm_der: bytes, signature: bytes
) -> PopoResult:
    """The checks `verify_popo` makes of a signature POPO over certReq, in the same order."""
    oid, bits = _spki_parts(spki)
    if bits == b"":
        raise BadPOP("signature POPO for an empty public key (central key generation takes none)")
    _check_key_use(oid, "signature")
    if not verify(load_public_key(spki), _algorithm(algorithm_der), signed, signature):
        raise BadPOP("signature POPO does not verify")
    return PopoResult(PopoMethod.SIGNATURE, "signature", spki)


@remembered(maxsize=64, max_key_size=IDENTIFIER_BYTES)
def _algorithm(der: bytes) -> AlgorithmIdentifier:
    """A signature AlgorithmIdentifier, parsed once per distinct encoding (a handful in use)."""
    return load_der(AlgorithmIdentifier, der)


def _check_auth_info(
    poposk_input: POPOSigningKeyInput,
    sender: GeneralName | None,
    pkmac_verify: PkMacVerifier | None,
) -> str:
    auth = poposk_input["authInfo"]
    if auth.name == "sender":
        if sender is None:
            raise BadPOP("poposkInput names a sender but the message has no authenticated sender")
        if not _same_general_name(auth.chosen, sender):
            raise BadPOP("poposkInput sender differs from the authenticated message sender")
        return "sender"
    mac = auth.chosen
    if pkmac_verify is None:
        raise BadPOP("publicKeyMAC POPO but no shared secret is known for this requester")
    # RFC 4211 4.1: the MAC is over the DER of poposkInput's publicKey (a plain SPKI SEQUENCE).
    public_key_der = poposk_input["publicKey"].dump()
    if not pkmac_verify(mac["algId"], public_key_der, mac["value"].native):
        raise BadPOP("publicKeyMAC does not verify")
    return "publicKeyMAC"


def _verify_privkey_popo(privkey: core.Choice, kind: str, spki: bytes) -> PopoResult:
    """keyEncipherment / keyAgreement (RFC 9810 5.2.8.3): only the encrCert indirect method."""
    name = privkey.name
    if name in _REJECTED_PRIVKEY:
        raise BadPOP(_REJECTED_PRIVKEY[name])
    value = privkey.chosen.native
    if value == "challengeResp":
        raise BadPOP("challenge-response POP not supported")
    if value != "encrCert":
        raise BadPOP(f"unknown subsequentMessage value {value}")
    check_recipient_key(spki)  # BadAlg when the certificate could not be encrypted to this key
    return PopoResult(PopoMethod.ENCR_CERT, kind, spki)


def _check_key_use(oid: str, kind: str) -> None:
    entry = _KEY_USES.get(oid)
    if entry is None:
        raise BadAlg(f"unsupported public key algorithm {oid}")
    label, uses = entry
    if _USE_OF_KIND[kind] not in uses:
        raise BadPOP(f"{kind} POPO is not possible with an {label} key")


def _spki_parts(spki_der: bytes) -> tuple[str, bytes]:
    """(algorithm OID, subjectPublicKey bits) without typing the key (asn1crypto cannot: ML-DSA).

    Read straight from the DER: SEQUENCE { SEQUENCE { OID, ... }, BIT STRING }.
    """
    try:
        (spki,) = split(spki_der)
        algorithm, public_key = split(contents_of(spki))
        oid = split(contents_of(algorithm))[0]
        if (spki[0], algorithm[0], oid[0], public_key[0]) != (0x30, 0x30, 0x06, 0x03):
            raise ValueError("unexpected tags")
        return _dotted(oid), contents_of(public_key)[1:]
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed SubjectPublicKeyInfo: {exc}") from None


@remembered(maxsize=256, max_key_size=IDENTIFIER_BYTES)
def _dotted(oid_der: bytes) -> str:
    """The dotted form of a DER OBJECT IDENTIFIER (cached: a few key algorithms recur)."""
    return str(core.ObjectIdentifier.load(oid_der).dotted)


def _is_void(value: object) -> bool:
    return isinstance(value, core.Void)


def _same_general_name(a: GeneralName, b: GeneralName) -> bool:
    """GeneralName equality; directory names compare per RFC 5280 7.1 (asn1crypto's Name ==)."""
    if a.name != b.name:
        return False
    if a.name == "directory_name":
        return bool(a.chosen == b.chosen)
    return bool(a.chosen.dump() == b.chosen.dump())
