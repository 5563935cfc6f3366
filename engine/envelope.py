"""CMS EnvelopedData for the indirect POP method: the new certificate encrypted to its own key.

RFC 9810 5.2.2 / 5.2.8.3 and RFC 9481 4-5 over RFC 5652: RSA keys get a KeyTransRecipientInfo with
RSAES-OAEP/SHA-256; EC keys (P-256/384/521) a KeyAgreeRecipientInfo with ephemeral-static ECDH, the
X9.63 KDF over ECC-CMS-SharedInfo (RFC 5753) and AES-256 key wrap; X25519/X448 the same with HKDF
(RFC 8418). The content is encrypted with AES-256-CBC. There is no recipient certificate yet, so
the recipient is named by subjectKeyIdentifier: the issued certificate's SKID extension if it has
one, else the RFC 5280 method 1 value (SHA-1 of the subjectPublicKey bits).

All randomness (content key, IV, OAEP seed, ephemeral key) comes from the caller's `random_bytes`,
so encryption is deterministic given its inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any as AnyType

from asn1crypto.algos import RSAESOAEPParams
from asn1crypto.cms import (
    EncryptedContentInfo,
    EnvelopedData,
    KeyAgreeRecipientInfo,
    KeyEncryptionAlgorithm,
    KeyTransRecipientInfo,
    RecipientInfo,
)
from asn1crypto.core import OctetString, Sequence
from asn1crypto.keys import PublicKeyInfo
from asn1crypto.x509 import Certificate
from cryptography.exceptions import InvalidKey, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from .asn1 import AlgorithmIdentifier
from .errors import BadAlg, BadDataFormat, DecodeError

RandomBytes = Callable[[int], bytes]
"""Source of cryptographically secure random bytes: `random_bytes(n)` returns `n` bytes."""

RecipientPrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | x25519.X25519PrivateKey | x448.X448PrivateKey
)
RecipientPublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | x25519.X25519PublicKey | x448.X448PublicKey
)

# Key agreement schemes: OID -> (KDF kind, hashlib name). RFC 5753 / RFC 9481 4.1.1 (X9.63 KDF),
# RFC 8418 (HKDF). SHA-1 is read for interoperability only (OpenSSL's default), never written.
_KARI_SCHEMES: dict[str, tuple[str, str]] = {
    "1.3.133.16.840.63.0.2": ("x963", "sha1"),
    "1.3.132.1.11.0": ("x963", "sha224"),
    "1.3.132.1.11.1": ("x963", "sha256"),
    "1.3.132.1.11.2": ("x963", "sha384"),
    "1.3.132.1.11.3": ("x963", "sha512"),
    "1.2.840.113549.1.9.16.3.19": ("hkdf", "sha256"),
    "1.2.840.113549.1.9.16.3.20": ("hkdf", "sha384"),
    "1.2.840.113549.1.9.16.3.21": ("hkdf", "sha512"),
}
_SCHEME_FOR: dict[tuple[str, str], str] = {v: k for k, v in _KARI_SCHEMES.items()}
# AES key wrap OID -> KEK length in bytes (RFC 3394 / RFC 3565).
_WRAP = {
    "2.16.840.1.101.3.4.1.5": 16,
    "2.16.840.1.101.3.4.1.25": 24,
    "2.16.840.1.101.3.4.1.45": 32,
}
_AES256_WRAP = "2.16.840.1.101.3.4.1.45"
# Content encryption: asn1crypto name -> key length.
_CBC = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_MGF1 = "1.2.840.113549.1.1.8"
# Curve -> (group order, X9.63 KDF hash of the same strength: RFC 5753 7.1.4, RFC 9481 4.1.1).
_CURVES: dict[str, tuple[int, str]] = {
    "secp256r1": (
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        "sha256",
    ),
    "secp384r1": (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
        "sha384",
    ),
    "secp521r1": (
        0x1FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409,
        "sha512",
    ),
}
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)


class _OaepParams(Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """RSAES-OAEP-params (RFC 8017) written with absent SHA-2 parameters (RFC 5754 section 2)."""

    _fields = [
        ("hashFunc", AlgorithmIdentifier, {"explicit": 0}),
        ("maskGenFunc", AlgorithmIdentifier, {"explicit": 1}),
    ]


class _EccCmsSharedInfo(Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """ECC-CMS-SharedInfo (RFC 5753 section 7.2): the KDF's SharedInfo / HKDF info (RFC 8418)."""

    _fields = [
        ("keyInfo", AlgorithmIdentifier),
        ("entityUInfo", OctetString, {"explicit": 0, "optional": True}),
        ("suppPubInfo", OctetString, {"explicit": 2}),
    ]


