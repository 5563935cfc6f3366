"""Certificate Management Protocol messages (RFC 9810, which absorbs RFC 4210 and RFC 9480).

The CMP module uses EXPLICIT TAGS. Field and alternative names are the RFC's own, so that
`msg["header"]["senderNonce"]` reads like the ASN.1 it comes from.
"""

from __future__ import annotations

from asn1crypto.cms import EnvelopedData
from asn1crypto.core import (
    Any,
    BitString,
    Choice,
    GeneralizedTime,
    Integer,
    Null,
    ObjectIdentifier,
    OctetBitString,
    OctetString,
    Sequence,
    SequenceOf,
    UTF8String,
)
from asn1crypto.crl import CertificateList
from asn1crypto.csr import CertificationRequest
from asn1crypto.x509 import (
    Certificate,
    DistributionPointName,
    Extensions,
    GeneralName,
    GeneralNames,
    Time,
)

from ..encode import split
from ..errors import DecodeError, FailInfo
from .algorithms import AlgorithmIdentifier
from .crmf import CertId, CertReqMessages, CertTemplate, Controls, EncryptedKey, PKIPublicationInfo
from .der import OpenTypeRegistry, OpenTypeSequence, first_inner_element, load_der, load_lenient

# CMPCertificate ::= CHOICE { x509v3PKCert Certificate }: one alternative, encoded as Certificate.
CMPCertificate = Certificate


class CMPCertificates(SequenceOf):
    _child_spec = CMPCertificate


class PKIFreeText(SequenceOf):
    _child_spec = UTF8String


class PKIStatus(Integer):
    _map = {
        0: "accepted",
        1: "grantedWithMods",
        2: "rejection",
        3: "waiting",
        4: "revocationWarning",
        5: "revocationNotification",
        6: "keyUpdateWarning",
    }


class PKIFailureInfo(BitString):
    """The 27 named failure bits; names and numbers come from `errors.FailInfo`."""

    _map = {bit.value: bit.name for bit in FailInfo}


class PKIStatusInfo(Sequence):
    _fields = [
        ("status", PKIStatus),
        ("statusString", PKIFreeText, {"optional": True}),
        ("failInfo", PKIFailureInfo, {"optional": True}),
    ]


class InfoType(ObjectIdentifier):
    """id-it-* general message types (RFC 9810 5.3.19 and appendix F, RFC 9483 4.3)."""

    _map = {
        "1.3.6.1.5.5.7.4.1": "caProtEncCert",
        "1.3.6.1.5.5.7.4.2": "signKeyPairTypes",
        "1.3.6.1.5.5.7.4.3": "encKeyPairTypes",
        "1.3.6.1.5.5.7.4.4": "preferredSymmAlg",
        "1.3.6.1.5.5.7.4.5": "caKeyUpdateInfo",
        "1.3.6.1.5.5.7.4.6": "currentCRL",
        "1.3.6.1.5.5.7.4.7": "unsupportedOIDs",
        "1.3.6.1.5.5.7.4.10": "keyPairParamReq",
        "1.3.6.1.5.5.7.4.11": "keyPairParamRep",
        "1.3.6.1.5.5.7.4.12": "revPassphrase",
        "1.3.6.1.5.5.7.4.13": "implicitConfirm",
        "1.3.6.1.5.5.7.4.14": "confirmWaitTime",
        "1.3.6.1.5.5.7.4.15": "origPKIMessage",
        "1.3.6.1.5.5.7.4.16": "suppLangTags",
        "1.3.6.1.5.5.7.4.17": "caCerts",
        "1.3.6.1.5.5.7.4.18": "rootCaKeyUpdate",
        "1.3.6.1.5.5.7.4.19": "certReqTemplate",
        "1.3.6.1.5.5.7.4.20": "rootCaCert",
        "1.3.6.1.5.5.7.4.21": "certProfile",
        "1.3.6.1.5.5.7.4.22": "crlStatusList",
        "1.3.6.1.5.5.7.4.23": "crls",
        "1.3.6.1.5.5.7.4.24": "kemCiphertextInfo",
    }


