"""CMS EnvelopedData of CMP (RFC 9810 5.2.2): encrCert and centrally generated private keys.

RFC 9810 5.2.2 / 5.2.8.3 and RFC 9481 4-5 over RFC 5652: RSA keys get a KeyTransRecipientInfo with
RSAES-OAEP/SHA-256; EC keys (P-256/384/521) a KeyAgreeRecipientInfo with ephemeral-static ECDH, the
X9.63 KDF over ECC-CMS-SharedInfo (RFC 5753) and AES-256 key wrap; X25519/X448 the same with HKDF
(RFC 8418). The content is encrypted with AES-256-CBC.

Recipients: for encrCert there is no recipient certificate yet, so the recipient is named by
subjectKeyIdentifier: the issued certificate's SKID extension if it has one, else the RFC 5280
method 1 value (SHA-1 of the subjectPublicKey bits). A private key generated for a client
(RFC 9483 4.1.6) goes to its CMP protection certificate, named by its SKID extension or, lacking
one, by issuerAndSerialNumber (what OpenSSL matches its own certificate against), or to the
shared secret of a MAC-protected request: a PasswordRecipientInfo with PBKDF2 and RFC 3211's
id-alg-PWRI-KEK wrap under AES-256-CBC, the one password key wrap OpenSSL's CMS implements.
Decryption also reads the AES key wrap that RFC 9481 4.4 names for PWRI.

All randomness (content key, IVs, salt, wrap padding, ephemeral key) comes from the caller's
`random_bytes`, so encryption is deterministic given its inputs, except the RSA-OAEP seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any as AnyType

from asn1crypto.algos import Pbkdf2Salt, RSAESOAEPParams
from asn1crypto.cms import (
    EncryptedContentInfo,
    EnvelopedData,
    IssuerAndSerialNumber,
    KeyAgreeRecipientInfo,
    KeyEncryptionAlgorithm,
    KeyTransRecipientInfo,
    PasswordRecipientInfo,
    RecipientInfo,
)
from asn1crypto.core import OctetString, Sequence
from asn1crypto.keys import PublicKeyInfo
from asn1crypto.x509 import Certificate
from asn1crypto.x509 import Name as AsnName
from cryptography import x509
from cryptography.exceptions import InvalidKey, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from .asn1 import ID_ALG_PWRI_KEK, AlgorithmIdentifier
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

# Password recipients (RFC 3211, RFC 9481 4.4): what is written, and what is read. OpenSSL writes
# PBKDF2-HMAC-SHA1 with 2048 iterations and an 8-byte salt; this engine writes HMAC-SHA256, 10000
# iterations and 16 bytes, which OpenSSL reads. Reading stays within MacPolicy's PBKDF2 bounds.
PWRI_ITERATIONS = 10_000
PWRI_SALT_LENGTH = 16
PWRI_MIN_ITERATIONS = 1_000
PWRI_MAX_ITERATIONS = 100_000
_PBKDF2_PRF = {"sha1", "sha224", "sha256", "sha384", "sha512"}
# PWRI-KEK inner cipher (asn1crypto EncryptionAlgorithm name and engine AlgorithmId name) -> length
_KEK_CBC = {
    "id-aes128-CBC": 16,
    "id-aes192-CBC": 24,
    "id-aes256-CBC": 32,
}

Rid = tuple[str, object]
"""How a recipient is named: ("skid", key identifier bytes) or ("issuer_serial", its asn1 value)."""


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
    content_type: str = "data",
) -> EnvelopedData:
    """Encrypt `content` to one recipient public key; rid = subjectKeyIdentifier.

    `key_id` defaults to the RFC 5280 method 1 identifier of the key. `BadAlg` for key types or
    curves without a key management algorithm here (e.g. ML-KEM: no KEMRecipientInfo yet).
    """
    key = _load_recipient(recipient_spki_der)
    if key_id is None:
        key_id = subject_key_identifier(recipient_spki_der)
    return _envelope(content, key, ("skid", key_id), random_bytes, content_type)


def envelope_to_certificate(
    content: bytes,
    certificate: x509.Certificate,
    random_bytes: RandomBytes,
    *,
    content_type: str = "data",
) -> EnvelopedData:
    """Encrypt `content` to the public key of `certificate` (e.g. a client's CMP protection
    certificate, RFC 9483 4.1.6.1-2), naming it by its SKID extension, else issuerAndSerialNumber.

    `content_type` is the encryptedContentInfo's contentType: "data" or "signed_data" (a central
    key's SignedData), or a dotted OID. `BadAlg` if the key cannot be encrypted to here.
    """
    spki_der = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = _load_recipient(spki_der)
    return _envelope(content, key, certificate_rid(certificate), random_bytes, content_type)


def certificate_rid(certificate: x509.Certificate) -> Rid:
    """How CMS names `certificate` as recipient: its SKID if it has one, else issuer and serial."""
    try:
        skid = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return ("skid", skid.value.digest)
    except x509.ExtensionNotFound:
        pass
    issuer = AsnName.load(certificate.issuer.public_bytes())
    value = IssuerAndSerialNumber({"issuer": issuer, "serial_number": certificate.serial_number})
    return ("issuer_serial", value)


def envelope_with_password(
    content: bytes,
    password: bytes,
    random_bytes: RandomBytes,
    *,
    content_type: str = "data",
    iterations: int = PWRI_ITERATIONS,
    salt_length: int = PWRI_SALT_LENGTH,
) -> EnvelopedData:
    """Encrypt `content` to a password (RFC 3211 PasswordRecipientInfo, as RFC 9483 4.1.6.3 has
    for a MAC-protected request): PBKDF2-HMAC-SHA256 derives a KEK that wraps the content key
    with id-alg-PWRI-KEK over AES-256-CBC. The salt is fresh, so never the MAC protection's."""
    cek = _take(random_bytes, 32)
    iv = _take(random_bytes, 16)
    salt = _take(random_bytes, salt_length)
    kek_iv = _take(random_bytes, 16)
    kek = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(password)
    wrapped = _pwri_kek_wrap(kek, kek_iv, cek, random_bytes)
    kek_alg = AlgorithmIdentifier({"algorithm": "id-aes256-CBC", "parameters": OctetString(kek_iv)})
    pwri = PasswordRecipientInfo(
        {
            "version": "v0",
            "key_derivation_algorithm": {
                "algorithm": "pbkdf2",
                "parameters": {
                    "salt": Pbkdf2Salt(name="specified", value=salt),
                    "iteration_count": iterations,
                    "key_length": 32,
                    "prf": {"algorithm": "sha256"},
                },
            },
            "key_encryption_algorithm": {
                "algorithm": ID_ALG_PWRI_KEK,
                "parameters": KeyEncryptionAlgorithm.load(kek_alg.dump()),
            },
            "encrypted_key": wrapped,
        }
    )
    # RFC 5652 6.1: version 3 when a RecipientInfo is a pwri.
    return _enveloped_data("v3", RecipientInfo({"pwri": pwri}), content, cek, iv, content_type)


