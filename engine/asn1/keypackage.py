"""CMS content of central key generation (RFC 9483 4.1.6): key packages and password recipients.

`AsymmetricKeyPackage` (RFC 5958 2) is the eContent of the KGA's SignedData, content type
id-ct-KP-aKeyPackage; `OneAsymmetricKey` is PKCS#8 v2, which asn1crypto's `PrivateKeyInfo` (v1)
lacks: the optional `[1] publicKey` is what RFC 9483 has the KGA send along. The object
identifiers name what asn1crypto does not know: the key package content type and RFC 3211's
id-alg-PWRI-KEK (the password recipient's key wrap OpenSSL implements).
"""

from __future__ import annotations

from asn1crypto.core import Any, Integer, OctetBitString, OctetString, Sequence, SequenceOf, SetOf

from .algorithms import AlgorithmIdentifier

ID_CT_KP_AKEYPACKAGE = "2.16.840.1.101.2.1.2.78.5"  # RFC 5958 3
ID_ALG_PWRI_KEK = "1.2.840.113549.1.9.16.3.9"  # RFC 3211 2.3


class Attributes(SetOf):
    """RFC 5958 Attributes, kept undecoded (the engine neither writes nor reads any)."""

    _child_spec = Any


class OneAsymmetricKey(Sequence):
    """RFC 5958 2: version v1 (0) is PKCS#8 PrivateKeyInfo, v2 (1) may carry the public key."""

    _fields = [
        ("version", Integer),
        ("privateKeyAlgorithm", AlgorithmIdentifier),
        ("privateKey", OctetString),
        ("attributes", Attributes, {"implicit": 0, "optional": True}),
        ("publicKey", OctetBitString, {"implicit": 1, "optional": True}),
    ]


class AsymmetricKeyPackage(SequenceOf):
    """RFC 5958 3: SEQUENCE SIZE (1..MAX) OF OneAsymmetricKey."""

    _child_spec = OneAsymmetricKey