class InfoTypeAndValue(OpenTypeSequence):
    """A generalInfo / genm / genp entry; the registry in `infotypes` types its value."""

    _fields = [
        ("infoType", InfoType),
        ("infoValue", Any, {"optional": True}),
    ]
    _oid_pair = ("infoType", "infoValue")
    _oid_specs = OpenTypeRegistry()  # the registry, filled by .infotypes; else RawValue


class InfoTypeAndValues(SequenceOf):
    _child_spec = InfoTypeAndValue


GenMsgContent = InfoTypeAndValues
GenRepContent = InfoTypeAndValues


class PKIHeader(Sequence):
    _fields = [
        ("pvno", Integer),  # cmp1999(1), cmp2000(2), cmp2021(3)
        ("sender", GeneralName),
        ("recipient", GeneralName),
        ("messageTime", GeneralizedTime, {"explicit": 0, "optional": True}),
        ("protectionAlg", AlgorithmIdentifier, {"explicit": 1, "optional": True}),
        ("senderKID", OctetString, {"explicit": 2, "optional": True}),
        ("recipKID", OctetString, {"explicit": 3, "optional": True}),
        ("transactionID", OctetString, {"explicit": 4, "optional": True}),
        ("senderNonce", OctetString, {"explicit": 5, "optional": True}),
        ("recipNonce", OctetString, {"explicit": 6, "optional": True}),
        ("freeText", PKIFreeText, {"explicit": 7, "optional": True}),
        ("generalInfo", InfoTypeAndValues, {"explicit": 8, "optional": True}),
    ]


class CertOrEncCert(Choice):
    _alternatives = [
        ("certificate", CMPCertificate, {"explicit": 0}),
        ("encryptedCert", EncryptedKey, {"explicit": 1}),
    ]


class CertifiedKeyPair(Sequence):
    _fields = [
        ("certOrEncCert", CertOrEncCert),
        ("privateKey", EncryptedKey, {"explicit": 0, "optional": True}),
        ("publicationInfo", PKIPublicationInfo, {"explicit": 1, "optional": True}),
    ]


class CertifiedKeyPairs(SequenceOf):
    _child_spec = CertifiedKeyPair


class CertResponse(Sequence):
    _fields = [
        ("certReqId", Integer),
        ("status", PKIStatusInfo),
        ("certifiedKeyPair", CertifiedKeyPair, {"optional": True}),
        ("rspInfo", OctetString, {"optional": True}),
    ]


class CertResponses(SequenceOf):
    _child_spec = CertResponse


class CertRepMessage(Sequence):
    _fields = [
        ("caPubs", CMPCertificates, {"explicit": 1, "optional": True}),
        ("response", CertResponses),
    ]


class KeyRecRepContent(Sequence):
    _fields = [
        ("status", PKIStatusInfo),
        ("newSigCert", CMPCertificate, {"explicit": 0, "optional": True}),
        ("caCerts", CMPCertificates, {"explicit": 1, "optional": True}),
        ("keyPairHist", CertifiedKeyPairs, {"explicit": 2, "optional": True}),
    ]


class RevDetails(Sequence):
    _fields = [
        ("certDetails", CertTemplate),
        ("crlEntryDetails", Extensions, {"optional": True}),
    ]


class RevReqContent(SequenceOf):
    _child_spec = RevDetails


class PKIStatusInfos(SequenceOf):
    _child_spec = PKIStatusInfo


class CertIds(SequenceOf):
    _child_spec = CertId


class CertificateLists(SequenceOf):
    _child_spec = CertificateList


class RevRepContent(Sequence):
    _fields = [
        ("status", PKIStatusInfos),
        ("revCerts", CertIds, {"explicit": 0, "optional": True}),
        ("crls", CertificateLists, {"explicit": 1, "optional": True}),
    ]


class CAKeyUpdAnnContent(Sequence):
    _fields = [
        ("oldWithNew", CMPCertificate),
        ("newWithOld", CMPCertificate),
        ("newWithNew", CMPCertificate),
    ]


class RootCaKeyUpdateContent(Sequence):
    _fields = [
        ("newWithNew", CMPCertificate),
        ("newWithOld", CMPCertificate, {"explicit": 0, "optional": True}),
        ("oldWithNew", CMPCertificate, {"explicit": 1, "optional": True}),
    ]