def subject_key_identifier(spki_der: bytes) -> bytes:
    """RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value."""
    try:
        bits = PublicKeyInfo.load(spki_der)["public_key"].contents[1:]
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed SubjectPublicKeyInfo: {exc}") from None
    return hashlib.sha1(bits).digest()


def check_recipient_key(spki_der: bytes) -> None:
    """Raise `BadAlg` unless a certificate can be encrypted to this public key here."""
    _load_recipient(spki_der)


def encrypt_certificate(cert_der: bytes, random_bytes: RandomBytes) -> EnvelopedData:
    """Encrypt an issued certificate to its own subject public key (encrCert, RFC 9810 5.2.8.3.2).

    The recipient is identified by the certificate's SKID extension, else by the method 1 SKID.
    """
    try:
        cert = Certificate.load(cert_der)
        spki_der = cert["tbs_certificate"]["subject_public_key_info"].dump()
        skid = cert.key_identifier
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed certificate: {exc}") from None
    return envelope(cert_der, spki_der, random_bytes, key_id=skid)


def envelope(
    content: bytes,
    recipient_spki_der: bytes,
    random_bytes: RandomBytes,
    *,
    key_id: bytes | None = None,
) -> EnvelopedData:
    """Encrypt `content` (id-data) to one recipient public key; rid = subjectKeyIdentifier.

    `key_id` defaults to the RFC 5280 method 1 identifier of the key. `BadAlg` for key types or
    curves without a key management algorithm here (e.g. ML-KEM: no KEMRecipientInfo yet).
    """
    key = _load_recipient(recipient_spki_der)
    if key_id is None:
        key_id = subject_key_identifier(recipient_spki_der)
    cek = _take(random_bytes, 32)
    iv = _take(random_bytes, 16)
    if isinstance(key, rsa.RSAPublicKey):
        recipient = RecipientInfo({"ktri": _ktri(key, key_id, cek, random_bytes)})
    else:
        recipient = RecipientInfo({"kari": _kari(key, key_id, cek, random_bytes)})
    padder = padding.PKCS7(128).padder()
    padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    return EnvelopedData(
        {
            # RFC 5652 6.1: version 2, as the recipient info is not version 0.
            "version": "v2",
            "recipient_infos": [recipient],
            "encrypted_content_info": EncryptedContentInfo(
                {
                    "content_type": "data",
                    "content_encryption_algorithm": {
                        "algorithm": "aes256_cbc",
                        "parameters": OctetString(iv),
                    },
                    "encrypted_content": ciphertext,
                }
            ),
        }
    )


def decrypt_enveloped(env: EnvelopedData, private_key: RecipientPrivateKey) -> bytes:
    """Decrypt EnvelopedData with a private key, trying each recipient info the key could open.

    `BadAlg` if no recipient info or content cipher is supported; `BadDataFormat` if it does not
    decrypt (wrong key, corrupted key or content) or is malformed.
    """
    try:
        infos = list(env["recipient_infos"])
        content_info = env["encrypted_content_info"]
        cipher_name = content_info["content_encryption_algorithm"]["algorithm"].native
        iv_value = content_info["content_encryption_algorithm"]["parameters"].native
        ciphertext = content_info["encrypted_content"].native
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed EnvelopedData: {exc}") from None
    key_len = _CBC.get(cipher_name)
    if key_len is None:
        raise BadAlg(f"unsupported content encryption algorithm {cipher_name}")
    if not isinstance(iv_value, bytes) or len(iv_value) != 16 or not isinstance(ciphertext, bytes):
        raise BadDataFormat("EnvelopedData without a 16-byte IV or without encrypted content")
    cek = _recover_cek(infos, private_key, key_len)
    decryptor = Cipher(algorithms.AES(cek), modes.CBC(iv_value)).decryptor()
    try:
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise BadDataFormat("EnvelopedData content does not decrypt") from None


def decrypt_certificate(env: EnvelopedData, private_key: RecipientPrivateKey) -> bytes:
    """Decrypt an encrCert EnvelopedData; return the certificate DER (`DecodeError` if not one)."""
    if env["encrypted_content_info"]["content_type"].native != "data":
        raise BadDataFormat("encrypted certificate must have content type id-data")
    content = decrypt_enveloped(env, private_key)
    try:
        Certificate.load(content, strict=True)["tbs_certificate"]
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"decrypted content is not a certificate: {exc}") from None
    return content


# --- encryption -------------------------------------------------------------------------------


def _load_recipient(spki_der: bytes) -> RecipientPublicKey:
    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadAlg(f"unusable recipient public key: {exc}") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _CURVES:
        raise BadAlg(f"no key agreement for curve {key.curve.name}")
    if isinstance(
        key,
        rsa.RSAPublicKey | ec.EllipticCurvePublicKey | x25519.X25519PublicKey | x448.X448PublicKey,
    ):
        return key
    raise BadAlg(f"cannot encrypt to a {type(key).__name__} (no key management algorithm)")


