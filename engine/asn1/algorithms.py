"""Algorithm identifiers CMP uses (RFC 9481, RFC 9814, RFC 8018) and the MAC parameter structures.

`AlgorithmIdentifier` names every OID CMP messages carry in protectionAlg, POPO, certConf hashAlg
and the PBM/PBMAC1 parameters, and parses the parameters of the MAC-based protection algorithms.
"""

from __future__ import annotations

from asn1crypto.algos import Pbmac1Params, RSASSAPSSParams
from asn1crypto.core import Any, Integer, ObjectIdentifier, OctetString, Sequence

from .der import OpenTypeRegistry, OpenTypeSequence


class AlgorithmId(ObjectIdentifier):
    """OIDs of RFC 9481 (CMP algorithms), RFC 9814 (ML-DSA) and RFC 8018, by their ASN.1 names."""

    _map = {
        # MAC-based protection (RFC 9810 5.1.3.1-4, RFC 9481 6.1)
        "1.2.840.113533.7.66.13": "id-PasswordBasedMac",
        "1.2.840.113533.7.66.30": "id-DHBasedMac",
        "1.2.840.113533.7.66.16": "id-KemBasedMac",
        "1.2.840.113549.1.5.14": "id-PBMAC1",
        "1.2.840.113549.1.5.12": "id-PBKDF2",
        # one-way functions (RFC 9481 2)
        "1.3.14.3.2.26": "id-sha1",
        "2.16.840.1.101.3.4.2.4": "id-sha224",
        "2.16.840.1.101.3.4.2.1": "id-sha256",
        "2.16.840.1.101.3.4.2.2": "id-sha384",
        "2.16.840.1.101.3.4.2.3": "id-sha512",
        "2.16.840.1.101.3.4.2.7": "id-sha3-224",
        "2.16.840.1.101.3.4.2.8": "id-sha3-256",
        "2.16.840.1.101.3.4.2.9": "id-sha3-384",
        "2.16.840.1.101.3.4.2.10": "id-sha3-512",
        "2.16.840.1.101.3.4.2.11": "id-shake128",
        "2.16.840.1.101.3.4.2.12": "id-shake256",
        # MACs (RFC 9481 6.2)
        "1.3.6.1.5.5.8.1.2": "hmac-sha1",
        "1.2.840.113549.2.7": "id-hmacWithSHA1",
        "1.2.840.113549.2.8": "id-hmacWithSHA224",
        "1.2.840.113549.2.9": "id-hmacWithSHA256",
        "1.2.840.113549.2.10": "id-hmacWithSHA384",
        "1.2.840.113549.2.11": "id-hmacWithSHA512",
        "2.16.840.1.101.3.4.2.13": "id-hmacWithSHA3-224",
        "2.16.840.1.101.3.4.2.14": "id-hmacWithSHA3-256",
        "2.16.840.1.101.3.4.2.15": "id-hmacWithSHA3-384",
        "2.16.840.1.101.3.4.2.16": "id-hmacWithSHA3-512",
        "2.16.840.1.101.3.4.2.19": "id-KMACWithSHAKE128",
        "2.16.840.1.101.3.4.2.20": "id-KMACWithSHAKE256",
        # signatures (RFC 9481 3, RFC 9814)
        "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.14": "sha224WithRSAEncryption",
        "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10": "id-RSASSA-PSS",
        "1.3.6.1.5.5.7.6.30": "id-RSASSA-PSS-SHAKE128",
        "1.3.6.1.5.5.7.6.31": "id-RSASSA-PSS-SHAKE256",
        "1.2.840.10045.4.1": "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.1": "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
        "1.3.6.1.5.5.7.6.32": "id-ecdsa-with-shake128",
        "1.3.6.1.5.5.7.6.33": "id-ecdsa-with-shake256",
        "1.3.101.112": "id-Ed25519",
        "1.3.101.113": "id-Ed448",
        "2.16.840.1.101.3.4.3.17": "id-ml-dsa-44",
        "2.16.840.1.101.3.4.3.18": "id-ml-dsa-65",
        "2.16.840.1.101.3.4.3.19": "id-ml-dsa-87",
        # public key types (RFC 9481 4)
        "1.2.840.113549.1.1.1": "rsaEncryption",
        "1.2.840.10045.2.1": "id-ecPublicKey",
        "1.3.101.110": "id-X25519",
        "1.3.101.111": "id-X448",
        "2.16.840.1.101.3.4.4.1": "id-alg-ml-kem-512",
        "2.16.840.1.101.3.4.4.2": "id-alg-ml-kem-768",
        "2.16.840.1.101.3.4.4.3": "id-alg-ml-kem-1024",
        # key management and content encryption (RFC 9481 4, 5)
        "1.2.840.113549.1.1.7": "id-RSAES-OAEP",
        "1.3.132.1.11.1": "dhSinglePass-stdDH-sha256kdf-scheme",
        "1.3.132.1.11.2": "dhSinglePass-stdDH-sha384kdf-scheme",
        "1.3.132.1.11.3": "dhSinglePass-stdDH-sha512kdf-scheme",
        "2.16.840.1.101.3.4.1.5": "id-aes128-wrap",
        "2.16.840.1.101.3.4.1.25": "id-aes192-wrap",
        "2.16.840.1.101.3.4.1.45": "id-aes256-wrap",
        "2.16.840.1.101.3.4.1.2": "id-aes128-CBC",
        "2.16.840.1.101.3.4.1.22": "id-aes192-CBC",
        "2.16.840.1.101.3.4.1.42": "id-aes256-CBC",
        "2.16.840.1.101.3.4.1.6": "id-aes128-GCM",
        "2.16.840.1.101.3.4.1.26": "id-aes192-GCM",
        "2.16.840.1.101.3.4.1.46": "id-aes256-GCM",
        "1.2.840.113549.1.9.16.3.28": "id-alg-hkdf-with-sha256",
        "1.2.840.113549.1.9.16.3.29": "id-alg-hkdf-with-sha384",
        "1.2.840.113549.1.9.16.3.30": "id-alg-hkdf-with-sha512",
    }


