"""One-way functions and HMAC digests named by CMP algorithm identifiers (RFC 9481 sections 2, 6.2).

Digests run on `hashlib`: it is the fastest path in CPython for the short inputs CMP hashes (the PBM
iteration loop hashes 32-64 bytes tens of thousands of times).
"""

from __future__ import annotations

import hashlib

from .asn1 import AlgorithmIdentifier
from .errors import BadAlg

# hashlib name and output length (None = the hash's natural size) per one-way function.
_OWF: dict[str, tuple[str, int | None]] = {
    "id-sha1": ("sha1", None),
    "id-sha224": ("sha224", None),
    "id-sha256": ("sha256", None),
    "id-sha384": ("sha384", None),
    "id-sha512": ("sha512", None),
    "id-sha3-224": ("sha3_224", None),
    "id-sha3-256": ("sha3_256", None),
    "id-sha3-384": ("sha3_384", None),
    "id-sha3-512": ("sha3_512", None),
    "id-shake128": ("shake_128", 32),
    "id-shake256": ("shake_256", 64),
}

# hashlib name of the digest under each HMAC algorithm.
_HMAC: dict[str, str] = {
    "hmac-sha1": "sha1",
    "id-hmacWithSHA1": "sha1",
    "id-hmacWithSHA224": "sha224",
    "id-hmacWithSHA256": "sha256",
    "id-hmacWithSHA384": "sha384",
    "id-hmacWithSHA512": "sha512",
    "id-hmacWithSHA3-224": "sha3_224",
    "id-hmacWithSHA3-256": "sha3_256",
    "id-hmacWithSHA3-384": "sha3_384",
    "id-hmacWithSHA3-512": "sha3_512",
}

# The RFC 9481 names of the digests above, for building identifiers from a hashlib name.
OWF_BY_HASH = {name: oid for oid, (name, _size) in _OWF.items()}
HMAC_BY_HASH = {name: oid for oid, name in _HMAC.items() if oid != "hmac-sha1"}


def owf_name(alg: AlgorithmIdentifier) -> str:
    """The hashlib name of a one-way function identifier; `BadAlg` if CMP does not use it."""
    entry = _OWF.get(alg["algorithm"].native)
    if entry is None:
        raise BadAlg(f"unsupported one-way function {alg['algorithm'].dotted}")
    return entry[0]


def digest(hash_name: str, data: bytes) -> bytes:
    """Hash `data`; SHAKE functions give the output length RFC 9481 fixes for them."""
    if hash_name == "shake_128":
        return hashlib.shake_128(data).digest(32)
    if hash_name == "shake_256":
        return hashlib.shake_256(data).digest(64)
    return hashlib.new(hash_name, data).digest()


def hmac_hash_name(alg: AlgorithmIdentifier) -> str:
    """The hashlib name of the digest inside an HMAC identifier; `BadAlg` if unsupported."""
    name = _HMAC.get(alg["algorithm"].native)
    if name is None:
        raise BadAlg(f"unsupported MAC algorithm {alg['algorithm'].dotted}")
    return name
