"""Central key generation (RFC 9483 4.1.6, RFC 9810 5.3.4): the private key the CA generated for a
requester, signed by the key generation authority (KGA) and enveloped for that requester alone.

    CertifiedKeyPair.privateKey = EnvelopedData (to the requester)
        encryptedContentInfo: id-signedData, SignedData (by the KGA)
            encapContentInfo: id-ct-KP-aKeyPackage, AsymmetricKeyPackage { OneAsymmetricKey v2 }

The server side is `seal_private_key`: the key package (RFC 5958, the public key included as
RFC 9483 wants it), a SignedData by the KGA's signature credential (SignerInfo named by the KGA
certificate's subjectKeyIdentifier, signed attributes contentType, signingTime and messageDigest,
the KGA certificate and its chain in `certificates`), and an EnvelopedData to the requester: a
PasswordRecipientInfo with the shared secret of a MAC-protected request, or key transport / key
agreement to the certificate that protected a signed one (`envelope`).

OpenSSL 3.5 (crypto/cmp/cmp_msg.c enc_privkey) does the same with one difference: it signs the
bare private key (i2d_PrivateKey) as id-data content, and its client reads only that form back
(d2i_PrivateKey of the signed content). `KeyPackageFormat.OPENSSL` writes that form for OpenSSL
clients; the client side here (`open_private_key`) reads both.

The client side is `open_private_key`: decrypt with the shared secret or the protection key,
verify the SignedData against the trust anchors (with the signer's EKU id-kp-cmKGA required when
the trust says so, as OpenSSL's cmKGA purpose does), and load the one key of the package.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any as AnyType

from asn1crypto import cms
from asn1crypto.core import OctetBitString
from asn1crypto.keys import PublicKeyInfo
from asn1crypto.x509 import Certificate as AsnCertificate
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from .asn1 import (
    ID_CT_KP_AKEYPACKAGE,
    ID_KP_CM_KGA,
    AlgorithmIdentifier,
    AsymmetricKeyPackage,
    OneAsymmetricKey,
)
from .envelope import (
    RecipientPrivateKey,
    decrypt_enveloped,
    decrypt_with_password,
    envelope_to_certificate,
    envelope_with_password,
)
from .errors import (
    BadAlg,
    BadDataFormat,
    BadMessageCheck,
    CmpError,
    DecodeError,
    SignerNotTrusted,
)
from .protection import SignatureCredential
from .signature import default_algorithm, load_public_key, sign, signature_hash_name, verify
from .trust import TrustConfig, validate_signer

RandomBytes = Callable[[int], bytes]
CMKGA = x509.ObjectIdentifier(ID_KP_CM_KGA)
_DIGESTS = ("sha1", "sha224", "sha256", "sha384", "sha512")
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)
_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
# Signature schemes that hash internally: the SignerInfo digest only serves messageDigest.
_PURE_SCHEMES = {"id-Ed25519", "id-Ed448", "id-ml-dsa-44", "id-ml-dsa-65", "id-ml-dsa-87"}


class KeyPackageFormat(enum.StrEnum):
    """What the KGA signs: RFC 9483's key package, or the bare key as OpenSSL 3.5 does."""

    RFC9483 = "rfc9483"  # id-ct-KP-aKeyPackage: AsymmetricKeyPackage of one OneAsymmetricKey v2
    OPENSSL = "openssl"  # id-data: the PKCS#8 PrivateKeyInfo (what OpenSSL 3.5 clients read)


@dataclass(frozen=True)
class OpenedKey:
    """A centrally generated key as the client received it, and who vouched for it."""

    private_key: PrivateKeyTypes
    signer: x509.Certificate  # the KGA certificate that signed it (validated)
    package: KeyPackageFormat


# ---- server side ---------------------------------------------------------------------------------


def seal_private_key(
    private_key: PrivateKeyTypes,
    kga: SignatureCredential,
    recipient: bytes | x509.Certificate,
    random_bytes: RandomBytes,
    now: datetime,
    *,
    package: KeyPackageFormat = KeyPackageFormat.RFC9483,
) -> cms.EnvelopedData:
    """The privateKey of a CertifiedKeyPair: `private_key` signed by `kga`, enveloped for
    `recipient` (the shared secret of a MAC-protected request, or the certificate that protected
    a signed one). `BadAlg` if the key cannot be packaged or encrypted to the recipient."""
    if package is KeyPackageFormat.RFC9483:
        content_type, content = ID_CT_KP_AKEYPACKAGE, key_package(private_key)
    else:
        content_type, content = "data", _pkcs8(private_key)
    signed = sign_content(content, content_type, kga, now)
    if isinstance(recipient, bytes):
        return envelope_with_password(signed, recipient, random_bytes, content_type="signed_data")
    return envelope_to_certificate(signed, recipient, random_bytes, content_type="signed_data")


