"""Signature algorithms of RFC 9481 section 3 and RFC 9814 (ML-DSA): sign and verify by identifier.

Used for message protection, signature POPO and PKCS#10 requests alike; the caller decides which
failure bit an invalid signature becomes (badMessageCheck for protection, badPOP for POPO).
"""

from __future__ import annotations

from asn1crypto.algos import RSASSAPSSParams
from asn1crypto.core import Null
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, padding, rsa

from .asn1 import AlgorithmIdentifier
from .errors import BadAlg

SigningKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | mldsa.MLDSA44PrivateKey
    | mldsa.MLDSA65PrivateKey
    | mldsa.MLDSA87PrivateKey
)
VerifyingKey = (
    rsa.RSAPublicKey
    | ec.EllipticCurvePublicKey
    | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
    | mldsa.MLDSA44PublicKey
    | mldsa.MLDSA65PublicKey
    | mldsa.MLDSA87PublicKey
)

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha3_224": hashes.SHA3_224,
    "sha3_256": hashes.SHA3_256,
    "sha3_384": hashes.SHA3_384,
    "sha3_512": hashes.SHA3_512,
}

_RSA_PKCS1 = {
    "sha1WithRSAEncryption": "sha1",
    "sha224WithRSAEncryption": "sha224",
    "sha256WithRSAEncryption": "sha256",
    "sha384WithRSAEncryption": "sha384",
    "sha512WithRSAEncryption": "sha512",
}
_ECDSA = {
    "ecdsa-with-SHA1": "sha1",
    "ecdsa-with-SHA224": "sha224",
    "ecdsa-with-SHA256": "sha256",
    "ecdsa-with-SHA384": "sha384",
    "ecdsa-with-SHA512": "sha512",
}
# Pure signature schemes: the key type each identifier requires.
_PURE: dict[str, tuple[type, ...]] = {
    "id-Ed25519": (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey),
    "id-Ed448": (ed448.Ed448PublicKey, ed448.Ed448PrivateKey),
    "id-ml-dsa-44": (mldsa.MLDSA44PublicKey, mldsa.MLDSA44PrivateKey),
    "id-ml-dsa-65": (mldsa.MLDSA65PublicKey, mldsa.MLDSA65PrivateKey),
    "id-ml-dsa-87": (mldsa.MLDSA87PublicKey, mldsa.MLDSA87PrivateKey),
}
# Digest that stands for a pure scheme where CMP needs one (certHash, RFC 9810 5.3.18; RFC 9814).
_PURE_HASH = {
    "id-Ed25519": "sha512",
    "id-Ed448": "shake_256",
    "id-ml-dsa-44": "sha512",
    "id-ml-dsa-65": "sha512",
    "id-ml-dsa-87": "sha512",
}
_EC_HASH_BY_CURVE_BITS = {256: "sha256", 384: "sha384", 521: "sha512"}


