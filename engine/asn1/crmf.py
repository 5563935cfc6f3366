"""Certificate Request Message Format (RFC 4211, updated by RFC 9045 and RFC 9810).

The CRMF module uses IMPLICIT TAGS; a tagged CHOICE (Name, GeneralName, Time, POPOPrivKey,
EncryptedKey) is necessarily tagged explicitly, as X.680 requires.
"""

from __future__ import annotations

from asn1crypto.cms import EnvelopedData
from asn1crypto.core import (
    Any,
    BitString,
    Boolean,
    Choice,
    Integer,
    Null,
    ObjectIdentifier,
    OctetBitString,
    OctetString,
    Sequence,
    SequenceOf,
    UTF8String,
)
from asn1crypto.keys import PrivateKeyInfo, PublicKeyInfo
from asn1crypto.x509 import Extensions, GeneralName, Name, Time, Version

from .algorithms import AlgorithmIdentifier
from .der import OpenTypeRegistry, OpenTypeSequence


class PubMethod(Integer):
    _map = {0: "dontCare", 1: "x500", 2: "web", 3: "ldap"}


class SinglePubInfo(Sequence):
    _fields = [
        ("pubMethod", PubMethod),
        ("pubLocation", GeneralName, {"optional": True}),
    ]


class SinglePubInfos(SequenceOf):
    _child_spec = SinglePubInfo


class PublicationAction(Integer):
    _map = {0: "dontPublish", 1: "pleasePublish"}


class PKIPublicationInfo(Sequence):
    _fields = [
        ("action", PublicationAction),
        ("pubInfos", SinglePubInfos, {"optional": True}),
    ]


class PKMACValue(Sequence):
    _fields = [
        ("algId", AlgorithmIdentifier),
        ("value", OctetBitString),
    ]


class AuthInfo(Choice):
    _alternatives = [
        ("sender", GeneralName, {"explicit": 0}),
        ("publicKeyMAC", PKMACValue),
    ]


class POPOSigningKeyInput(Sequence):
    _fields = [
        ("authInfo", AuthInfo),
        ("publicKey", PublicKeyInfo),
    ]


class POPOSigningKey(Sequence):
    _fields = [
        ("poposkInput", POPOSigningKeyInput, {"implicit": 0, "optional": True}),
        ("algorithmIdentifier", AlgorithmIdentifier),
        ("signature", OctetBitString),
    ]


class SubsequentMessage(Integer):
    _map = {0: "encrCert", 1: "challengeResp"}


class POPOPrivKey(Choice):
    _alternatives = [
        ("thisMessage", OctetBitString, {"implicit": 0}),  # deprecated by RFC 9810
        ("subsequentMessage", SubsequentMessage, {"implicit": 1}),
        ("dhMAC", OctetBitString, {"implicit": 2}),  # deprecated by RFC 9810
        ("agreeMAC", PKMACValue, {"implicit": 3}),
        ("encryptedKey", EnvelopedData, {"implicit": 4}),
    ]


class ProofOfPossession(Choice):
    _alternatives = [
        ("raVerified", Null, {"implicit": 0}),
        ("signature", POPOSigningKey, {"implicit": 1}),
        ("keyEncipherment", POPOPrivKey, {"explicit": 2}),
        ("keyAgreement", POPOPrivKey, {"explicit": 3}),
    ]


class OptionalValidity(Sequence):
    _fields = [
        ("notBefore", Time, {"explicit": 0, "optional": True}),
        ("notAfter", Time, {"explicit": 1, "optional": True}),
    ]


def _opaque_key(_spki: PublicKeyInfo) -> tuple[type, None]:
    return (OctetBitString, None)


class TemplatePublicKey(PublicKeyInfo):
    """A template's SubjectPublicKeyInfo: the key bits stay an opaque BIT STRING, whatever the
    algorithm. For central key generation (RFC 9483 4.1.6) they are empty, the algorithm only a
    hint (`openssl cmp -centralkeygen` sends its own key's algorithm, e.g. rsaEncryption), which
    asn1crypto's typed keys (an RSAPublicKey inside the bits) would refuse as malformed."""

    _spec_callbacks = {**PublicKeyInfo._spec_callbacks, "public_key": _opaque_key}


class CertTemplate(Sequence):
    _fields = [
        ("version", Version, {"implicit": 0, "optional": True}),
        ("serialNumber", Integer, {"implicit": 1, "optional": True}),
        ("signingAlg", AlgorithmIdentifier, {"implicit": 2, "optional": True}),
        ("issuer", Name, {"explicit": 3, "optional": True}),
        ("validity", OptionalValidity, {"implicit": 4, "optional": True}),
        ("subject", Name, {"explicit": 5, "optional": True}),
        ("publicKey", TemplatePublicKey, {"implicit": 6, "optional": True}),
        ("issuerUID", BitString, {"implicit": 7, "optional": True}),
        ("subjectUID", BitString, {"implicit": 8, "optional": True}),
        ("extensions", Extensions, {"implicit": 9, "optional": True}),
    ]

    def __setitem__(self, key: object, value: object) -> None:
        """A plain `PublicKeyInfo` given for publicKey becomes a `TemplatePublicKey`."""
        plain = isinstance(value, PublicKeyInfo) and not isinstance(value, TemplatePublicKey)
        if key == "publicKey" and plain and isinstance(value, PublicKeyInfo):
            value = TemplatePublicKey.load(value.untag().dump())
        super().__setitem__(key, value)


