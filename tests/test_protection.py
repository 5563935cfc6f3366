"""Protecting and verifying whole PKIMessages: round trips for every algorithm; mutations fail."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import os
import random

import pytest
from asn1crypto.core import OctetBitString, Sequence
from asn1crypto.x509 import Certificate, Name
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_trust import (
    NOW,
    der_sequence,
    dn,
    intermediate,
    issue,
    leaf,
    root,
    sign_by_hand,
    signing_key,
    unprotected,
)

from sanscmp.engine.asn1 import (
    AlgorithmIdentifier,
    DecodeError,
    PBMParameter,
    PKIMessage,
    load_der,
)
from sanscmp.engine.errors import (
    BadAlg,
    BadDataFormat,
    BadMessageCheck,
    CmpError,
    SignerNotTrusted,
    WrongIntegrity,
)
from sanscmp.engine.pbm import DerivedKeyCache, MacPolicy
from sanscmp.engine.protection import (
    Credential,
    MacCredential,
    Pbmac1Scheme,
    PbmScheme,
    ProtectionKind,
    SignatureCredential,
    VerifiedProtection,
    protect,
    protected_part_bytes,
    verify_protection,
)
from sanscmp.engine.signature import pss_algorithm
from sanscmp.engine.trust import TrustConfig

SECRET = b"insta-secret"
REF = b"client-ref-1"


class Secrets:
    """A `MacSecrets` over a dict."""

    def __init__(self, table: dict[bytes, bytes]) -> None:
        self.table = table
        self.asked: list[bytes | None] = []

    def secret_for(self, sender_kid: bytes | None) -> bytes | None:
        self.asked.append(sender_kid)
        return self.table.get(sender_kid) if sender_kid is not None else None


SECRETS = Secrets({REF: SECRET})


def trust() -> TrustConfig:
    return TrustConfig(anchors=(root(),))


def reload(msg: PKIMessage) -> PKIMessage:
    return PKIMessage.load(msg.dump())


def verify(msg: PKIMessage, **kw: object) -> VerifiedProtection:
    options: dict[str, object] = {"now": NOW, "mac_secrets": SECRETS, "trust": trust()}
    options.update(kw)
    return verify_protection(msg, **options)  # type: ignore[arg-type]


def mac_protected(scheme: PbmScheme | Pbmac1Scheme, msg: PKIMessage | None = None) -> PKIMessage:
    credential = MacCredential(REF, SECRET, scheme)
    return reload(protect(msg or unprotected(), credential, random_bytes=os.urandom))


# ---- protected part ---------------------------------------------------------------------------


def test_protected_part_is_the_sequence_of_the_received_header_and_body() -> None:
    msg = mac_protected(PbmScheme(iterations=100))
    der = msg.dump()
    header, body = msg["header"].dump(), msg["body"].dump()
    assert header + body in der
    part = protected_part_bytes(msg)
    assert part.endswith(header + body)
    assert part[:1] == b"\x30"


def test_protected_part_long_form_lengths() -> None:
    for size in (0, 100, 300, 70_000):
        msg = unprotected()
        msg["header"]["freeText"] = ["x" * size]
        part = protected_part_bytes(reload(msg))
        content = msg["header"].dump() + msg["body"].dump()
        assert part.endswith(content)
        assert Sequence.load(part).contents == content


# ---- MAC round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("owf", ["sha1", "sha256", "sha384", "sha512"])
@pytest.mark.parametrize("mac", ["sha1", "sha256", "sha384", "sha512"])
def test_pbm_round_trip(owf: str, mac: str) -> None:
    msg = mac_protected(PbmScheme(owf=owf, mac=mac, iterations=500))
    alg = msg["header"]["protectionAlg"]
    assert alg["algorithm"].native == "id-PasswordBasedMac"
    assert msg["header"]["senderKID"].native == REF
    assert len(alg["parameters"]["salt"].native) == 16
    result = verify(msg)
    assert result.kind is ProtectionKind.MAC
    assert result.sender_kid == REF
    assert result.mac_credential is not None
    assert result.mac_credential.secret == SECRET


@pytest.mark.parametrize("mac_oid", ["1.3.6.1.5.5.8.1.2", "1.2.840.113549.2.7"])
@pytest.mark.parametrize("owf", ["sha1", "sha256", "sha384", "sha512"])
def test_pbm_by_hand_is_accepted(mac_oid: str, owf: str) -> None:
    """A message MACed right here from RFC 9810 5.1.3.1 verifies: both HMAC-SHA1 identifiers."""
    salt = os.urandom(12)
    params = PBMParameter(
        {
            "salt": salt,
            "owf": {"algorithm": {"sha1": "id-sha1"}.get(owf, "id-" + owf)},
            "iterationCount": 321,
            "mac": {"algorithm": mac_oid},
        }
    )
    msg = unprotected()
    header = msg["header"].copy()
    header["protectionAlg"] = AlgorithmIdentifier(
        {"algorithm": "id-PasswordBasedMac", "parameters": params}
    )
    header["senderKID"] = REF
    content = header.dump() + msg["body"].dump()
    key = SECRET + salt
    for _ in range(321):
        key = hashlib.new(owf, key).digest()
    value = hmac.new(key, der_sequence(content), "sha1").digest()
    built = PKIMessage({"header": header, "body": msg["body"], "protection": OctetBitString(value)})
    assert verify(reload(built)).kind is ProtectionKind.MAC


@pytest.mark.parametrize("prf", ["sha256", "sha512"])
@pytest.mark.parametrize("mac", ["sha256", "sha512"])
def test_pbmac1_round_trip(prf: str, mac: str) -> None:
    msg = mac_protected(Pbmac1Scheme(prf=prf, mac=mac, iterations=1000, key_length=32))
    assert msg["header"]["protectionAlg"]["algorithm"].native == "id-PBMAC1"
    result = verify(msg)
    assert result.kind is ProtectionKind.MAC
    assert isinstance(result.mac_credential and result.mac_credential.scheme, Pbmac1Scheme)


def test_salt_comes_from_the_random_source() -> None:
    calls: list[int] = []

    def fixed(n: int) -> bytes:
        calls.append(n)
        return b"\xaa" * n

    credential = MacCredential(REF, SECRET, PbmScheme(iterations=100, salt_length=20))
    msg = protect(unprotected(), credential, random_bytes=fixed)
    assert calls == [20]
    assert msg["header"]["protectionAlg"]["parameters"]["salt"].native == b"\xaa" * 20
    again = protect(msg, credential, random_bytes=fixed)  # deterministic given its inputs
    assert again["protection"].native == msg["protection"].native


def test_answering_with_the_request_credential_hits_the_cache() -> None:
    cache = DerivedKeyCache()
    request = mac_protected(PbmScheme(iterations=20_000))
    result = verify(request, cache=cache)
    assert (cache.misses, len(cache)) == (1, 1)
    assert result.mac_credential is not None
    response = reload(
        protect(unprotected(), result.mac_credential, random_bytes=os.urandom, cache=cache)
    )
    assert cache.hits == 1
    assert response["header"]["protectionAlg"].dump() == request["header"]["protectionAlg"].dump()
    assert verify(response, cache=cache).kind is ProtectionKind.MAC
    # a fresh salt instead of the request's: a new derivation, still the same credential
    fresh = dataclasses.replace(
        result.mac_credential, scheme=dataclasses.replace(result.mac_credential.scheme, salt=None)
    )
    protect(unprotected(), fresh, random_bytes=os.urandom, cache=cache)
    assert cache.misses == 2


# ---- MAC failures -----------------------------------------------------------------------------


def test_unknown_sender_kid() -> None:
    msg = mac_protected(PbmScheme(iterations=100))
    with pytest.raises(BadMessageCheck, match="senderKID"):
        verify(msg, mac_secrets=Secrets({b"other": SECRET}))


def test_missing_sender_kid_asks_for_none() -> None:
    credential = MacCredential(None, SECRET, PbmScheme(iterations=100))
    msg = reload(protect(unprotected(), credential, random_bytes=os.urandom))
    assert msg["header"]["senderKID"].native is None
    secrets = Secrets({})
    with pytest.raises(BadMessageCheck):
        verify(msg, mac_secrets=secrets)
    assert secrets.asked == [None]


def test_wrong_secret() -> None:
    msg = mac_protected(Pbmac1Scheme(iterations=1000))
    with pytest.raises(BadMessageCheck, match="does not verify"):
        verify(msg, mac_secrets=Secrets({REF: b"not it"}))


def test_mac_parameters_outside_the_policy_are_bad_alg_before_any_lookup() -> None:
    msg = mac_protected(PbmScheme(iterations=100_001))
    secrets = Secrets({REF: SECRET})
    with pytest.raises(BadAlg, match="iterationCount"):
        verify(msg, mac_secrets=secrets)
    assert secrets.asked == []
    assert verify(msg, mac_policy=MacPolicy(max_iterations=200_000)).kind is ProtectionKind.MAC


def test_mac_when_only_signatures_are_accepted() -> None:
    with pytest.raises(WrongIntegrity):
        verify(mac_protected(PbmScheme(iterations=100)), mac_secrets=None)


# ---- signature round trips --------------------------------------------------------------------

SIGNERS = {
    "rsa-pkcs1": ("rsa", None),
    "rsa-pss": ("rsa", "pss"),
    "ecdsa-p256": ("p256", None),
    "ecdsa-p384": ("p384", None),
    "ecdsa-p521": ("p521", None),
    "ed25519": ("ed25519", None),
    "ed448": ("ed448", None),
    "ml-dsa-44": ("ml-dsa-44", None),
    "ml-dsa-65": ("ml-dsa-65", None),
    "ml-dsa-87": ("ml-dsa-87", None),
}
EXPECTED_ALG = {
    "rsa-pkcs1": "sha256WithRSAEncryption",
    "rsa-pss": "id-RSASSA-PSS",
    "ecdsa-p256": "ecdsa-with-SHA256",
    "ecdsa-p384": "ecdsa-with-SHA384",
    "ecdsa-p521": "ecdsa-with-SHA512",
    "ed25519": "id-Ed25519",
    "ed448": "id-Ed448",
    "ml-dsa-44": "id-ml-dsa-44",
    "ml-dsa-65": "id-ml-dsa-65",
    "ml-dsa-87": "id-ml-dsa-87",
}


@functools.cache
def signer_cert(kind: str) -> x509.Certificate:
    return leaf(kind)


def signature_credential(name: str) -> SignatureCredential:
    kind, variant = SIGNERS[name]
    alg = pss_algorithm("sha256") if variant == "pss" else None
    return SignatureCredential(signing_key(kind), signer_cert(kind), (intermediate(),), alg)


def signature_protected(name: str, msg: PKIMessage | None = None) -> tuple[PKIMessage, TrustConfig]:
    """`msg` (default: a genm) protected with signer `name`, reloaded from its DER."""
    protected = protect(msg or unprotected(), signature_credential(name), random_bytes=os.urandom)
    return reload(protected), trust()


@pytest.mark.parametrize("name", SIGNERS)
def test_signature_round_trip(name: str) -> None:
    msg, config = signature_protected(name)
    header = msg["header"]
    assert header["protectionAlg"]["algorithm"].native == EXPECTED_ALG[name]
    cert = signer_cert(SIGNERS[name][0])
    skid = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert header["senderKID"].native == skid
    assert header["sender"].chosen == Name.load(cert.subject.public_bytes())
    result = verify(msg, trust=config)
    assert result.kind is ProtectionKind.SIGNATURE
    assert result.certificate == cert
    assert result.chain == (cert, intermediate(), root())
    assert result.sender_kid == skid


def test_signer_known_locally_instead_of_sent() -> None:
    """extraCerts left out: the protection certificate may come from TrustConfig.intermediates."""
    protected = protect(unprotected(), signature_credential("ml-dsa-65"), random_bytes=os.urandom)
    bare = PKIMessage(
        {
            "header": protected["header"],
            "body": protected["body"],
            "protection": protected["protection"],
        }
    )
    cert = signer_cert("ml-dsa-65")
    with pytest.raises(SignerNotTrusted, match="extraCerts is empty"):
        verify(reload(bare))
    config = TrustConfig(anchors=(root(),), intermediates=(cert, intermediate()))
    assert verify(reload(bare), trust=config).certificate == cert


def test_extra_certs_order_and_existing_ones_kept() -> None:
    other = issue("other", signing_key("p256-b"))
    msg = unprotected()
    msg["extraCerts"] = [
        Certificate.load(c.public_bytes(Encoding.DER)) for c in (other, intermediate())
    ]
    protected = reload(protect(msg, signature_credential("ecdsa-p256"), random_bytes=os.urandom))
    got = [c.dump() for c in protected["extraCerts"]]
    want = [c.public_bytes(Encoding.DER) for c in (signer_cert("p256"), intermediate(), other)]
    assert got == want


def test_sender_must_be_the_certificate_subject() -> None:
    msg = unprotected(sender=dn("not the leaf"))
    with pytest.raises(ValueError, match="sender"):
        protect(msg, signature_credential("ecdsa-p256"), random_bytes=os.urandom)
    same = unprotected(sender=signer_cert("p256").subject)
    assert verify(
        reload(protect(same, signature_credential("ecdsa-p256"), random_bytes=os.urandom))
    )


def test_signature_when_only_mac_is_accepted() -> None:
    msg, _config = signature_protected("ecdsa-p256")
    with pytest.raises(WrongIntegrity):
        verify(msg, trust=None)


def test_algorithm_that_does_not_fit_the_key_is_bad_alg() -> None:
    credential = signature_credential("ecdsa-p256")
    msg = reload(protect(unprotected(), credential, random_bytes=os.urandom))
    header = msg["header"].copy()
    header["protectionAlg"] = {"algorithm": "sha256WithRSAEncryption"}
    forged = PKIMessage(
        {
            "header": header,
            "body": msg["body"],
            "protection": msg["protection"],
            "extraCerts": msg["extraCerts"],
        }
    )
    with pytest.raises(BadAlg, match="cannot verify"):
        verify(reload(forged))


def test_pss_with_a_negative_salt_length_is_bad_alg() -> None:
    alg = pss_algorithm("sha256")
    alg["parameters"]["salt_length"] = -1
    credential = signature_credential("rsa-pss")
    msg = reload(protect(unprotected(), credential, random_bytes=os.urandom))
    header = msg["header"].copy()
    header["protectionAlg"] = alg
    parts = {"header": header, "body": msg["body"], "protection": msg["protection"]}
    parts["extraCerts"] = msg["extraCerts"]
    with pytest.raises(BadAlg, match="salt length"):
        verify(reload(PKIMessage(parts)))


def test_hand_signed_message_is_accepted() -> None:
    """protect() agrees with signing SEQUENCE { header, body } directly."""
    cert = signer_cert("p256")
    msg = sign_by_hand(
        unprotected(sender=cert.subject), signing_key("p256"), [cert, intermediate()]
    )
    assert verify(msg).certificate == cert


# ---- unprotected and inconsistent -------------------------------------------------------------


def test_unprotected() -> None:
    msg = reload(unprotected())
    with pytest.raises(BadMessageCheck, match="not protected"):
        verify(msg)
    assert verify(msg, accept_unprotected=True).kind is ProtectionKind.NONE


def test_protection_alg_without_protection_and_vice_versa() -> None:
    msg = mac_protected(PbmScheme(iterations=100))
    no_value = PKIMessage({"header": msg["header"], "body": msg["body"]})
    with pytest.raises(BadMessageCheck, match="without protection"):
        verify(reload(no_value), accept_unprotected=True)
    header = msg["header"].copy()
    header["protectionAlg"] = None
    no_alg = PKIMessage({"header": header, "body": msg["body"], "protection": msg["protection"]})
    with pytest.raises(BadMessageCheck, match="without protectionAlg"):
        verify(reload(no_alg), accept_unprotected=True)


@pytest.mark.parametrize(
    "oid", ["id-DHBasedMac", "id-KemBasedMac", "1.2.3.4.5", "id-sha256", "id-RSASSA-PSS-SHAKE128"]
)
def test_unsupported_protection_algorithms(oid: str) -> None:
    msg = mac_protected(PbmScheme(iterations=100))
    header = msg["header"].copy()
    header["protectionAlg"] = {"algorithm": oid}
    other = PKIMessage({"header": header, "body": msg["body"], "protection": msg["protection"]})
    with pytest.raises(BadAlg):
        verify(reload(other))


def test_unparsable_extra_cert_is_bad_data_format() -> None:
    msg, _config = signature_protected("ecdsa-p256")
    broken = Certificate.load(intermediate().public_bytes(Encoding.DER))
    broken["tbs_certificate"]["version"] = 3  # no such X.509 version: cryptography refuses
    parts = {
        "header": msg["header"],
        "body": msg["body"],
        "protection": msg["protection"],
        "extraCerts": [msg["extraCerts"][0], broken],
    }
    with pytest.raises(BadDataFormat, match=r"extraCerts\[1\]"):
        verify(reload(PKIMessage(parts)))


# ---- single-bit flips -------------------------------------------------------------------------

ALLOWED_AFTER_MUTATION = (BadDataFormat, BadMessageCheck, BadAlg, SignerNotTrusted)


def assert_rejected(der: bytes, config: TrustConfig) -> type[CmpError]:
    """The mutated `der` must not verify, failing with a protection or decoding error."""
    try:
        mutated = PKIMessage.load(der)
    except DecodeError:
        return DecodeError
    try:
        verify(mutated, trust=config)
    except ALLOWED_AFTER_MUTATION as exc:
        return type(exc)
    raise AssertionError("a mutated message verified")


def test_object_descriptor_in_an_any_field() -> None:
    """sha256WithRSAEncryption whose NULL parameters (05 00) became an ObjectDescriptor (07 00):
    well-formed DER, so it decodes, kept raw (asn1crypto once raised AttributeError here)."""
    alg = load_der(AlgorithmIdentifier, bytes.fromhex("300d06092a864886f70d01010b0700"))
    assert alg["parameters"].native == bytes.fromhex("0700")


def regions(msg: PKIMessage) -> dict[str, range]:
    """Byte ranges of header, body, protection and extraCerts (with their tags) in the DER."""
    out = {}
    offset = len(msg.dump()) - len(msg.contents)
    for name in ("header", "body", "protection", "extraCerts"):
        size = len(msg[name].dump()) if msg[name].native is not None else 0
        out[name] = range(offset, offset + size)
        offset += size
    assert offset == len(msg.dump())
    return out


FLIP_CASES: dict[str, Credential | str] = {
    "pbm-sha256": MacCredential(REF, SECRET, PbmScheme(iterations=100)),
    "pbm-sha1": MacCredential(REF, SECRET, PbmScheme(owf="sha1", mac="sha1", iterations=100)),
    "pbmac1": MacCredential(REF, SECRET, Pbmac1Scheme(iterations=1000)),
    "rsa-pss": "rsa-pss",
    "ecdsa-p384": "ecdsa-p384",
    "ed25519": "ed25519",
    "ml-dsa-44": "ml-dsa-44",
}


def protected_case(case: str) -> tuple[PKIMessage, TrustConfig]:
    credential = FLIP_CASES[case]
    if isinstance(credential, str):
        return signature_protected(credential)
    return reload(protect(unprotected(), credential, random_bytes=os.urandom)), trust()


@pytest.mark.parametrize("case", FLIP_CASES)
def test_one_flipped_bit_in_header_body_or_protection_fails(case: str) -> None:
    msg, config = protected_case(case)
    der = msg.dump()
    assert verify(msg, trust=config)
    spans = regions(msg)
    positions: list[int] = []
    rng = random.Random(case)
    for name in ("header", "body", "protection"):
        span = spans[name]
        # every byte of header and body; the (long) protection value sampled
        positions += list(span) if name != "protection" else rng.sample(span, min(48, len(span)))
    seen: dict[str, set[str]] = {}
    for pos in positions:
        region = next(n for n, s in spans.items() if pos in s)
        bit = 1 << rng.randrange(8)
        mutated = bytearray(der)
        mutated[pos] ^= bit
        error = assert_rejected(bytes(mutated), config)
        seen.setdefault(region, set()).add(error.__name__)
    # inside the protection value itself the only possible verdict is badMessageCheck
    value_end = spans["protection"].stop
    for pos in range(value_end - 8, value_end):
        mutated = bytearray(der)
        mutated[pos] ^= 0x01
        assert assert_rejected(bytes(mutated), config) is BadMessageCheck
    assert "BadMessageCheck" in seen["header"] and "BadMessageCheck" in seen["body"]


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_every_byte_flip_of_a_signed_message_fails_including_extra_certs() -> None:
    """extraCerts is not protected, but every cert there is on the path: mutations still fail."""
    msg, config = signature_protected("ecdsa-p256")
    der = msg.dump()
    verdicts: dict[str, int] = {}
    for pos in range(len(der)):
        mutated = bytearray(der)
        mutated[pos] ^= 0x80
        name = assert_rejected(bytes(mutated), config).__name__
        verdicts[name] = verdicts.get(name, 0) + 1
    assert set(verdicts) <= {c.__name__ for c in ALLOWED_AFTER_MUTATION} | {"DecodeError"}


# ---- property: protect -> verify holds, any mutation breaks it --------------------------------

PROPERTY_CASES: list[Credential | str] = (
    [
        MacCredential(REF, SECRET, PbmScheme(owf=o, mac=m, iterations=100))
        for o in ("sha1", "sha256", "sha512")
        for m in ("sha1", "sha256", "sha512")
    ]
    + [
        MacCredential(REF, SECRET, Pbmac1Scheme(prf=p, iterations=1000, key_length=k))
        for p in ("sha256", "sha512")
        for k in (16, 32, 64)
    ]
    + list(SIGNERS)
)


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    case=st.sampled_from(PROPERTY_CASES),
    where=st.floats(0, 1, exclude_max=True),
    xor=st.integers(1, 255),
    body=st.sampled_from(["genm", "pkiconf", "error"]),
)
def test_protect_verify_and_any_single_byte_mutation(
    case: Credential | str, where: float, xor: int, body: str
) -> None:
    msg = unprotected()
    if body == "pkiconf":
        msg = PKIMessage({"header": msg["header"], "body": {"pkiconf": None}})
    elif body == "error":
        msg = PKIMessage(
            {
                "header": msg["header"],
                "body": {"error": {"pKIStatusInfo": {"status": "rejection"}, "errorCode": 7}},
            }
        )
    if isinstance(case, str):
        protected, config = signature_protected(case, msg)
    else:
        protected, config = reload(protect(msg, case, random_bytes=os.urandom)), trust()
    result = verify(protected, trust=config)
    expected_kind = ProtectionKind.SIGNATURE if isinstance(case, str) else ProtectionKind.MAC
    assert result.kind is expected_kind
    der = bytearray(protected.dump())
    der[int(where * len(der))] ^= xor
    assert_rejected(bytes(der), config)
