"""The InfoTypeAndValue registry: the value type of every id-it of RFC 9810, RFC 9480 and RFC 9483.

Importing this module types `InfoTypeAndValue.infoValue` by its infoType; an unregistered infoType
keeps its value as raw `Any`, so unknown general messages stay readable and re-encode unchanged.
"""

from __future__ import annotations

from asn1crypto.core import GeneralizedTime, Null, ObjectIdentifier, SequenceOf, UTF8String
from asn1crypto.crl import CertificateList

from .algorithms import AlgorithmIdentifier
from .cmp import (
    CAKeyUpdAnnContent,
    CertificateLists,
    CertReqTemplateContent,
    CMPCertificate,
    CMPCertificates,
    CRLStatus,
    InfoTypeAndValue,
    KemCiphertextInfo,
    PKIMessages,
    RootCaKeyUpdateContent,
)
from .crmf import EncryptedKey


class AlgorithmIdentifiers(SequenceOf):
    _child_spec = AlgorithmIdentifier


class ObjectIdentifiers(SequenceOf):
    _child_spec = ObjectIdentifier


class UTF8Strings(SequenceOf):
    _child_spec = UTF8String


class CRLStatusList(SequenceOf):
    _child_spec = CRLStatus


INFO_VALUE_TYPES: dict[str, type] = {
    "caProtEncCert": CMPCertificate,
    "signKeyPairTypes": AlgorithmIdentifiers,
    "encKeyPairTypes": AlgorithmIdentifiers,
    "preferredSymmAlg": AlgorithmIdentifier,
    "caKeyUpdateInfo": CAKeyUpdAnnContent,
    "currentCRL": CertificateList,
    "unsupportedOIDs": ObjectIdentifiers,
    "keyPairParamReq": ObjectIdentifier,
    "keyPairParamRep": AlgorithmIdentifier,
    "revPassphrase": EncryptedKey,
    "implicitConfirm": Null,
    "confirmWaitTime": GeneralizedTime,
    "origPKIMessage": PKIMessages,
    "suppLangTags": UTF8Strings,
    "caCerts": CMPCertificates,
    "rootCaKeyUpdate": RootCaKeyUpdateContent,
    "certReqTemplate": CertReqTemplateContent,
    "rootCaCert": CMPCertificate,
    "certProfile": UTF8Strings,
    "crlStatusList": CRLStatusList,
    "crls": CertificateLists,
    "kemCiphertextInfo": KemCiphertextInfo,
}

InfoTypeAndValue._oid_specs.update(INFO_VALUE_TYPES)