class CertId(Sequence):
    _fields = [
        ("issuer", GeneralName),
        ("serialNumber", Integer),
    ]


class EncryptedValue(Sequence):
    """Deprecated by RFC 9810 in favour of EnvelopedData; still read for CMPv2 peers."""

    _fields = [
        ("intendedAlg", AlgorithmIdentifier, {"implicit": 0, "optional": True}),
        ("symmAlg", AlgorithmIdentifier, {"implicit": 1, "optional": True}),
        ("encSymmKey", OctetBitString, {"implicit": 2, "optional": True}),
        ("keyAlg", AlgorithmIdentifier, {"implicit": 3, "optional": True}),
        ("valueHint", OctetString, {"implicit": 4, "optional": True}),
        ("encValue", OctetBitString),
    ]


class EncryptedKey(Choice):
    _alternatives = [
        ("encryptedValue", EncryptedValue),
        ("envelopedData", EnvelopedData, {"implicit": 0}),
    ]


class PKIArchiveOptions(Choice):
    _alternatives = [
        ("encryptedPrivKey", EncryptedKey, {"explicit": 0}),
        ("keyGenParameters", OctetString, {"implicit": 1}),
        ("archiveRemGenPrivKey", Boolean, {"implicit": 2}),
    ]


class EncKeyWithIDIdentifier(Choice):
    _alternatives = [
        ("string", UTF8String),
        ("generalName", GeneralName),
    ]


class EncKeyWithID(Sequence):
    _fields = [
        ("privateKey", PrivateKeyInfo),
        ("identifier", EncKeyWithIDIdentifier, {"optional": True}),
    ]


class RegistrationType(ObjectIdentifier):
    """id-regCtrl-* (controls) and id-regInfo-* (registration info) of RFC 4211 and RFC 9810."""

    _map = {
        "1.3.6.1.5.5.7.5.1.1": "regToken",
        "1.3.6.1.5.5.7.5.1.2": "authenticator",
        "1.3.6.1.5.5.7.5.1.3": "pkiPublicationInfo",
        "1.3.6.1.5.5.7.5.1.4": "pkiArchiveOptions",
        "1.3.6.1.5.5.7.5.1.5": "oldCertID",
        "1.3.6.1.5.5.7.5.1.6": "protocolEncrKey",
        "1.3.6.1.5.5.7.5.1.7": "altCertTemplate",
        "1.3.6.1.5.5.7.5.1.11": "algId",
        "1.3.6.1.5.5.7.5.1.12": "rsaKeyLen",
        "1.3.6.1.5.5.7.5.2.1": "utf8Pairs",
        "1.3.6.1.5.5.7.5.2.2": "certReq",
    }


class AttributeTypeAndValue(OpenTypeSequence):
    """A control or regInfo entry; unknown types keep their value as raw `Any`."""

    _fields = [
        ("type", RegistrationType),
        ("value", Any),
    ]
    _oid_pair = ("type", "value")
    _oid_specs = OpenTypeRegistry()  # filled below (values nest this very type); else RawValue


class Controls(SequenceOf):
    _child_spec = AttributeTypeAndValue


class CertRequest(Sequence):
    _fields = [
        ("certReqId", Integer),
        ("certTemplate", CertTemplate),
        ("controls", Controls, {"optional": True}),
    ]


class RegInfo(SequenceOf):
    _child_spec = AttributeTypeAndValue


class CertReqMsg(Sequence):
    _fields = [
        ("certReq", CertRequest),
        ("popo", ProofOfPossession, {"optional": True}),
        ("regInfo", RegInfo, {"optional": True}),
    ]


class CertReqMessages(SequenceOf):
    _child_spec = CertReqMsg


AttributeTypeAndValue._oid_specs.update(
    {
        "regToken": UTF8String,
        "authenticator": UTF8String,
        "pkiPublicationInfo": PKIPublicationInfo,
        "pkiArchiveOptions": PKIArchiveOptions,
        "oldCertID": CertId,
        "protocolEncrKey": PublicKeyInfo,
        "altCertTemplate": AttributeTypeAndValue,
        "algId": AlgorithmIdentifier,
        "rsaKeyLen": Integer,
        "utf8Pairs": UTF8String,
        "certReq": CertRequest,
    }
)

ID_CT_ENC_KEY_WITH_ID = "1.2.840.113549.1.9.16.1.21"