class AlgorithmIdentifier(OpenTypeSequence):
    """RFC 5280 AlgorithmIdentifier; parameters of the CMP MAC algorithms and RSASSA-PSS parse."""

    _fields = [
        ("algorithm", AlgorithmId),
        ("parameters", Any, {"optional": True}),
    ]
    _oid_pair = ("algorithm", "parameters")
    _oid_specs = OpenTypeRegistry()  # filled below, once the parameter types exist


class PBMParameter(Sequence):
    """Parameters of PasswordBasedMac protection (RFC 9810 5.1.3.1)."""

    _fields = [
        ("salt", OctetString),
        ("owf", AlgorithmIdentifier),
        ("iterationCount", Integer),
        ("mac", AlgorithmIdentifier),
    ]


class DHBMParameter(Sequence):
    """Parameters of DHBasedMac protection (RFC 9810 5.1.3.2)."""

    _fields = [
        ("owf", AlgorithmIdentifier),
        ("mac", AlgorithmIdentifier),
    ]


class KemBMParameter(Sequence):
    """Parameters of KemBasedMac protection (RFC 9810 5.1.3.4)."""

    _fields = [
        ("kdf", AlgorithmIdentifier),
        ("kemContext", OctetString, {"explicit": 0, "optional": True}),
        ("len", Integer),
        ("mac", AlgorithmIdentifier),
    ]


AlgorithmIdentifier._oid_specs.update(
    {
        "id-PasswordBasedMac": PBMParameter,
        "id-DHBasedMac": DHBMParameter,
        "id-KemBasedMac": KemBMParameter,
        "id-PBMAC1": Pbmac1Params,  # RFC 8018 PBMAC1-params with PBKDF2-params inside
        "id-RSASSA-PSS": RSASSAPSSParams,
    }
)