def _take(random_bytes: RandomBytes, n: int) -> bytes:
    data = random_bytes(n)
    if len(data) != n:
        raise ValueError(f"random_bytes({n}) returned {len(data)} bytes")
    return bytes(data)


_OAEP_SHA256 = asym_padding.OAEP(
    mgf=asym_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)


def _sha256_alg() -> AlgorithmIdentifier:
    return AlgorithmIdentifier({"algorithm": "id-sha256"})


def _ktri(key: rsa.RSAPublicKey, key_id: bytes, cek: bytes, random_bytes: RandomBytes) -> AnyType:
    params = _OaepParams(
        {
            "hashFunc": _sha256_alg(),
            "maskGenFunc": AlgorithmIdentifier({"algorithm": _MGF1, "parameters": _sha256_alg()}),
        }
    )
    return KeyTransRecipientInfo(
        {
            "version": "v2",
            "rid": {"subject_key_identifier": key_id},
            "key_encryption_algorithm": {
                "algorithm": "rsaes_oaep",
                "parameters": RSAESOAEPParams.load(params.dump()),
            },
            # The OAEP seed comes from OpenSSL's generator: RSA is never done by hand here.
            "encrypted_key": key.encrypt(cek, _OAEP_SHA256),
        }
    )


def _ephemeral(
    key: ec.EllipticCurvePublicKey | x25519.X25519PublicKey | x448.X448PublicKey,
    random_bytes: RandomBytes,
) -> tuple[bytes, PublicKeyInfo, str, str]:
    """Ephemeral-static agreement: (shared secret Z, originatorKey, KDF kind, KDF hash)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        order, hash_name = _CURVES[key.curve.name]
        # FIPS 186-5 A.2.1: extra 64 bits make the reduction bias negligible.
        seed = _take(random_bytes, (order.bit_length() + 7) // 8 + 8)
        scalar = int.from_bytes(seed, "big") % (order - 1) + 1
        eph = ec.derive_private_key(scalar, key.curve)
        shared = eph.exchange(ec.ECDH(), key)
        point = eph.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        originator = PublicKeyInfo({"algorithm": {"algorithm": "ec"}, "public_key": point})
        return shared, originator, "x963", hash_name
    if isinstance(key, x25519.X25519PublicKey):
        eph_x = x25519.X25519PrivateKey.from_private_bytes(_take(random_bytes, 32))
        shared = eph_x.exchange(key)
        raw = eph_x.public_key().public_bytes_raw()
        originator = PublicKeyInfo({"algorithm": {"algorithm": "x25519"}, "public_key": raw})
        return shared, originator, "hkdf", "sha256"
    eph_y = x448.X448PrivateKey.from_private_bytes(_take(random_bytes, 56))
    shared = eph_y.exchange(key)
    raw = eph_y.public_key().public_bytes_raw()
    originator = PublicKeyInfo({"algorithm": {"algorithm": "x448"}, "public_key": raw})
    return shared, originator, "hkdf", "sha512"


def _kari(
    key: ec.EllipticCurvePublicKey | x25519.X25519PublicKey | x448.X448PublicKey,
    key_id: bytes,
    cek: bytes,
    random_bytes: RandomBytes,
) -> AnyType:
    shared, originator, kdf, hash_name = _ephemeral(key, random_bytes)
    wrap_alg = KeyEncryptionAlgorithm({"algorithm": "aes256_wrap"})
    kek = _derive_kek(kdf, hash_name, shared, wrap_alg.dump(), None, 32)
    return KeyAgreeRecipientInfo(
        {
            "version": "v3",
            "originator": {"originator_key": originator},
            "key_encryption_algorithm": {
                "algorithm": _SCHEME_FOR[(kdf, hash_name)],
                "parameters": wrap_alg,
            },
            "recipient_encrypted_keys": [
                {
                    "rid": {"r_key_id": {"subject_key_identifier": key_id}},
                    "encrypted_key": aes_key_wrap(kek, cek),
                }
            ],
        }
    )


def _derive_kek(
    kdf: str, hash_name: str, shared: bytes, wrap_alg_der: bytes, ukm: bytes | None, size: int
) -> bytes:
    """KEK from the shared secret: X9.63 KDF (RFC 5753) or HKDF (RFC 8418) over SharedInfo."""
    info_fields: dict[str, object] = {
        "keyInfo": AlgorithmIdentifier.load(wrap_alg_der),
        "suppPubInfo": (size * 8).to_bytes(4, "big"),
    }
    if ukm is not None:
        info_fields["entityUInfo"] = ukm
    shared_info = _EccCmsSharedInfo(info_fields).dump()
    algorithm = _HASHES[hash_name]()
    if kdf == "x963":
        return X963KDF(algorithm, size, shared_info).derive(shared)
    return HKDF(algorithm, size, salt=None, info=shared_info).derive(shared)


# --- decryption -------------------------------------------------------------------------------


def _recover_cek(infos: list[AnyType], private_key: RecipientPrivateKey, key_len: int) -> bytes:
    """Try every recipient info the key type fits; the first that yields a CEK of the right size."""
    supported = False
    for info in infos:
        cek: bytes | None
        try:
            if info.name == "ktri" and isinstance(private_key, rsa.RSAPrivateKey):
                supported = True
                cek = _ktri_decrypt(info.chosen, private_key)
            elif info.name == "kari" and not isinstance(private_key, rsa.RSAPrivateKey):
                supported = True
                cek = _kari_decrypt(info.chosen, private_key)
            else:
                continue
        except BadAlg:
            continue
        except (ValueError, InvalidUnwrap, InvalidKey, *_PARSE_ERRORS):
            continue
        if cek is not None and len(cek) == key_len:
            return cek
    if not supported:
        raise BadAlg(f"no recipient info usable with a {type(private_key).__name__}")
    raise BadDataFormat("EnvelopedData does not decrypt with the given key")


def _ktri_decrypt(ktri: AnyType, private_key: rsa.RSAPrivateKey) -> bytes:
    alg = ktri["key_encryption_algorithm"]
    name = alg["algorithm"].native
    encrypted = ktri["encrypted_key"].native
    if name == "rsaes_pkcs1v15":
        return private_key.decrypt(encrypted, asym_padding.PKCS1v15())
    if name != "rsaes_oaep":
        raise BadAlg(f"unsupported key transport algorithm {name}")
    params = alg["parameters"]
    hash_name = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    mgf_hash = mgf["parameters"]["algorithm"].native
    label = params["p_source_algorithm"]["parameters"].native
    if mgf["algorithm"].native != "mgf1" or hash_name not in _HASHES or mgf_hash not in _HASHES:
        raise BadAlg("unsupported RSAES-OAEP parameters")
    pad = asym_padding.OAEP(
        mgf=asym_padding.MGF1(_HASHES[mgf_hash]()),
        algorithm=_HASHES[hash_name](),
        label=label or None,
    )
    return private_key.decrypt(encrypted, pad)


def _kari_decrypt(
    kari: AnyType,
    private_key: ec.EllipticCurvePrivateKey | x25519.X25519PrivateKey | x448.X448PrivateKey,
) -> bytes | None:
    alg = kari["key_encryption_algorithm"]
    scheme = _KARI_SCHEMES.get(alg["algorithm"].dotted)
    if scheme is None:
        raise BadAlg(f"unsupported key agreement algorithm {alg['algorithm'].dotted}")
    wrap_der = alg["parameters"].dump()
    wrap = AlgorithmIdentifier.load(wrap_der)
    kek_len = _WRAP.get(wrap["algorithm"].dotted)
    if kek_len is None:
        raise BadAlg(f"unsupported key wrap algorithm {wrap['algorithm'].dotted}")
    originator = kari["originator"]
    if originator.name != "originator_key":
        raise BadAlg("key agreement without an ephemeral originator key")
    point = originator.chosen["public_key"].contents[1:]
    shared = _agree(private_key, point)
    ukm = kari["ukm"].native
    kek = _derive_kek(scheme[0], scheme[1], shared, wrap_der, ukm, kek_len)
    for rek in kari["recipient_encrypted_keys"]:
        try:
            return aes_key_unwrap(kek, rek["encrypted_key"].native)
        except InvalidUnwrap:
            continue
    return None


def _agree(
    private_key: ec.EllipticCurvePrivateKey | x25519.X25519PrivateKey | x448.X448PrivateKey,
    point: bytes,
) -> bytes:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        peer = ec.EllipticCurvePublicKey.from_encoded_point(private_key.curve, point)
        return private_key.exchange(ec.ECDH(), peer)
    if isinstance(private_key, x25519.X25519PrivateKey):
        return private_key.exchange(x25519.X25519PublicKey.from_public_bytes(point))
    return private_key.exchange(x448.X448PublicKey.from_public_bytes(point))


__all__ = [
    "RandomBytes",
    "RecipientPrivateKey",
    "RecipientPublicKey",
    "check_recipient_key",
    "decrypt_certificate",
    "decrypt_enveloped",
    "encrypt_certificate",
    "envelope",
    "subject_key_identifier",
]