def key_package(private_key: PrivateKeyTypes) -> bytes:
    """AsymmetricKeyPackage (RFC 5958) of one OneAsymmetricKey v2 with its public key."""
    info = OneAsymmetricKey.load(_pkcs8(private_key))
    one = OneAsymmetricKey(
        {
            "version": 1,  # v2: the publicKey field is present
            "privateKeyAlgorithm": info["privateKeyAlgorithm"],
            "privateKey": info["privateKey"],
            "publicKey": OctetBitString(_public_key_bits(private_key)),
        }
    )
    return bytes(AsymmetricKeyPackage([one]).dump())


def sign_content(
    content: bytes, content_type: str, kga: SignatureCredential, now: datetime
) -> bytes:
    """DER SignedData (RFC 5652 5) over `content` by `kga`: one SignerInfo with signed attributes
    (contentType, signingTime, messageDigest); the KGA certificate and its chain in
    `certificates` (a DER SET OF, so in sorted rather than chain order)."""
    alg = kga.algorithm or default_algorithm(kga.key)
    digest = signature_hash_name(alg)
    if digest not in _DIGESTS:
        raise BadAlg(f"no CMS digest algorithm for signing with {alg['algorithm'].dotted}")
    attributes = _signed_attributes(content_type, hashlib.new(digest, content).digest(), now)
    signature = sign(kga.key, alg, attributes)
    by_key_id, sid = _signer_id(kga.certificate)
    signer = cms.SignerInfo(
        {
            "version": "v3" if by_key_id else "v1",
            "sid": sid,
            "digest_algorithm": {"algorithm": digest},
            "signed_attrs": cms.CMSAttributes.load(attributes),
            "signature_algorithm": cms.SignedDigestAlgorithm.load(alg.dump()),
            "signature": signature,
        }
    )
    certificates = [kga.certificate, *(c for c in kga.chain if c != kga.certificate)]
    signed = cms.SignedData(
        {
            # RFC 5652 5.1: version 3 for other content than id-data or a v3 SignerInfo.
            "version": "v3" if by_key_id or content_type != "data" else "v1",
            "digest_algorithms": [{"algorithm": digest}],
            "encap_content_info": {"content_type": content_type, "content": content},
            "certificates": [_asn1_certificate(c) for c in certificates],
            "signer_infos": [signer],
        }
    )
    return bytes(signed.dump())


def same_public_key(private_key: PrivateKeyTypes, certificate: x509.Certificate) -> bool:
    """Whether `certificate` certifies the public half of `private_key`."""
    try:
        return _spki(private_key) == certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, UnsupportedAlgorithm):
        return False


# ---- client side ---------------------------------------------------------------------------------


def open_private_key(
    env: cms.EnvelopedData,
    *,
    trust: TrustConfig,
    now: datetime,
    password: bytes | None = None,
    decryption_key: RecipientPrivateKey | None = None,
    extra_certs: Sequence[x509.Certificate] = (),
) -> OpenedKey:
    """Decrypt a CertifiedKeyPair privateKey, verify the KGA's signature and load the key.

    `password` opens a password recipient, `decryption_key` a key transport or agreement one.
    The signer must validate under `trust`: set its `extended_key_usage` to `CMKGA` to require
    what OpenSSL's cmKGA purpose does (the client engine does by default); `extra_certs` (the
    message's) may complete its path. Raises the
    `CmpError` naming what failed: `BadAlg`, `BadDataFormat` (does not decrypt, malformed),
    `SignerNotTrusted`, `BadMessageCheck` (signature or digest wrong).
    """
    if password is not None:
        plain = decrypt_with_password(env, password)
    elif decryption_key is not None:
        plain = decrypt_enveloped(env, decryption_key)
    else:
        raise BadAlg("no shared secret or protection key to decrypt the private key with")
    content_type, content, signer = verify_signed_content(plain, trust, now, extra_certs)
    if content_type == ID_CT_KP_AKEYPACKAGE:
        return OpenedKey(_load_package(content), signer, KeyPackageFormat.RFC9483)
    if content_type == "data":
        return OpenedKey(_load_private_key(content), signer, KeyPackageFormat.OPENSSL)
    raise BadDataFormat(f"signed content {content_type} is no key package")


