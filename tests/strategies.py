"""Hypothesis strategies that build valid CMP messages (RFC 9810) of every PKIBody choice.

`pki_messages()` draws a whole `PKIMessage` with a randomised header, any body type, optional
protection and extraCerts; `pki_messages(body="ir")` or `pki_messages(body=st.sampled_from([...]))`
restricts the body. `body_names` lists every PKIBody alternative, in ASN.1 order.

Certificates, CRLs and a CSR are expensive to make, so a small pool is generated once, at import
time, with `cryptography` (three EC P-256 certificates under a test CA, a self-signed Ed25519
certificate, two CRLs, a CSR); strategies draw from it and re-load a fresh asn1crypto object each
time, so that no two messages share a mutable child. Nothing generated here is ever written to disk.

Every value is built through the `sanscmp.engine.asn1` classes and is DER by construction:
`PKIMessage.load(msg.dump())` must accept it and re-encode it byte for byte.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any as TAny
from typing import TypeVar

from asn1crypto import algos, cms, core, crl, csr, keys, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from sanscmp.engine.asn1 import (
    BODY_TYPES,
    ID_KP_CMC_RA,
    AlgorithmIdentifier,
    AttributeTypeAndValue,
    CAKeyUpdAnnContent,
    CAKeyUpdContent,
    CertId,
    CertifiedKeyPair,
    CertOrEncCert,
    CertRepMessage,
    CertReqMessages,
    CertReqMsg,
    CertReqTemplateContent,
    CertRequest,
    CertResponse,
    CertStatus,
    CertTemplate,
    Challenge,
    CMPCertificate,
    CRLSource,
    CRLStatus,
    DHBMParameter,
    EncryptedKey,
    EncryptedValue,
    ErrorMsgContent,
    InfoTypeAndValue,
    KemBMParameter,
    KemCiphertextInfo,
    KeyRecRepContent,
    OptionalValidity,
    PBMParameter,
    PKIArchiveOptions,
    PKIBody,
    PKIFailureInfo,
    PKIHeader,
    PKIMessage,
    PKIPublicationInfo,
    PKIStatusInfo,
    PKMACValue,
    POPOPrivKey,
    POPOSigningKey,
    POPOSigningKeyInput,
    ProofOfPossession,
    RawValue,
    RevAnnContent,
    RevDetails,
    RevRepContent,
    RootCaKeyUpdateContent,
)
from sanscmp.engine.errors import FailInfo

__all__ = [
    "CERT_DERS",
    "CRL_DERS",
    "CSR_DER",
    "SPKI_DERS",
    "algorithm_identifiers",
    "bodies",
    "body_names",
    "cert_rep_messages",
    "cert_req_messages",
    "cert_templates",
    "general_names",
    "info_type_and_values",
    "names",
    "pki_headers",
    "pki_messages",
    "pki_status_infos",
]

body_names: tuple[str, ...] = BODY_TYPES
_NOT_NESTED = tuple(n for n in body_names if n != "nested")

_F = TypeVar("_F", bound=Callable[..., TAny])


def _cached(factory: _F) -> _F:
    """Strategy factories return the same strategy object for the same arguments: hypothesis
    validates each new strategy object, which would otherwise dominate generation time."""
    return functools.cache(factory)  # type: ignore[return-value]


UTC = dt.UTC

# --------------------------------------------------------------------------------------------
# The pool: generated once per process, never committed.
# --------------------------------------------------------------------------------------------


def _make_pool() -> tuple[list[bytes], list[bytes], bytes, list[bytes]]:
    start = dt.datetime(2025, 1, 1, tzinfo=UTC)

    def name(cn: str) -> cx509.Name:
        return cx509.Name(
            [
                cx509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "sanscmp tests"),
                cx509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("Test CA")
    ca_ski = cx509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        cx509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            cx509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    certs = [ca_cert]
    spkis = []
    for i, (cn, eku) in enumerate(
        [
            ("client-1", [ExtendedKeyUsageOID.CLIENT_AUTH]),
            ("ra-1", [cx509.ObjectIdentifier(ID_KP_CMC_RA)]),
            ("server-1.example", [ExtendedKeyUsageOID.SERVER_AUTH]),
        ]
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        spkis.append(
            key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        certs.append(
            cx509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(1000 + i)
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=365 + 30000 * (i == 2)))
            .add_extension(
                cx509.SubjectAlternativeName(
                    [cx509.DNSName(f"{cn}.example"), cx509.RFC822Name(f"{cn}@example.org")]
                ),
                critical=False,
            )
            .add_extension(cx509.ExtendedKeyUsage(eku), critical=False)
            .add_extension(
                cx509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )

    ed_key = ed25519.Ed25519PrivateKey.generate()
    ed_name = name("ed25519 self-signed")
    certs.append(
        cx509.CertificateBuilder()
        .subject_name(ed_name)
        .issuer_name(ed_name)
        .public_key(ed_key.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .sign(ed_key, None)
    )
    spkis.append(
        ed_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    spkis.append(
        x25519.X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    revoked = (
        cx509.RevokedCertificateBuilder()
        .serial_number(1001)
        .revocation_date(start + dt.timedelta(days=3))
        .add_extension(cx509.CRLReason(cx509.ReasonFlags.key_compromise), critical=False)
        .build()
    )
    crls = [
        cx509.CertificateRevocationListBuilder()
        .issuer_name(ca_name)
        .last_update(start + dt.timedelta(days=days))
        .next_update(start + dt.timedelta(days=days + 7))
        .add_extension(cx509.CRLNumber(days), critical=False)
        .sign(ca_key, hashes.SHA256())
        for days in (1, 8)
    ]
    crls.append(
        cx509.CertificateRevocationListBuilder()
        .issuer_name(ca_name)
        .last_update(start + dt.timedelta(days=15))
        .next_update(start + dt.timedelta(days=22))
        .add_revoked_certificate(revoked)
        .sign(ca_key, hashes.SHA256())
    )

    csr_key = ec.generate_private_key(ec.SECP256R1())
    csr_der = (
        cx509.CertificateSigningRequestBuilder()
        .subject_name(name("p10 client"))
        .add_extension(cx509.SubjectAlternativeName([cx509.DNSName("p10.example")]), critical=False)
        .sign(csr_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )

    der = serialization.Encoding.DER
    return (
        [c.public_bytes(der) for c in certs],
        [c.public_bytes(der) for c in crls],
        csr_der,
        spkis,
    )


CERT_DERS, CRL_DERS, CSR_DER, SPKI_DERS = _make_pool()


@_cached
def certificates() -> SearchStrategy[x509.Certificate]:
    return st.sampled_from(CERT_DERS).map(CMPCertificate.load)


@_cached
def cert_lists(min_size: int = 1, max_size: int = 3) -> SearchStrategy[list[x509.Certificate]]:
    return st.lists(certificates(), min_size=min_size, max_size=max_size)


@_cached
def crls() -> SearchStrategy[crl.CertificateList]:
    return st.sampled_from(CRL_DERS).map(crl.CertificateList.load)


@_cached
def public_key_infos() -> SearchStrategy[keys.PublicKeyInfo]:
    return st.sampled_from(SPKI_DERS).map(keys.PublicKeyInfo.load)


# --------------------------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------------------------

_LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24)
_PRINTABLE = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


@_cached
def _ints(lo: int = -(2**70), hi: int = 2**70) -> SearchStrategy[int]:
    return st.one_of(st.integers(0, 300), st.integers(lo, hi))


@_cached
def small_octets(max_size: int = 32) -> SearchStrategy[bytes]:
    return st.binary(max_size=max_size)


@_cached
def datetimes(fraction: bool = False) -> SearchStrategy[dt.datetime]:
    """Aware UTC datetimes; with `fraction`, microseconds too (GeneralizedTime only)."""
    base = st.datetimes(
        min_value=dt.datetime(1950, 1, 1),
        max_value=dt.datetime(2200, 12, 31),
        timezones=st.just(UTC),
    )
    if fraction:
        return base
    return base.map(lambda d: d.replace(microsecond=0))


@_cached
def times() -> SearchStrategy[x509.Time]:
    """X.509 Time: UTCTime before 2050, GeneralizedTime from 2050 (RFC 5280 4.1.2.5)."""

    def make(d: dt.datetime) -> x509.Time:
        if d.year < 2050:
            return x509.Time(name="utc_time", value=d)
        return x509.Time(name="general_time", value=d)

    return datetimes().map(make)


@_cached
def generalized_times(fraction: bool = True) -> SearchStrategy[core.GeneralizedTime]:
    return datetimes(fraction).map(core.GeneralizedTime)


@_cached
def unknown_oids() -> SearchStrategy[str]:
    """OIDs under a private arc, registered nowhere in the engine or in asn1crypto."""
    return st.builds(
        lambda a, b: f"1.3.6.1.4.1.99999.{a}.{b}", st.integers(0, 2**40), st.integers(0, 200)
    )


@_cached
def raw_values() -> SearchStrategy[core.Any]:
    """An opaque DER value, as an unknown OID would carry it: kept raw as `Any`.

    Universal primitives and SEQUENCEs of them only: a SET or a context-tagged value is valid
    here too, but the engine rejects it today (`test_valid_untyped_value_is_accepted`).
    """
    leaves: SearchStrategy[core.Asn1Value] = st.one_of(
        _TEXT.map(core.UTF8String),
        st.binary(max_size=20).map(core.OctetString),
        _ints().map(core.Integer),
        st.booleans().map(core.Boolean),
        st.just(core.Null()),
    )
    seqs = st.lists(leaves, max_size=4).map(
        lambda items: core.Asn1Value(
            class_=0, method=1, tag=16, contents=b"".join(i.dump() for i in items)
        )
    )
    # An unregistered open-type field (infoValue, control value) holds a `RawValue`.
    return st.one_of(leaves, seqs).map(lambda v: RawValue.load(v.dump()))


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


@_cached
@st.composite
def names(draw: st.DrawFn, allow_empty: bool = True) -> x509.Name:
    attrs = {}
    if draw(st.booleans()):
        attrs["country_name"] = draw(st.sampled_from(["DE", "FR", "US", "JP"]))
    if draw(st.booleans()):
        attrs["organization_name"] = draw(_TEXT.filter(bool))
    if draw(st.booleans()):
        attrs["organizational_unit_name"] = draw(_TEXT.filter(bool))
    if (not allow_empty and not attrs) or draw(st.booleans()):
        attrs["common_name"] = draw(_TEXT.filter(bool))
    if draw(st.booleans()):
        attrs["serial_number"] = draw(_PRINTABLE.filter(bool))
    return x509.Name.build(attrs)


@_cached
def _email() -> SearchStrategy[str]:
    return st.builds(lambda a, b: f"{a}@{b}.example", _LABEL, _LABEL)


@_cached
def _dns() -> SearchStrategy[str]:
    return st.lists(_LABEL, min_size=1, max_size=3).map(lambda ls: ".".join([*ls, "example"]))


@_cached
def _uri() -> SearchStrategy[str]:
    return st.builds(lambda h, p: f"https://{h}.example/{p}", _LABEL, _LABEL)


@_cached
def general_names() -> SearchStrategy[x509.GeneralName]:
    return st.one_of(
        names().map(lambda n: x509.GeneralName(name="directory_name", value=n)),
        _email().map(lambda v: x509.GeneralName(name="rfc822_name", value=v)),
        _dns().map(lambda v: x509.GeneralName(name="dns_name", value=v)),
        _uri().map(lambda v: x509.GeneralName(name="uniform_resource_identifier", value=v)),
        st.sampled_from(["192.0.2.1", "2001:db8::1"]).map(
            lambda v: x509.GeneralName(name="ip_address", value=v)
        ),
        unknown_oids().map(lambda v: x509.GeneralName(name="registered_id", value=v)),
    )


# --------------------------------------------------------------------------------------------
# Algorithm identifiers
# --------------------------------------------------------------------------------------------

_DIGESTS = ["id-sha256", "id-sha384", "id-sha512", "id-sha3-256", "id-shake256", "id-sha1"]
_HMACS = ["hmac-sha1", "id-hmacWithSHA256", "id-hmacWithSHA512", "id-hmacWithSHA3-256"]
_SIGS = [
    "ecdsa-with-SHA256",
    "ecdsa-with-SHA384",
    "id-Ed25519",
    "id-Ed448",
    "id-ml-dsa-44",
    "id-ml-dsa-65",
    "id-ecdsa-with-shake256",
    "id-RSASSA-PSS-SHAKE256",
]
_RSA_SIGS = ["sha256WithRSAEncryption", "sha384WithRSAEncryption"]


def _sequence(cls: type[core.Sequence], value: dict[str, TAny]) -> TAny:
    """`cls(value)`, also when every field is absent (asn1crypto cannot construct an empty
    SEQUENCE, only parse one)."""
    return cls(value) if value else cls.load(b"\x30\x00")


def _alg(name: str, params: core.Asn1Value | None = None) -> AlgorithmIdentifier:
    value: dict[str, TAny] = {"algorithm": name}
    if params is not None:
        value["parameters"] = params
    return AlgorithmIdentifier(value)


@_cached
def digest_algs() -> SearchStrategy[AlgorithmIdentifier]:
    return st.sampled_from(_DIGESTS).map(_alg)


@_cached
def hmac_algs() -> SearchStrategy[AlgorithmIdentifier]:
    return st.sampled_from(_HMACS).map(_alg)


@_cached
def signature_algs() -> SearchStrategy[AlgorithmIdentifier]:
    return st.one_of(
        st.sampled_from(_SIGS).map(_alg),
        st.sampled_from(_RSA_SIGS).map(lambda n: _alg(n, core.Null())),
        st.builds(
            lambda h, salt: _alg(
                "id-RSASSA-PSS",
                algos.RSASSAPSSParams(
                    {
                        "hash_algorithm": {"algorithm": h},
                        "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": h}},
                        "salt_length": salt,
                    }
                ),
            ),
            st.sampled_from(["sha256", "sha384", "sha1"]),
            st.sampled_from([20, 32, 48]),
        ),
    )


@_cached
@st.composite
def pbm_algs(draw: st.DrawFn) -> AlgorithmIdentifier:
    """id-PasswordBasedMac with PBMParameter (RFC 9810 5.1.3.1)."""
    params = PBMParameter(
        {
            "salt": draw(st.binary(min_size=0, max_size=32)),
            "owf": draw(digest_algs()),
            "iterationCount": draw(st.integers(1, 100_000)),
            "mac": draw(hmac_algs()),
        }
    )
    return _alg("id-PasswordBasedMac", params)


@_cached
@st.composite
def pbmac1_algs(draw: st.DrawFn) -> AlgorithmIdentifier:
    """id-PBMAC1 with PBKDF2 (RFC 9481 6.1.2, RFC 8018)."""
    kdf: dict[str, TAny] = {
        "salt": algos.Pbkdf2Salt(name="specified", value=draw(st.binary(min_size=8, max_size=32))),
        "iteration_count": draw(st.integers(1, 1_000_000)),
        "key_length": draw(st.sampled_from([16, 32, 64])),
    }
    if draw(st.booleans()):
        kdf["prf"] = {"algorithm": draw(st.sampled_from(["sha256", "sha512", "sha3_256"]))}
    params = algos.Pbmac1Params(
        {
            "key_derivation_func": {"algorithm": "pbkdf2", "parameters": kdf},
            "message_auth_scheme": {"algorithm": draw(st.sampled_from(["sha256", "sha512"]))},
        }
    )
    return _alg("id-PBMAC1", params)


@_cached
@st.composite
def dhbm_algs(draw: st.DrawFn) -> AlgorithmIdentifier:
    return _alg(
        "id-DHBasedMac", DHBMParameter({"owf": draw(digest_algs()), "mac": draw(hmac_algs())})
    )


@_cached
@st.composite
def kembm_algs(draw: st.DrawFn) -> AlgorithmIdentifier:
    value: dict[str, TAny] = {
        "kdf": _alg("id-alg-hkdf-with-sha256"),
        "len": draw(st.sampled_from([16, 32, 64])),
        "mac": draw(hmac_algs()),
    }
    if draw(st.booleans()):
        value["kemContext"] = draw(small_octets())
    return _alg("id-KemBasedMac", KemBMParameter(value))


@_cached
def protection_algs() -> SearchStrategy[AlgorithmIdentifier]:
    return st.one_of(pbm_algs(), pbmac1_algs(), signature_algs(), dhbm_algs(), kembm_algs())


@_cached
def algorithm_identifiers() -> SearchStrategy[AlgorithmIdentifier]:
    """Any algorithm identifier CMP carries, including one with an unregistered OID."""
    return st.one_of(
        protection_algs(),
        digest_algs(),
        hmac_algs(),
        st.sampled_from(["id-aes128-GCM", "id-aes256-wrap", "id-alg-ml-kem-768", "id-X25519"]).map(
            _alg
        ),
        st.builds(lambda oid, v: _alg(oid, v), unknown_oids(), raw_values()),
    )


# --------------------------------------------------------------------------------------------
# CRMF (RFC 4211)
# --------------------------------------------------------------------------------------------


@_cached
@st.composite
def extensions(draw: st.DrawFn) -> x509.Extensions:
    """A few typical request extensions, some critical, plus an unknown one (raw value)."""
    candidates: list[dict[str, TAny]] = [
        {
            "extn_id": "key_usage",
            "critical": True,
            "extn_value": x509.KeyUsage(
                set(
                    draw(
                        st.lists(
                            st.sampled_from(
                                ["digital_signature", "key_encipherment", "key_agreement"]
                            ),
                            min_size=1,
                            unique=True,
                        )
                    )
                )
            ),
        },
        {
            "extn_id": "subject_alt_name",
            "critical": draw(st.booleans()),
            "extn_value": draw(st.lists(general_names(), min_size=1, max_size=3)),
        },
        {
            "extn_id": "basic_constraints",
            "critical": True,
            "extn_value": {"ca": draw(st.booleans())},
        },
        {
            "extn_id": "extended_key_usage",
            "critical": False,
            "extn_value": draw(
                st.lists(
                    st.sampled_from(["client_auth", "server_auth", ID_KP_CMC_RA]),
                    min_size=1,
                    max_size=3,
                    unique=True,
                )
            ),
        },
        {
            "extn_id": draw(unknown_oids()),
            "critical": draw(st.booleans()),
            "extn_value": draw(raw_values()).dump(),
        },
    ]
    chosen = draw(st.lists(st.sampled_from(range(len(candidates))), min_size=1, unique=True))
    return x509.Extensions([candidates[i] for i in chosen])


@_cached
@st.composite
def optional_validities(draw: st.DrawFn) -> OptionalValidity:
    value = {}
    if draw(st.booleans()):
        value["notBefore"] = draw(times())
    if draw(st.booleans()):
        value["notAfter"] = draw(times())
    return _sequence(OptionalValidity, value)


@_cached
@st.composite
def cert_templates(draw: st.DrawFn, revocation: bool = False) -> CertTemplate:
    """A CertTemplate; `revocation` makes the issuer+serialNumber kind rr uses likelier."""
    value: dict[str, TAny] = {}

    def maybe(field: str, strategy: SearchStrategy[TAny], likely: bool = False) -> None:
        if draw(st.integers(0, 3)) < (3 if likely else 1):
            value[field] = draw(strategy)

    maybe("version", st.sampled_from(["v1", "v2", "v3"]))
    maybe("serialNumber", st.integers(1, 2**159), likely=revocation)
    maybe("signingAlg", signature_algs())
    maybe("issuer", names(), likely=revocation)
    maybe("validity", optional_validities())
    maybe("subject", names(), likely=not revocation)
    maybe("publicKey", public_key_infos(), likely=not revocation)
    maybe("issuerUID", st.lists(st.integers(0, 1), max_size=20).map(tuple))
    maybe("subjectUID", st.lists(st.integers(0, 1), max_size=20).map(tuple))
    maybe("extensions", extensions())
    return _sequence(CertTemplate, value)


@_cached
@st.composite
def cert_ids(draw: st.DrawFn) -> CertId:
    return CertId({"issuer": draw(general_names()), "serialNumber": draw(st.integers(0, 2**159))})


@_cached
@st.composite
def publication_infos(draw: st.DrawFn) -> PKIPublicationInfo:
    value: dict[str, TAny] = {"action": draw(st.sampled_from(["dontPublish", "pleasePublish"]))}
    if draw(st.booleans()):
        infos = []
        for _ in range(draw(st.integers(1, 2))):
            info: dict[str, TAny] = {
                "pubMethod": draw(st.sampled_from(["dontCare", "x500", "web", "ldap"]))
            }
            if draw(st.booleans()):
                info["pubLocation"] = draw(general_names())
            infos.append(info)
        value["pubInfos"] = infos
    return PKIPublicationInfo(value)


@_cached
@st.composite
def enveloped_data(draw: st.DrawFn) -> cms.EnvelopedData:
    """A structurally valid EnvelopedData: one ktri recipient, AES-CBC encrypted content."""
    issuer_cert = CMPCertificate.load(draw(st.sampled_from(CERT_DERS)))
    rid = cms.RecipientIdentifier(
        name="issuer_and_serial_number",
        value={
            "issuer": issuer_cert.issuer,
            "serial_number": issuer_cert.serial_number,
        },
    )
    ktri = cms.KeyTransRecipientInfo(
        {
            "version": "v0",
            "rid": rid,
            "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15", "parameters": None},
            "encrypted_key": draw(st.binary(min_size=1, max_size=64)),
        }
    )
    content: dict[str, TAny] = {
        "content_type": "data",
        "content_encryption_algorithm": {
            "algorithm": "aes256_cbc",
            "parameters": draw(st.binary(min_size=16, max_size=16)),
        },
    }
    if draw(st.booleans()):
        content["encrypted_content"] = draw(st.binary(min_size=16, max_size=64))
    return cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": [cms.RecipientInfo(name="ktri", value=ktri)],
            "encrypted_content_info": content,
        }
    )


@_cached
@st.composite
def encrypted_values(draw: st.DrawFn) -> EncryptedValue:
    value: dict[str, TAny] = {"encValue": draw(st.binary(max_size=48))}
    for field, strategy in [
        ("intendedAlg", algorithm_identifiers()),
        ("symmAlg", st.just(_alg("id-aes128-CBC", core.OctetString(bytes(16))))),
        ("encSymmKey", st.binary(max_size=32)),
        ("keyAlg", st.just(_alg("rsaEncryption", core.Null()))),
        ("valueHint", small_octets()),
    ]:
        if draw(st.booleans()):
            value[field] = draw(strategy)
    return EncryptedValue(value)


@_cached
def encrypted_keys() -> SearchStrategy[EncryptedKey]:
    return st.one_of(
        enveloped_data().map(lambda v: EncryptedKey(name="envelopedData", value=v)),
        encrypted_values().map(lambda v: EncryptedKey(name="encryptedValue", value=v)),
    )


@_cached
def archive_options() -> SearchStrategy[PKIArchiveOptions]:
    return st.one_of(
        st.booleans().map(lambda b: PKIArchiveOptions(name="archiveRemGenPrivKey", value=b)),
        small_octets().map(lambda b: PKIArchiveOptions(name="keyGenParameters", value=b)),
        encrypted_keys().map(lambda k: PKIArchiveOptions(name="encryptedPrivKey", value=k)),
    )


def _atv(kind: str, value: core.Asn1Value | TAny) -> AttributeTypeAndValue:
    return AttributeTypeAndValue({"type": kind, "value": value})


@_cached
def controls() -> SearchStrategy[list[AttributeTypeAndValue]]:
    """Registration controls (RFC 4211 6, RFC 9810 5.2.1) and an unknown one."""
    one = st.one_of(
        _TEXT.map(lambda s: _atv("regToken", core.UTF8String(s))),
        _TEXT.map(lambda s: _atv("authenticator", core.UTF8String(s))),
        cert_ids().map(lambda c: _atv("oldCertID", c)),
        publication_infos().map(lambda p: _atv("pkiPublicationInfo", p)),
        archive_options().map(lambda a: _atv("pkiArchiveOptions", a)),
        public_key_infos().map(lambda k: _atv("protocolEncrKey", k)),
        signature_algs().map(lambda a: _atv("algId", a)),
        st.sampled_from([2048, 3072, 4096]).map(lambda n: _atv("rsaKeyLen", core.Integer(n))),
        _TEXT.map(lambda s: _atv("altCertTemplate", _atv("regToken", core.UTF8String(s)))),
        st.builds(_atv, unknown_oids(), raw_values()),
    )
    return st.lists(one, min_size=1, max_size=4)


@_cached
@st.composite
def cert_requests(draw: st.DrawFn, cert_req_id: int | None = None) -> CertRequest:
    value: dict[str, TAny] = {
        "certReqId": draw(st.integers(-1, 2**31)) if cert_req_id is None else cert_req_id,
        "certTemplate": draw(cert_templates()),
    }
    if draw(st.booleans()):
        value["controls"] = draw(controls())
    return CertRequest(value)


@_cached
def reg_infos() -> SearchStrategy[list[AttributeTypeAndValue]]:
    one = st.one_of(
        _TEXT.map(lambda s: _atv("utf8Pairs", core.UTF8String(s))),
        cert_requests().map(lambda r: _atv("certReq", r)),
        st.builds(_atv, unknown_oids(), raw_values()),
    )
    return st.lists(one, min_size=1, max_size=3)


@_cached
@st.composite
def pkmac_values(draw: st.DrawFn) -> PKMACValue:
    alg = draw(st.one_of(pbm_algs(), pbmac1_algs()))
    return PKMACValue({"algId": alg, "value": draw(st.binary(min_size=20, max_size=64))})


@_cached
@st.composite
def popo_signing_keys(draw: st.DrawFn) -> POPOSigningKey:
    value: dict[str, TAny] = {
        "algorithmIdentifier": draw(signature_algs()),
        "signature": draw(st.binary(min_size=1, max_size=96)),
    }
    if draw(st.booleans()):
        auth = draw(
            st.one_of(
                general_names().map(lambda g: {"sender": g}),
                pkmac_values().map(lambda m: {"publicKeyMAC": m}),
            )
        )
        value["poposkInput"] = POPOSigningKeyInput(
            {"authInfo": auth, "publicKey": draw(public_key_infos())}
        )
    return POPOSigningKey(value)


@_cached
def popo_priv_keys() -> SearchStrategy[POPOPrivKey]:
    return st.one_of(
        st.sampled_from(["encrCert", "challengeResp"]).map(
            lambda v: POPOPrivKey(name="subsequentMessage", value=v)
        ),
        st.binary(max_size=32).map(lambda v: POPOPrivKey(name="thisMessage", value=v)),
        st.binary(max_size=32).map(lambda v: POPOPrivKey(name="dhMAC", value=v)),
        pkmac_values().map(lambda v: POPOPrivKey(name="agreeMAC", value=v)),
        enveloped_data().map(lambda v: POPOPrivKey(name="encryptedKey", value=v)),
    )


@_cached
def proofs_of_possession() -> SearchStrategy[ProofOfPossession]:
    return st.one_of(
        st.just(None).map(lambda _: ProofOfPossession(name="raVerified", value=core.Null())),
        popo_signing_keys().map(lambda v: ProofOfPossession(name="signature", value=v)),
        popo_priv_keys().map(lambda v: ProofOfPossession(name="keyEncipherment", value=v)),
        popo_priv_keys().map(lambda v: ProofOfPossession(name="keyAgreement", value=v)),
    )


@_cached
@st.composite
def cert_req_msgs(draw: st.DrawFn, cert_req_id: int | None = None) -> CertReqMsg:
    value: dict[str, TAny] = {"certReq": draw(cert_requests(cert_req_id))}
    if draw(st.integers(0, 4)):
        value["popo"] = draw(proofs_of_possession())
    if draw(st.integers(0, 3)) == 0:
        value["regInfo"] = draw(reg_infos())
    return CertReqMsg(value)


@_cached
@st.composite
def cert_req_messages(draw: st.DrawFn) -> CertReqMessages:
    count = draw(st.integers(1, 3))
    return CertReqMessages([draw(cert_req_msgs(i)) for i in range(count)])


# --------------------------------------------------------------------------------------------
# CMP content types (RFC 9810 5.2, 5.3)
# --------------------------------------------------------------------------------------------

_FAIL_NAMES = [bit.name for bit in FailInfo]


@_cached
@st.composite
def pki_status_infos(draw: st.DrawFn) -> PKIStatusInfo:
    value: dict[str, TAny] = {"status": draw(st.integers(0, 6))}
    if draw(st.booleans()):
        value["statusString"] = draw(st.lists(_TEXT, min_size=1, max_size=3))
    if draw(st.booleans()):
        value["failInfo"] = PKIFailureInfo(
            set(draw(st.lists(st.sampled_from(_FAIL_NAMES), min_size=1, max_size=4)))
        )
    return PKIStatusInfo(value)


@_cached
@st.composite
def certified_key_pairs(draw: st.DrawFn) -> CertifiedKeyPair:
    if draw(st.integers(0, 3)):
        coec = CertOrEncCert(name="certificate", value=draw(certificates()))
    else:
        coec = CertOrEncCert(name="encryptedCert", value=draw(encrypted_keys()))
    value: dict[str, TAny] = {"certOrEncCert": coec}
    if draw(st.integers(0, 3)) == 0:
        value["privateKey"] = draw(encrypted_keys())
    if draw(st.integers(0, 3)) == 0:
        value["publicationInfo"] = draw(publication_infos())
    return CertifiedKeyPair(value)


@_cached
@st.composite
def cert_responses(draw: st.DrawFn, cert_req_id: int) -> CertResponse:
    value: dict[str, TAny] = {"certReqId": cert_req_id, "status": draw(pki_status_infos())}
    if draw(st.booleans()):
        value["certifiedKeyPair"] = draw(certified_key_pairs())
    if draw(st.integers(0, 4)) == 0:
        value["rspInfo"] = draw(small_octets())
    return CertResponse(value)


@_cached
@st.composite
def cert_rep_messages(draw: st.DrawFn) -> CertRepMessage:
    count = draw(st.integers(1, 3))
    value: dict[str, TAny] = {"response": [draw(cert_responses(i)) for i in range(count)]}
    if draw(st.booleans()):
        value["caPubs"] = draw(cert_lists(1, 2))
    return CertRepMessage(value)


@_cached
@st.composite
def key_rec_reps(draw: st.DrawFn) -> KeyRecRepContent:
    value: dict[str, TAny] = {"status": draw(pki_status_infos())}
    if draw(st.booleans()):
        value["newSigCert"] = draw(certificates())
    if draw(st.booleans()):
        value["caCerts"] = draw(cert_lists(1, 2))
    if draw(st.booleans()):
        value["keyPairHist"] = draw(st.lists(certified_key_pairs(), min_size=1, max_size=2))
    return KeyRecRepContent(value)


@_cached
@st.composite
def crl_entry_details(draw: st.DrawFn) -> x509.Extensions:
    reason = crl.CRLReason(draw(st.sampled_from(["key_compromise", "superseded", "unspecified"])))
    exts: list[dict[str, TAny]] = [
        {"extn_id": "2.5.29.21", "critical": False, "extn_value": reason.dump()}
    ]
    if draw(st.booleans()):
        when = core.GeneralizedTime(draw(datetimes()))
        exts.append({"extn_id": "2.5.29.24", "critical": False, "extn_value": when.dump()})
    return x509.Extensions(exts)


@_cached
@st.composite
def rev_req_contents(draw: st.DrawFn) -> list[RevDetails]:
    details = []
    for _ in range(draw(st.integers(1, 3))):
        value: dict[str, TAny] = {"certDetails": draw(cert_templates(revocation=True))}
        if draw(st.booleans()):
            value["crlEntryDetails"] = draw(crl_entry_details())
        details.append(RevDetails(value))
    return details


@_cached
@st.composite
def rev_rep_contents(draw: st.DrawFn) -> RevRepContent:
    value: dict[str, TAny] = {
        "status": draw(st.lists(pki_status_infos(), min_size=1, max_size=3)),
    }
    if draw(st.booleans()):
        value["revCerts"] = draw(st.lists(cert_ids(), min_size=1, max_size=3))
    if draw(st.booleans()):
        value["crls"] = draw(st.lists(crls(), min_size=1, max_size=2))
    return RevRepContent(value)


@_cached
@st.composite
def root_ca_key_updates(draw: st.DrawFn) -> RootCaKeyUpdateContent:
    value: dict[str, TAny] = {"newWithNew": draw(certificates())}
    if draw(st.booleans()):
        value["newWithOld"] = draw(certificates())
    if draw(st.booleans()):
        value["oldWithNew"] = draw(certificates())
    return RootCaKeyUpdateContent(value)


@_cached
@st.composite
def ca_key_upd_ann(draw: st.DrawFn) -> CAKeyUpdAnnContent:
    return CAKeyUpdAnnContent(
        {
            "oldWithNew": draw(certificates()),
            "newWithOld": draw(certificates()),
            "newWithNew": draw(certificates()),
        }
    )


@_cached
def ckuann_contents() -> SearchStrategy[CAKeyUpdContent]:
    return st.one_of(
        ca_key_upd_ann().map(lambda v: CAKeyUpdContent(name="cAKeyUpdAnnV2", value=v)),
        root_ca_key_updates().map(lambda v: CAKeyUpdContent(name="cAKeyUpdAnnV3", value=v)),
    )


@_cached
@st.composite
def rev_ann_contents(draw: st.DrawFn) -> RevAnnContent:
    value: dict[str, TAny] = {
        "status": draw(st.integers(0, 6)),
        "certId": draw(cert_ids()),
        "willBeRevokedAt": draw(generalized_times()),
        "badSinceDate": draw(generalized_times()),
    }
    if draw(st.booleans()):
        value["crlDetails"] = draw(crl_entry_details())
    return RevAnnContent(value)


@_cached
@st.composite
def challenges(draw: st.DrawFn) -> Challenge:
    value: dict[str, TAny] = {
        "witness": draw(st.binary(min_size=20, max_size=64)),
        "challenge": draw(st.binary(max_size=64)),
    }
    if draw(st.booleans()):
        value["owf"] = draw(digest_algs())
    if draw(st.booleans()):
        value["encryptedRand"] = draw(enveloped_data())
    return Challenge(value)


@_cached
@st.composite
def error_contents(draw: st.DrawFn) -> ErrorMsgContent:
    value: dict[str, TAny] = {"pKIStatusInfo": draw(pki_status_infos())}
    if draw(st.booleans()):
        value["errorCode"] = draw(_ints())
    if draw(st.booleans()):
        value["errorDetails"] = draw(st.lists(_TEXT, min_size=1, max_size=3))
    return ErrorMsgContent(value)


@_cached
@st.composite
def cert_statuses(draw: st.DrawFn) -> CertStatus:
    value: dict[str, TAny] = {
        "certHash": draw(st.binary(min_size=20, max_size=64)),
        "certReqId": draw(st.integers(-1, 2**31)),
    }
    if draw(st.booleans()):
        value["statusInfo"] = draw(pki_status_infos())
    if draw(st.booleans()):
        value["hashAlg"] = draw(digest_algs())
    return CertStatus(value)


@_cached
@st.composite
def poll_reps(draw: st.DrawFn) -> list[dict[str, TAny]]:
    reps = []
    for i in range(draw(st.integers(1, 3))):
        rep: dict[str, TAny] = {"certReqId": i, "checkAfter": draw(st.integers(0, 2**32))}
        if draw(st.booleans()):
            rep["reason"] = draw(st.lists(_TEXT, min_size=1, max_size=2))
        reps.append(rep)
    return reps


@_cached
@st.composite
def crl_statuses(draw: st.DrawFn) -> CRLStatus:
    if draw(st.booleans()):
        source = CRLSource(
            name="dpn",
            value=x509.DistributionPointName(
                name="full_name",
                value=[x509.GeneralName(name="uniform_resource_identifier", value=draw(_uri()))],
            ),
        )
    else:
        source = CRLSource(name="issuer", value=draw(st.lists(general_names(), min_size=1)))
    value: dict[str, TAny] = {"source": source}
    if draw(st.booleans()):
        value["thisUpdate"] = draw(times())
    return CRLStatus(value)


# --------------------------------------------------------------------------------------------
# InfoTypeAndValue (genm, genp, generalInfo)
# --------------------------------------------------------------------------------------------


def _itav(kind: str, value: TAny = None) -> InfoTypeAndValue:
    if value is None:
        return InfoTypeAndValue({"infoType": kind})
    return InfoTypeAndValue({"infoType": kind, "infoValue": value})


@_cached
def info_type_and_values(depth: int = 0) -> SearchStrategy[InfoTypeAndValue]:
    """Registered id-it values (RFC 9810 5.3.19, appendix F), requests without a value, and an
    unknown infoType whose value stays raw; `depth` > 0 allows origPKIMessage (recursive)."""
    certs = certificates()
    options = [
        st.just("implicitConfirm").map(lambda k: _itav(k, core.Null())),
        generalized_times().map(lambda t: _itav("confirmWaitTime", t)),
        st.lists(_TEXT, min_size=1, max_size=3).map(lambda s: _itav("certProfile", s)),
        st.lists(st.sampled_from(["en", "de", "fr-CA"]), min_size=1, max_size=3).map(
            lambda s: _itav("suppLangTags", s)
        ),
        certs.map(lambda c: _itav("caProtEncCert", c)),
        st.lists(signature_algs(), min_size=1, max_size=3).map(
            lambda a: _itav("signKeyPairTypes", a)
        ),
        st.lists(algorithm_identifiers(), min_size=1, max_size=2).map(
            lambda a: _itav("encKeyPairTypes", a)
        ),
        st.just(_alg("id-aes256-GCM")).map(lambda a: _itav("preferredSymmAlg", a)),
        ca_key_upd_ann().map(lambda v: _itav("caKeyUpdateInfo", v)),
        crls().map(lambda c: _itav("currentCRL", c)),
        st.lists(unknown_oids(), min_size=1, max_size=3).map(lambda o: _itav("unsupportedOIDs", o)),
        st.just("1.2.840.10045.3.1.7").map(
            lambda o: _itav("keyPairParamReq", core.ObjectIdentifier(o))
        ),
        signature_algs().map(lambda a: _itav("keyPairParamRep", a)),
        encrypted_keys().map(lambda k: _itav("revPassphrase", k)),
        cert_lists(1, 3).map(lambda c: _itav("caCerts", c)),
        root_ca_key_updates().map(lambda v: _itav("rootCaKeyUpdate", v)),
        st.builds(
            lambda t, ks: CertReqTemplateContent(
                {"certTemplate": t} if ks is None else {"certTemplate": t, "keySpec": ks}
            ),
            cert_templates(),
            st.none() | controls(),
        ).map(lambda v: _itav("certReqTemplate", v)),
        certs.map(lambda c: _itav("rootCaCert", c)),
        st.lists(crl_statuses(), min_size=1, max_size=2).map(lambda v: _itav("crlStatusList", v)),
        st.lists(crls(), min_size=1, max_size=2).map(lambda v: _itav("crls", v)),
        st.builds(
            lambda ct: KemCiphertextInfo({"kem": _alg("id-alg-ml-kem-768"), "ct": ct}),
            st.binary(min_size=1, max_size=64),
        ).map(lambda v: _itav("kemCiphertextInfo", v)),
        # genm requests carry no value (RFC 9483 4.3)
        st.sampled_from(
            ["caCerts", "rootCaCert", "certReqTemplate", "crlStatusList", "kemCiphertextInfo"]
        ).map(_itav),
        st.builds(_itav, unknown_oids(), st.none() | raw_values()),
    ]
    if depth > 0:
        options.append(
            st.lists(_messages(_NOT_NESTED, depth - 1), min_size=1, max_size=2).map(
                lambda msgs: _itav("origPKIMessage", msgs)
            )
        )
    return st.one_of(options)


# --------------------------------------------------------------------------------------------
# Header, body, message
# --------------------------------------------------------------------------------------------


@_cached
@st.composite
def pki_headers(draw: st.DrawFn) -> PKIHeader:
    value: dict[str, TAny] = {
        "pvno": draw(st.sampled_from([2, 3])),
        "sender": draw(general_names()),
        "recipient": draw(general_names()),
    }

    def maybe(field: str, strategy: SearchStrategy[TAny]) -> None:
        if draw(st.booleans()):
            value[field] = draw(strategy)

    maybe("messageTime", generalized_times())
    maybe("protectionAlg", protection_algs())
    maybe("senderKID", small_octets())
    maybe("recipKID", small_octets())
    maybe("transactionID", st.binary(min_size=0, max_size=20))
    maybe("senderNonce", st.binary(min_size=0, max_size=20))
    maybe("recipNonce", st.binary(min_size=0, max_size=20))
    maybe("freeText", st.lists(_TEXT, min_size=1, max_size=3))
    maybe("generalInfo", st.lists(info_type_and_values(), min_size=1, max_size=3))
    return PKIHeader(value)


@_cached
def bodies(name: str, depth: int = 1) -> SearchStrategy[PKIBody]:
    """A PKIBody of the named alternative; `depth` bounds nested/origPKIMessage recursion."""
    content: SearchStrategy[TAny]
    if name in ("ir", "cr", "kur", "krr", "ccr"):
        content = cert_req_messages()
    elif name in ("ip", "cp", "kup", "ccp"):
        content = cert_rep_messages()
    elif name == "p10cr":
        content = st.just(CSR_DER).map(csr.CertificationRequest.load)
    elif name == "popdecc":
        content = st.lists(challenges(), min_size=1, max_size=3)
    elif name == "popdecr":
        content = st.lists(_ints(), min_size=1, max_size=4)
    elif name == "krp":
        content = key_rec_reps()
    elif name == "rr":
        content = rev_req_contents()
    elif name == "rp":
        content = rev_rep_contents()
    elif name == "ckuann":
        content = ckuann_contents()
    elif name == "cann":
        content = certificates()
    elif name == "rann":
        content = rev_ann_contents()
    elif name == "crlann":
        content = st.lists(crls(), min_size=1, max_size=3)
    elif name == "pkiconf":
        content = st.just(None).map(lambda _: core.Null())
    elif name == "nested":
        inner = body_names if depth > 1 else _NOT_NESTED
        content = st.lists(_messages(inner, depth - 1), min_size=1, max_size=2)
    elif name in ("genm", "genp"):
        content = st.lists(info_type_and_values(depth), min_size=1, max_size=4)
    elif name == "error":
        content = error_contents()
    elif name == "certConf":
        content = st.lists(cert_statuses(), min_size=0, max_size=3)
    elif name == "pollReq":
        content = st.lists(st.integers(-1, 2**31), min_size=1, max_size=3).map(
            lambda ids: [{"certReqId": i} for i in ids]
        )
    elif name == "pollRep":
        content = poll_reps()
    else:  # pragma: no cover - BODY_TYPES and this table must agree
        raise ValueError(f"unknown PKIBody alternative {name!r}")
    return content.map(lambda v: PKIBody(name=name, value=v))


@_cached
@st.composite
def _messages(draw: st.DrawFn, names_: tuple[str, ...], depth: int) -> PKIMessage:
    name = draw(st.sampled_from(names_))
    value: dict[str, TAny] = {"header": draw(pki_headers()), "body": draw(bodies(name, depth))}
    if draw(st.booleans()):
        value["protection"] = draw(st.binary(min_size=1, max_size=80))
    if draw(st.booleans()):
        value["extraCerts"] = draw(cert_lists(1, 3))
    return PKIMessage(value)


def pki_messages(
    body: str | SearchStrategy[str] | None = None, depth: int = 1
) -> SearchStrategy[PKIMessage]:
    """Valid PKIMessages; `body` is one body name, a strategy of names, or None for any."""
    if body is None:
        return _messages(body_names, depth)
    if isinstance(body, str):
        if body not in body_names:
            raise ValueError(f"unknown PKIBody alternative {body!r}")
        return _messages((body,), depth)
    return body.flatmap(lambda n: _messages((n,), depth))