def _envelope(
    content: bytes,
    key: RecipientPublicKey,
    rid: Rid,
    random_bytes: RandomBytes,
    content_type: str,
) -> EnvelopedData:
    cek = _take(random_bytes, 32)
    iv = _take(random_bytes, 16)
    if isinstance(key, rsa.RSAPublicKey):
        recipient = RecipientInfo({"ktri": _ktri(key, rid, cek, random_bytes)})
    else:
        recipient = RecipientInfo({"kari": _kari(key, rid, cek, random_bytes)})
    # RFC 5652 6.1: version 0 if the only recipient is a version 0 ktri, else 2.
    version = "v0" if recipient.name == "ktri" and rid[0] == "issuer_serial" else "v2"
    return _enveloped_data(version, recipient, content, cek, iv, content_type)


def _enveloped_data(
    version: str,
    recipient: RecipientInfo,
    content: bytes,
    cek: bytes,
    iv: bytes,
    content_type: str,
) -> EnvelopedData:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    return EnvelopedData(
        {
            "version": version,
            "recipient_infos": [recipient],
            "encrypted_content_info": EncryptedContentInfo(
                {
                    "content_type": content_type,
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
    infos, key_len = _recipients_and_key_length(env)
    return _decrypt_content(env, _recover_cek(infos, private_key, key_len))


def decrypt_with_password(env: EnvelopedData, password: bytes) -> bytes:
    """Decrypt EnvelopedData through a PasswordRecipientInfo (RFC 3211) with `password`.

    PBKDF2 with HMAC-SHA-1/SHA-2 (iterations within PWRI_MIN/MAX_ITERATIONS), then
    id-alg-PWRI-KEK over AES-CBC (OpenSSL) or AES key wrap (RFC 9481 4.4). `BadAlg` if there is
    no pwri or its algorithms are not supported; `BadDataFormat` if it does not decrypt.
    """
    infos, key_len = _recipients_and_key_length(env)
    supported = False
    for info in infos:
        if info.name != "pwri":
            continue
        try:
            cek = _pwri_decrypt(info.chosen, password)
        except BadAlg:
            continue
        except (ValueError, InvalidUnwrap, *_PARSE_ERRORS):
            supported = True
            continue
        supported = True
        if len(cek) == key_len:
            return _decrypt_content(env, cek)
    if not supported:
        raise BadAlg("no supported password recipient info")
    raise BadDataFormat("EnvelopedData does not decrypt with the shared secret")


def _recipients_and_key_length(env: EnvelopedData) -> tuple[list[AnyType], int]:
    try:
        infos = list(env["recipient_infos"])
        cipher_name = env["encrypted_content_info"]["content_encryption_algorithm"][
            "algorithm"
        ].native
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed EnvelopedData: {exc}") from None
    key_len = _CBC.get(cipher_name)
    if key_len is None:
        raise BadAlg(f"unsupported content encryption algorithm {cipher_name}")
    return infos, key_len


def _decrypt_content(env: EnvelopedData, cek: bytes) -> bytes:
    try:
        content_info = env["encrypted_content_info"]
        iv_value = content_info["content_encryption_algorithm"]["parameters"].native
        ciphertext = content_info["encrypted_content"].native
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed EnvelopedData: {exc}") from None
    if not isinstance(iv_value, bytes) or len(iv_value) != 16 or not isinstance(ciphertext, bytes):
        raise BadDataFormat("EnvelopedData without a 16-byte IV or without encrypted content")
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


def _ktri(key: rsa.RSAPublicKey, rid: Rid, cek: bytes, random_bytes: RandomBytes) -> AnyType:
    params = _OaepParams(
        {
            "hashFunc": _sha256_alg(),
            "maskGenFunc": AlgorithmIdentifier({"algorithm": _MGF1, "parameters": _sha256_alg()}),
        }
    )
    by_key_id = rid[0] == "skid"
    return KeyTransRecipientInfo(
        {
            # RFC 5652 6.2.1: version 2 for a subjectKeyIdentifier, 0 for issuerAndSerialNumber.
            "version": "v2" if by_key_id else "v0",
            "rid": {"subject_key_identifier" if by_key_id else "issuer_and_serial_number": rid[1]},
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
    rid: Rid,
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
                    "rid": {"r_key_id": {"subject_key_identifier": rid[1]}}
                    if rid[0] == "skid"
                    else {"issuer_and_serial_number": rid[1]},
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


def _pwri_kek_wrap(kek: bytes, iv: bytes, cek: bytes, random_bytes: RandomBytes) -> bytes:
    """RFC 3211 2.3.1: length byte, check bytes (the first three key bytes inverted), the key and
    random padding to at least two blocks, CBC-encrypted twice (the second pass chained on)."""
    block = 16
    size = max(2 * block, -(-(4 + len(cek)) // block) * block)
    formatted = bytes([len(cek)]) + bytes(b ^ 0xFF for b in cek[:3]) + cek
    formatted += _take(random_bytes, size - len(formatted))
    encryptor = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    first = encryptor.update(formatted)
    return encryptor.update(first) + encryptor.finalize()


def _pwri_kek_unwrap(kek: bytes, iv: bytes, wrapped: bytes) -> bytes:
    """RFC 3211 2.3.2: undo the outer pass (its IV is the inner pass's last block, recovered by
    decrypting the last block under the one before it), then the inner pass; check the result."""
    block = 16
    if len(wrapped) < 2 * block or len(wrapped) % block:
        raise BadDataFormat("PWRI encryptedKey is not a whole number of (at least two) blocks")
    aes = algorithms.AES(kek)
    last = Cipher(aes, modes.CBC(wrapped[-2 * block : -block])).decryptor().update(wrapped[-block:])
    inner = Cipher(aes, modes.CBC(last)).decryptor().update(wrapped)
    formatted = Cipher(aes, modes.CBC(iv)).decryptor().update(inner)
    length = formatted[0]
    check = all(formatted[1 + i] ^ formatted[4 + i] == 0xFF for i in range(3))
    if not check or length < 3 or 4 + length > len(formatted):
        raise BadDataFormat("PWRI key does not unwrap (wrong secret or corrupted)")
    return formatted[4 : 4 + length]


# --- decryption -------------------------------------------------------------------------------


def _pwri_decrypt(pwri: AnyType, password: bytes) -> bytes:
    """The content key of one PasswordRecipientInfo: derive the KEK, then unwrap."""
    kdf = pwri["key_derivation_algorithm"]
    if not kdf.native or kdf["algorithm"].native != "pbkdf2":
        raise BadAlg("PWRI without PBKDF2 key derivation")
    params = kdf["parameters"]
    salt = params["salt"].native
    iterations = params["iteration_count"].native
    prf = params["prf"]["algorithm"].native
    if not isinstance(salt, bytes) or prf not in _PBKDF2_PRF:
        raise BadAlg("unsupported PBKDF2 parameters in PWRI")
    if not PWRI_MIN_ITERATIONS <= iterations <= PWRI_MAX_ITERATIONS:
        raise BadAlg(f"PWRI iteration count {iterations} out of bounds")
    wrap = pwri["key_encryption_algorithm"]
    wrap_oid = wrap["algorithm"].dotted
    kek_iv: bytes | None = None
    if wrap_oid == ID_ALG_PWRI_KEK:
        inner = AlgorithmIdentifier.load(wrap["parameters"].dump())
        kek_len = _KEK_CBC.get(inner["algorithm"].native)
        if kek_len is None:
            raise BadAlg("unsupported PWRI-KEK cipher")
        try:  # the inner AlgorithmIdentifier keeps its parameters raw: an OCTET STRING IV
            kek_iv = OctetString.load(inner["parameters"].dump(), strict=True).native
        except _PARSE_ERRORS:
            raise BadAlg("PWRI-KEK cipher without an IV") from None
    elif wrap_oid in _WRAP:
        kek_len = _WRAP[wrap_oid]
    else:
        raise BadAlg(f"unsupported PWRI key encryption algorithm {wrap_oid}")
    key_length = params["key_length"].native
    if key_length is not None and key_length != kek_len:
        raise BadAlg("PBKDF2 keyLength does not fit the key encryption algorithm")
    kek = PBKDF2HMAC(_HASHES[prf](), kek_len, salt, iterations).derive(password)
    encrypted = pwri["encrypted_key"].native
    if kek_iv is None:
        return aes_key_unwrap(kek, encrypted)
    if not isinstance(kek_iv, bytes) or len(kek_iv) != 16:
        raise BadAlg("PWRI-KEK IV is not one AES block")
    return _pwri_kek_unwrap(kek, kek_iv, encrypted)


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
    "Rid",
    "certificate_rid",
    "check_recipient_key",
    "decrypt_certificate",
    "decrypt_enveloped",
    "decrypt_with_password",
    "encrypt_certificate",
    "envelope",
    "envelope_to_certificate",
    "envelope_with_password",
    "subject_key_identifier",
]