def verify_signed_content(
    signed_der: bytes,
    trust: TrustConfig,
    now: datetime,
    extra_certs: Sequence[x509.Certificate] = (),
) -> tuple[str, bytes, x509.Certificate]:
    """(eContentType, eContent, signer) of a SignedData (or a ContentInfo holding one) whose one
    SignerInfo verifies with a certificate valid under `trust`."""
    try:
        signed = _load_signed_data(signed_der)
        infos = list(signed["signer_infos"])
        encap = signed["encap_content_info"]
        content_type = encap["content_type"].native
        content = encap["content"].native
        certificates = [_x509(c.chosen) for c in signed["certificates"] if c.name == "certificate"]
        if len(infos) != 1:
            raise BadDataFormat(f"SignedData with {len(infos)} signers, one expected (RFC 9483)")
        if not isinstance(content, bytes):
            raise BadDataFormat("SignedData without encapsulated content")
        pool = [*certificates, *extra_certs]
        signer = _find_signer(infos[0]["sid"], pool)
        try:
            validate_signer(signer, [c for c in pool if c != signer], trust, now)
        except SignerNotTrusted as error:
            why = error.text.removeprefix("protection certificate not trusted: ")
            raise SignerNotTrusted(f"KGA certificate not trusted: {why}") from None
        _check_signature(infos[0], content_type, content, signer)
    except CmpError:
        raise
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed SignedData: {type(exc).__name__}: {exc}") from None
    return str(content_type), content, signer


# ---- helpers -------------------------------------------------------------------------------------


def _pkcs8(private_key: PrivateKeyTypes) -> bytes:
    try:
        return private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadAlg(f"cannot package a {type(private_key).__name__}: {exc}") from None


def _spki(private_key: PrivateKeyTypes) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _public_key_bits(private_key: PrivateKeyTypes) -> bytes:
    """The subjectPublicKey BIT STRING value of the key's SubjectPublicKeyInfo."""
    return bytes(PublicKeyInfo.load(_spki(private_key))["public_key"].contents[1:])


def _signed_attributes(content_type: str, digest: bytes, now: datetime) -> bytes:
    """DER SET OF Attribute, elements in DER order (sorted encodings), as signed (RFC 5652 5.4)."""
    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": [content_type]}),
        cms.CMSAttribute({"type": "signing_time", "values": [_time(now)]}),
        cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
    ]
    encodings = sorted(bytes(a.dump()) for a in attributes)
    return _tlv(0x31, b"".join(encodings))


def _time(now: datetime) -> cms.Time:
    # RFC 5652 11.3: UTCTime for 1950..2049, GeneralizedTime otherwise.
    when = now.astimezone(UTC).replace(microsecond=0)
    name = "utc_time" if 1950 <= when.year < 2050 else "generalized_time"
    return cms.Time(name=name, value=when)


def _signer_id(certificate: x509.Certificate) -> tuple[bool, cms.SignerIdentifier]:
    try:
        skid = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return True, cms.SignerIdentifier(name="subject_key_identifier", value=skid.value.digest)
    except x509.ExtensionNotFound:
        asn1 = _asn1_certificate(certificate)
        value = {"issuer": asn1.issuer, "serial_number": certificate.serial_number}
        return False, cms.SignerIdentifier(name="issuer_and_serial_number", value=value)


def _find_signer(sid: AnyType, pool: Sequence[x509.Certificate]) -> x509.Certificate:
    for certificate in pool:
        if sid.name == "subject_key_identifier":
            try:
                ext = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except (x509.ExtensionNotFound, ValueError):
                continue
            if ext.value.digest == sid.chosen.native:
                return certificate
        elif sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            asn1 = _asn1_certificate(certificate)
            if (
                asn1.serial_number == wanted["serial_number"].native
                and asn1.issuer == wanted["issuer"]
            ):
                return certificate
    raise BadMessageCheck("the KGA certificate that signed the key is not included")