def default_algorithm(key: SigningKey | VerifyingKey, *, pss: bool = False) -> AlgorithmIdentifier:
    """The RFC 9481 identifier a CMP entity uses with `key` (RSA: PKCS#1 v1.5 or PSS, SHA-256)."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return pss_algorithm("sha256") if pss else _alg("sha256WithRSAEncryption", null=True)
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        hash_name = _EC_HASH_BY_CURVE_BITS.get(key.curve.key_size, "sha512")
        return _alg(next(k for k, v in _ECDSA.items() if v == hash_name))
    for name, key_types in _PURE.items():
        if isinstance(key, key_types):
            return _alg(name)
    raise BadAlg(f"no signature algorithm for {type(key).__name__}")


def pss_algorithm(hash_name: str) -> AlgorithmIdentifier:
    """RSASSA-PSS with MGF1 over the same hash and a salt as long as the digest (RFC 9481 3.1)."""
    params = RSASSAPSSParams(
        {
            "hash_algorithm": {"algorithm": hash_name},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": hash_name}},
            "salt_length": _HASHES[hash_name].digest_size,
        }
    )
    return AlgorithmIdentifier({"algorithm": "id-RSASSA-PSS", "parameters": params})


def sign(key: SigningKey, alg: AlgorithmIdentifier, data: bytes) -> bytes:
    """Sign `data` with `key` under identifier `alg`; `BadAlg` if they do not fit together."""
    name = alg["algorithm"].native
    if name in _RSA_PKCS1 and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), _hash(_RSA_PKCS1[name]))
    if name == "id-RSASSA-PSS" and isinstance(key, rsa.RSAPrivateKey):
        pad, algorithm = _pss(alg)
        return key.sign(data, pad, algorithm)
    if name in _ECDSA and isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(_hash(_ECDSA[name])))
    if name in _PURE and isinstance(key, _PURE[name][1]):
        if alg["parameters"].native is not None:
            raise BadAlg(f"{name} takes no parameters")
        pure_key: ed25519.Ed25519PrivateKey = key  # type: ignore[assignment]
        return pure_key.sign(data)
    raise BadAlg(f"cannot sign with {name} using a {type(key).__name__}")


def verify(key: VerifyingKey, alg: AlgorithmIdentifier, data: bytes, signature: bytes) -> bool:
    """Whether `signature` over `data` verifies; `BadAlg` if `alg` is unsupported or unfit."""
    name = alg["algorithm"].native
    try:
        if name in _RSA_PKCS1 and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), _hash(_RSA_PKCS1[name]))
        elif name == "id-RSASSA-PSS" and isinstance(key, rsa.RSAPublicKey):
            pad, algorithm = _pss(alg)
            key.verify(signature, data, pad, algorithm)
        elif name in _ECDSA and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_hash(_ECDSA[name])))
        elif name in _PURE and isinstance(key, _PURE[name][0]):
            if alg["parameters"].native is not None:
                raise BadAlg(f"{name} takes no parameters")
            pure_key: ed25519.Ed25519PublicKey = key  # type: ignore[assignment]
            pure_key.verify(signature, data)
        else:
            raise BadAlg(f"cannot verify {alg['algorithm'].dotted} with a {type(key).__name__}")
    except InvalidSignature:
        return False
    return True


def is_supported(alg: AlgorithmIdentifier) -> bool:
    """Whether `alg` names a signature algorithm `sign` and `verify` handle (parameters aside)."""
    name = alg["algorithm"].native
    return name in _RSA_PKCS1 or name in _ECDSA or name in _PURE or name == "id-RSASSA-PSS"


def signature_hash_name(alg: AlgorithmIdentifier) -> str:
    """The hashlib name of the digest a signature algorithm uses (RFC 9810 certHash, CMPv2)."""
    name = alg["algorithm"].native
    if name in _RSA_PKCS1:
        return _RSA_PKCS1[name]
    if name in _ECDSA:
        return _ECDSA[name]
    if name == "id-RSASSA-PSS":
        return str(alg["parameters"]["hash_algorithm"]["algorithm"].native)
    if name in _PURE_HASH:
        return _PURE_HASH[name]
    raise BadAlg(f"no digest known for signature algorithm {alg['algorithm'].dotted}")


def load_public_key(spki_der: bytes) -> VerifyingKey:
    """Load a DER SubjectPublicKeyInfo as a key for `verify`; `BadAlg` for other key types."""
    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadAlg(f"unusable public key: {exc}") from None
    if isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey
        | mldsa.MLDSA44PublicKey
        | mldsa.MLDSA65PublicKey
        | mldsa.MLDSA87PublicKey,
    ):
        return key
    raise BadAlg(f"{type(key).__name__} cannot sign")


def _alg(name: str, *, null: bool = False) -> AlgorithmIdentifier:
    return AlgorithmIdentifier({"algorithm": name, "parameters": Null() if null else None})


def _hash(name: str) -> hashes.HashAlgorithm:
    return _HASHES[name]()


def _pss(alg: AlgorithmIdentifier) -> tuple[padding.PSS, hashes.HashAlgorithm]:
    params = alg["parameters"]
    if not isinstance(params, RSASSAPSSParams):
        raise BadAlg("RSASSA-PSS without parameters")
    hash_name = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    if mgf["algorithm"].native != "mgf1" or hash_name not in _HASHES:
        raise BadAlg("unsupported RSASSA-PSS parameters")
    mgf_hash = mgf["parameters"]["algorithm"].native
    if mgf_hash not in _HASHES or params["trailer_field"].native != "trailer_field_bc":
        raise BadAlg("unsupported RSASSA-PSS parameters")
    salt_length = params["salt_length"].native
    if not 0 <= salt_length <= 1024:  # cryptography raises ValueError/OverflowError beyond
        raise BadAlg(f"unsupported RSASSA-PSS salt length {salt_length}")
    pad = padding.PSS(mgf=padding.MGF1(_hash(mgf_hash)), salt_length=salt_length)
    return pad, _hash(hash_name)