class CAKeyUpdContent(Choice):
    _alternatives = [
        ("cAKeyUpdAnnV2", CAKeyUpdAnnContent),  # deprecated by RFC 9810
        ("cAKeyUpdAnnV3", RootCaKeyUpdateContent, {"explicit": 0}),
    ]


CertAnnContent = CMPCertificate


class RevAnnContent(Sequence):
    _fields = [
        ("status", PKIStatus),
        ("certId", CertId),
        ("willBeRevokedAt", GeneralizedTime),
        ("badSinceDate", GeneralizedTime),
        ("crlDetails", Extensions, {"optional": True}),
    ]


CRLAnnContent = CertificateLists
PKIConfirmContent = Null


class Challenge(Sequence):
    _fields = [
        ("owf", AlgorithmIdentifier, {"optional": True}),
        ("witness", OctetString),
        ("challenge", OctetString),
        ("encryptedRand", EnvelopedData, {"explicit": 0, "optional": True}),
    ]


class POPODecKeyChallContent(SequenceOf):
    _child_spec = Challenge


class POPODecKeyRespContent(SequenceOf):
    _child_spec = Integer


class Rand(Sequence):
    """Decrypted `encryptedRand` of a POP challenge (RFC 9810 5.2.8.3.3)."""

    _fields = [
        ("int", Integer),
        ("sender", GeneralName),
    ]


class ErrorMsgContent(Sequence):
    _fields = [
        ("pKIStatusInfo", PKIStatusInfo),
        ("errorCode", Integer, {"optional": True}),
        ("errorDetails", PKIFreeText, {"optional": True}),
    ]


class CertStatus(Sequence):
    _fields = [
        ("certHash", OctetString),
        ("certReqId", Integer),
        ("statusInfo", PKIStatusInfo, {"optional": True}),
        ("hashAlg", AlgorithmIdentifier, {"explicit": 0, "optional": True}),  # CMPv3
    ]


class CertConfirmContent(SequenceOf):
    _child_spec = CertStatus


class PollReq(Sequence):
    _fields = [("certReqId", Integer)]


class PollReqContent(SequenceOf):
    _child_spec = PollReq


class PollRep(Sequence):
    _fields = [
        ("certReqId", Integer),
        ("checkAfter", Integer),  # seconds
        ("reason", PKIFreeText, {"optional": True}),
    ]


class PollRepContent(SequenceOf):
    _child_spec = PollRep


class NestedMessageContent(SequenceOf):
    """PKIMessages; its child spec is bound once PKIMessage exists (the type is recursive)."""


class PKIBody(Choice):
    _alternatives = [
        ("ir", CertReqMessages, {"explicit": 0}),
        ("ip", CertRepMessage, {"explicit": 1}),
        ("cr", CertReqMessages, {"explicit": 2}),
        ("cp", CertRepMessage, {"explicit": 3}),
        ("p10cr", CertificationRequest, {"explicit": 4}),
        ("popdecc", POPODecKeyChallContent, {"explicit": 5}),
        ("popdecr", POPODecKeyRespContent, {"explicit": 6}),
        ("kur", CertReqMessages, {"explicit": 7}),
        ("kup", CertRepMessage, {"explicit": 8}),
        ("krr", CertReqMessages, {"explicit": 9}),
        ("krp", KeyRecRepContent, {"explicit": 10}),
        ("rr", RevReqContent, {"explicit": 11}),
        ("rp", RevRepContent, {"explicit": 12}),
        ("ccr", CertReqMessages, {"explicit": 13}),
        ("ccp", CertRepMessage, {"explicit": 14}),
        ("ckuann", CAKeyUpdContent, {"explicit": 15}),
        ("cann", CMPCertificate, {"explicit": 16}),
        ("rann", RevAnnContent, {"explicit": 17}),
        ("crlann", CertificateLists, {"explicit": 18}),
        ("pkiconf", Null, {"explicit": 19}),
        ("nested", NestedMessageContent, {"explicit": 20}),
        ("genm", InfoTypeAndValues, {"explicit": 21}),
        ("genp", InfoTypeAndValues, {"explicit": 22}),
        ("error", ErrorMsgContent, {"explicit": 23}),
        ("certConf", CertConfirmContent, {"explicit": 24}),
        ("pollReq", PollReqContent, {"explicit": 25}),
        ("pollRep", PollRepContent, {"explicit": 26}),
    ]