def _check_signature(
    info: AnyType, content_type: str, content: bytes, signer: x509.Certificate
) -> None:
    digest = info["digest_algorithm"]["algorithm"].native
    if digest not in _DIGESTS:
        raise BadAlg(f"unsupported digest algorithm {info['digest_algorithm']['algorithm'].dotted}")
    alg = _signature_algorithm(info["signature_algorithm"], digest)
    if not isinstance(info["signed_attrs"], cms.CMSAttributes) or not len(info["signed_attrs"]):
        if content_type != "data":  # RFC 5652 5.3: other content needs signed attributes
            raise BadDataFormat("SignerInfo without signed attributes")
        signed = content
    else:
        signed = _check_attributes(info["signed_attrs"], content_type, content, digest)
    key = load_public_key(
        signer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    if not verify(key, alg, signed, info["signature"].native):
        raise BadMessageCheck("the KGA's signature over the private key does not verify")


def _signature_algorithm(value: AnyType, digest: str) -> AlgorithmIdentifier:
    """The engine's identifier; rsaEncryption (as OpenSSL writes it) means PKCS#1 v1.5 with the
    SignerInfo's digest (RFC 5754 3.2). RSA and ECDSA must hash with that digest."""
    if value["algorithm"].dotted == _RSA_ENCRYPTION:
        return AlgorithmIdentifier({"algorithm": f"{digest}WithRSAEncryption"})
    alg: AlgorithmIdentifier = AlgorithmIdentifier.load(value.dump())
    if alg["algorithm"].native not in _PURE_SCHEMES and signature_hash_name(alg) != digest:
        raise BadAlg("signature and digest algorithms of the SignerInfo do not match")
    return alg


def _check_attributes(attrs: AnyType, content_type: str, content: bytes, digest: str) -> bytes:
    """The DER the signature covers (the SET OF, RFC 5652 5.4), after checking contentType and
    messageDigest against the content."""
    found_type = found_digest = False
    for attribute in attrs:
        name = attribute["type"].native
        values = list(attribute["values"])
        if name == "content_type":
            if len(values) != 1 or values[0].native != content_type:
                raise BadMessageCheck("contentType attribute differs from the content's type")
            found_type = True
        elif name == "message_digest":
            expected = hashlib.new(digest, content).digest()
            if len(values) != 1 or values[0].native != expected:
                raise BadMessageCheck("messageDigest attribute does not match the key package")
            found_digest = True
    if not (found_type and found_digest):
        raise BadDataFormat("signed attributes without contentType and messageDigest")
    raw = bytes(attrs.dump())  # as received, [0] IMPLICIT: the signature covers the SET OF
    return b"\x31" + raw[1:]


def _load_signed_data(der: bytes) -> cms.SignedData:
    """A SignedData as RFC 9483 and OpenSSL encrypt it, or wrapped in a ContentInfo."""
    header = 2 + (der[1] & 0x7F if len(der) > 1 and der[1] & 0x80 else 0)
    if der[header : header + 1] == b"\x06":  # an OID first: ContentInfo, not SignedData
        outer = cms.ContentInfo.load(der, strict=True)
        if outer["content_type"].native != "signed_data":
            raise BadDataFormat("decrypted content is not SignedData")
        signed: cms.SignedData = outer["content"]
        return signed
    return cms.SignedData.load(der, strict=True)


def _load_package(content: bytes) -> PrivateKeyTypes:
    try:
        keys = list(AsymmetricKeyPackage.load(content, strict=True))
        if len(keys) != 1:
            raise BadDataFormat(f"key package with {len(keys)} keys, one expected (RFC 9483)")
        one = keys[0]
        # cryptography reads PKCS#8 v1 only: the same key without the v2 publicKey field.
        v1 = OneAsymmetricKey(
            {
                "version": 0,
                "privateKeyAlgorithm": one["privateKeyAlgorithm"],
                "privateKey": one["privateKey"],
            }
        )
        private_key = _load_private_key(v1.dump())
        public = one["publicKey"]
        if isinstance(public, OctetBitString) and public.native != _public_key_bits(private_key):
            raise BadDataFormat("the key package's public key does not belong to its private key")
    except CmpError:
        raise
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed AsymmetricKeyPackage: {type(exc).__name__}: {exc}") from None
    return private_key


def _load_private_key(der: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadDataFormat(f"the private key does not load: {exc}") from None


def _asn1_certificate(certificate: x509.Certificate) -> AsnCertificate:
    return AsnCertificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _x509(certificate: AsnCertificate) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(certificate.dump())
    except ValueError as exc:
        raise DecodeError(f"unusable certificate in SignedData: {exc}") from None


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


__all__ = [
    "CMKGA",
    "KeyPackageFormat",
    "OpenedKey",
    "key_package",
    "open_private_key",
    "same_public_key",
    "seal_private_key",
    "sign_content",
    "verify_signed_content",
]
