"""Public keys asn1crypto predates: ML-DSA, ML-KEM and any other algorithm it does not know.

asn1crypto types `SubjectPublicKeyInfo.subjectPublicKey` by a fixed table and fails on any other
algorithm, so a CMP message carrying an ML-DSA certificate or template key would not decode.
RFC 5280 makes the key a BIT STRING whatever its algorithm; this module teaches asn1crypto to keep
unknown keys as that opaque bit string and names the post-quantum OIDs. Imported by the package.
"""

from __future__ import annotations

from collections.abc import Callable

from asn1crypto.core import OctetBitString
from asn1crypto.keys import PublicKeyAlgorithmId, PublicKeyInfo

PQC_PUBLIC_KEY_ALGORITHMS = {
    "2.16.840.1.101.3.4.3.17": "ml_dsa_44",
    "2.16.840.1.101.3.4.3.18": "ml_dsa_65",
    "2.16.840.1.101.3.4.3.19": "ml_dsa_87",
    "2.16.840.1.101.3.4.4.1": "ml_kem_512",
    "2.16.840.1.101.3.4.4.2": "ml_kem_768",
    "2.16.840.1.101.3.4.4.3": "ml_kem_1024",
}

_typed_spec: Callable[[PublicKeyInfo], object] = PublicKeyInfo._spec_callbacks["public_key"]


def _public_key_spec(spki: PublicKeyInfo) -> object:
    """asn1crypto's own spec for the keys it knows; an opaque BIT STRING for all others."""
    try:
        return _typed_spec(spki)
    except KeyError:
        return (OctetBitString, None)


PublicKeyAlgorithmId._map.update(PQC_PUBLIC_KEY_ALGORITHMS)
PublicKeyAlgorithmId._reverse_map = None  # rebuilt lazily from _map by asn1crypto
PublicKeyInfo._spec_callbacks = {**PublicKeyInfo._spec_callbacks, "public_key": _public_key_spec}