class PKIMessage(Sequence):
    """A CMP message. `PKIMessage.load` is strict: complete DER or `DecodeError`."""

    _fields = [
        ("header", PKIHeader),
        ("body", PKIBody),
        ("protection", OctetBitString, {"explicit": 0, "optional": True}),
        ("extraCerts", CMPCertificates, {"explicit": 1, "optional": True}),
    ]

    @classmethod
    def load(cls, encoded_data: bytes, strict: bool = True, **kwargs: object) -> PKIMessage:
        """Decode one PKIMessage; BER, trailing bytes or any malformed part raise `DecodeError`."""
        return load_der(cls, encoded_data)


class PKIMessages(SequenceOf):
    _child_spec = PKIMessage


NestedMessageContent._child_spec = PKIMessage


class ProtectedPart(Sequence):
    """What protection is computed over: the DER of SEQUENCE { header, body }."""

    _fields = [
        ("header", PKIHeader),
        ("body", PKIBody),
    ]


class OOBCertHash(Sequence):
    _fields = [
        ("hashAlg", AlgorithmIdentifier, {"explicit": 0, "optional": True}),
        ("certId", CertId, {"explicit": 1, "optional": True}),
        ("hashVal", OctetBitString),
    ]


class CRLSource(Choice):
    _alternatives = [
        ("dpn", DistributionPointName, {"explicit": 0}),
        ("issuer", GeneralNames, {"explicit": 1}),
    ]


class CRLStatus(Sequence):
    _fields = [
        ("source", CRLSource),
        ("thisUpdate", Time, {"optional": True}),
    ]


class CertReqTemplateContent(Sequence):
    _fields = [
        ("certTemplate", CertTemplate),
        ("keySpec", Controls, {"optional": True}),
    ]


class KemCiphertextInfo(Sequence):
    _fields = [
        ("kem", AlgorithmIdentifier),
        ("ct", OctetString),
    ]


class KemOtherInfo(Sequence):
    _fields = [
        ("staticString", PKIFreeText),  # "CMP-KEM"
        ("transactionID", OctetString),
        ("kemContext", OctetString, {"explicit": 0, "optional": True}),
    ]


# Extended key usages for CMP entities (RFC 9810 4.5, RFC 6402)
ID_KP_CMC_CA = "1.3.6.1.5.5.7.3.27"
ID_KP_CMC_RA = "1.3.6.1.5.5.7.3.28"
ID_KP_CM_KGA = "1.3.6.1.5.5.7.3.32"

# PKIBody choice names as numbered in the ASN.1 (the explicit tag of each alternative)
BODY_TYPES: tuple[str, ...] = tuple(name for name, _spec, _params in PKIBody._alternatives)


def body_name(message: PKIMessage) -> str:
    """The body type of `message`, from the tag of its body's DER (no parse of the message)."""
    try:
        return BODY_TYPES[split(message.contents)[1][0] & 0x1F]
    except (ValueError, IndexError):
        return str(message["body"].name)


NULL_DN_DER = b"\xa4\x02\x30\x00"  # GeneralName directoryName with an empty RDNSequence


def null_dn() -> GeneralName:
    """The NULL-DN GeneralName: "no name" as a sender or recipient (RFC 9483 3.1)."""
    return GeneralName.load(NULL_DN_DER)


def recover_header(data: bytes) -> PKIHeader | None:
    """The header of a message that does not decode as a whole, if the header alone parses.

    An error answer should still carry the request's transactionID, nonces and pvno
    (RFC 9810 5.1.1) even when the body, the protection or the DER of the rest is broken, or the
    message is cut short: only the first element inside the outer SEQUENCE is read.
    """
    element = first_inner_element(data)
    if element is None:
        return None
    try:
        header: PKIHeader = load_lenient(PKIHeader, element)
    except DecodeError:
        return None
    return header
