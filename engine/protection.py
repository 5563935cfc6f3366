"""Protect and verify whole PKIMessages (RFC 9810 5.1.3): MAC-based (PBM, PBMAC1) or signatures.

Protection covers the DER of ProtectedPart ::= SEQUENCE { header, body }. A received message is
never re-encoded: the protected part is rebuilt from the header and body bytes as they arrived.

Failure bits: no protection where it is required, a MAC or signature that does not verify, an
unknown senderKID, or a sender/senderKID naming another certificate are `BadMessageCheck`; an
unknown or disallowed algorithm (or out-of-bounds MAC parameters, see `pbm.MacPolicy`) is `BadAlg`;
a kind of protection the recipient is not configured for is `WrongIntegrity`; an untrusted signer
is `SignerNotTrusted`; an extraCerts entry that is not a usable certificate is `BadDataFormat`.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from asn1crypto.core import Void
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .asn1 import NULL_DN_DER, AlgorithmIdentifier, PKIMessage, header_fields
from .encode import BIT_STRING, contents_of, explicit, octet_string, sequence, split, tlv
from .errors import BadAlg, BadDataFormat, BadMessageCheck, SignerNotTrusted, WrongIntegrity
from .memo import CERTIFICATE_BYTES, IDENTIFIER_BYTES, certificate_size, remembered
from .pbm import (
    DEFAULT_POLICY,
    DerivedKeyCache,
    MacParameters,
    MacPolicy,
    compute_mac,
    parse_mac_algorithm,
    pbm_algorithm,
    pbmac1_algorithm,
    verify_mac,
)
from .signature import (
    SigningKey,
    VerifyingKey,
    default_algorithm,
    is_supported,
    load_public_key,
    sign,
    verify,
)
from .trust import (
    TrustConfig,
    TrustedSigner,
    names_match,
    signer_candidates,
    validate_signer,
)

RandomBytes = Callable[[int], bytes]
"""Source of cryptographically secure random bytes: `random_bytes(n)` returns `n` bytes."""

_MAC_ALGORITHMS = frozenset({"id-PasswordBasedMac", "id-PBMAC1"})
_PROTECTION = 0xA0  # PKIMessage protection [0]


class MacSecrets(Protocol):
    """Looks up the shared secret a MAC-protected message was protected with."""

    def secret_for(self, sender_kid: bytes | None) -> bytes | None:
        """The secret for this senderKID (None if the message has none); None if unknown."""


@dataclass(frozen=True)
class PbmScheme:
    """PasswordBasedMac parameters to protect with; hash names are hashlib's ("sha256").

    `salt` None (the default) draws a fresh salt per message; a fixed salt re-derives the same key,
    which a `DerivedKeyCache` then serves (used to answer a request with its own parameters).
    """

    owf: str = "sha256"
    mac: str = "sha256"  # "sha1" is written as the hmac-sha1 OID (1.3.6.1.5.5.8.1.2)
    iterations: int = 10_000
    salt_length: int = 16
    salt: bytes | None = None


@dataclass(frozen=True)
class Pbmac1Scheme:
    """PBMAC1 parameters to protect with: PBKDF2 with HMAC-`prf`, then HMAC-`mac`."""

    prf: str = "sha256"
    mac: str = "sha256"
    iterations: int = 10_000
    key_length: int = 32
    salt_length: int = 16
    salt: bytes | None = None


@dataclass(frozen=True)
class MacCredential:
    """A shared secret and its reference (sent as senderKID if not None), and how to protect."""

    reference: bytes | None
    secret: bytes = field(repr=False)
    scheme: PbmScheme | Pbmac1Scheme = PbmScheme()


@dataclass(frozen=True)
class SignatureCredential:
    """A signing key, its certificate (sent first in extraCerts) and the chain sent after it.

    `algorithm` overrides the RFC 9481 default for the key, e.g. `signature.pss_algorithm(...)`.
    """

    key: SigningKey = field(repr=False)
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    algorithm: AlgorithmIdentifier | None = None


Credential = MacCredential | SignatureCredential


class ProtectionKind(enum.StrEnum):
    """How a message was protected."""

    NONE = "none"
    MAC = "mac"
    SIGNATURE = "signature"


@dataclass(frozen=True)
class VerifiedProtection:
    """What verification proved: the kind, and who (MAC credential or validated signer).

    `mac_credential` repeats the request's scheme and salt with the same secret, so a MAC-protected
    request can be answered with the same credential (and, through a cache, without re-deriving).
    """

    kind: ProtectionKind
    algorithm: AlgorithmIdentifier | None = None
    sender_kid: bytes | None = None
    mac_credential: MacCredential | None = None
    signer: TrustedSigner | None = None

    @property
    def certificate(self) -> x509.Certificate | None:
        """The validated CMP protection certificate, for signature protection."""
        return self.signer.certificate if self.signer is not None else None

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The validated path, protection certificate first and trust anchor last."""
        return self.signer.chain if self.signer is not None else ()


def protected_part_bytes(msg: PKIMessage) -> bytes:
    """DER of ProtectedPart from the header and body bytes as they are (received or built).

    Sliced from the message's contents: no header or body object is built for it, and no
    `dump()` re-encodes one whose length octet happens to be 0x80 (asn1crypto's BER check)."""
    try:
        header, body = split(msg.contents)[:2]
    except ValueError:  # not for `split` (e.g. a high tag number): through asn1crypto
        return sequence(msg["header"].dump(), msg["body"].dump())
    return sequence(header, body)


def protect(
    msg: PKIMessage,
    credential: Credential,
    *,
    random_bytes: RandomBytes,
    cache: DerivedKeyCache | None = None,
) -> PKIMessage:
    """A copy of `msg` with protectionAlg, senderKID, protection and (signatures) extraCerts set.

    MAC: senderKID is the credential's reference, the salt comes from `random_bytes`. Signature:
    senderKID is the certificate's SKID (removed if it has none), a NULL-DN sender becomes the
    certificate's subject (any other sender must already be it), and the certificate and its chain
    go first in extraCerts, before any certificates `msg` already carries.

    The message is put together from its DER (see `encode`): the header's fields are taken as
    encoded and only the protection fields are replaced, so the header is encoded once and the
    protected part is exactly what is sent. The result is a lazily parsed `PKIMessage`.
    """
    header, body, extra = _unprotected_parts(msg)
    if isinstance(credential, MacCredential):
        params, alg = _mac_parameters(credential.scheme, random_bytes)
        header = _protected_header(header, alg.dump(), credential.reference)
        value = compute_mac(params, credential.secret, sequence(header, body), cache)
    else:
        signer = _signer_parts(credential)
        header = _protected_header(header, signer.algorithm_der, signer.key_id, signer.subject)
        value = sign(credential.key, signer.algorithm, sequence(header, body))
        extra = [*signer.certificates, *(c for c in extra if c not in signer.certificates)]
    parts = [header, body, explicit(0, tlv(BIT_STRING, b"\x00" + value))]
    if extra:
        parts.append(explicit(1, sequence(*extra)))
    return PKIMessage(contents=b"".join(parts))


def verify_protection(
    msg: PKIMessage,
    *,
    now: datetime,
    mac_secrets: MacSecrets | None = None,
    trust: TrustConfig | None = None,
    mac_policy: MacPolicy = DEFAULT_POLICY,
    cache: DerivedKeyCache | None = None,
    accept_unprotected: bool = False,
) -> VerifiedProtection:
    """Verify the protection of a received message, or raise the `CmpError` for its failInfo.

    MAC protection needs `mac_secrets`, signatures need `trust` (otherwise `WrongIntegrity`). An
    unprotected message is `BadMessageCheck` unless `accept_unprotected`, when it comes back as
    kind NONE for the caller to decide on (e.g. OpenSSL's unprotected-error exceptions).
    """
    header = msg["header"]
    alg_der = header_fields(header).protection_alg
    value = _protection_value(msg)
    if alg_der is None and value is None:
        if accept_unprotected:
            kid = header_fields(header).sender_kid
            return VerifiedProtection(ProtectionKind.NONE, sender_kid=kid)
        raise BadMessageCheck("message is not protected")
    if alg_der is None:
        raise BadMessageCheck("protection present without protectionAlg")
    if value is None:
        raise BadMessageCheck("protectionAlg present without protection")
    alg = _identifier(alg_der)
    name = alg["algorithm"].native
    if name in _MAC_ALGORITHMS:
        if mac_secrets is None:
            raise WrongIntegrity("MAC-based protection is not accepted here")
        return _verify_mac(msg, alg, value, mac_secrets, mac_policy, cache)
    if not is_supported(alg):
        raise BadAlg(f"unsupported protection algorithm {alg['algorithm'].dotted}")
    if trust is None:
        raise WrongIntegrity("signature-based protection is not accepted here")
    return _verify_signature(msg, alg, value, trust, now)


def _protection_value(msg: PKIMessage) -> bytes | None:
    """The protection BIT STRING's octets, sliced from the message's contents; None if absent."""
    try:
        for tagged in split(msg.contents)[2:]:
            if tagged[0] == _PROTECTION:
                bits = contents_of(contents_of(tagged))  # [0] EXPLICIT BIT STRING
                if bits[:1] != b"\x00":
                    raise ValueError("unused bits in the protection")
                return bits[1:]
        return None
    except ValueError:  # not for `split`: asn1crypto reads it (and says what is wrong)
        protection = msg["protection"]
        return protection.native if _present(protection) else None


@remembered(maxsize=128, max_key_size=IDENTIFIER_BYTES)
def _identifier(der: bytes) -> AlgorithmIdentifier:
    """A protectionAlg as received (lazily parsed), one object per distinct encoding: signature
    identifiers are a handful in use, each MAC identifier is new (its salt)."""
    identifier: AlgorithmIdentifier = AlgorithmIdentifier.load(der)
    return identifier


def _verify_mac(
    msg: PKIMessage,
    alg: AlgorithmIdentifier,
    value: bytes,
    secrets: MacSecrets,
    policy: MacPolicy,
    cache: DerivedKeyCache | None,
) -> VerifiedProtection:
    params = parse_mac_algorithm(alg, policy)  # bounds first: no work for unacceptable ones
    kid = header_fields(msg["header"]).sender_kid
    secret = secrets.secret_for(kid)
    if secret is None:
        raise BadMessageCheck("no shared secret known for this senderKID")
    if not verify_mac(params, secret, protected_part_bytes(msg), value, cache):
        raise BadMessageCheck("MAC-based protection does not verify")
    credential = MacCredential(kid, secret, _scheme_of(params))
    return VerifiedProtection(ProtectionKind.MAC, alg, kid, mac_credential=credential)


def _verify_signature(
    msg: PKIMessage, alg: AlgorithmIdentifier, value: bytes, trust: TrustConfig, now: datetime
) -> VerifiedProtection:
    extra = _load_extra_certs(msg)
    header = msg["header"]
    candidates = signer_candidates(header, extra, trust)
    data = protected_part_bytes(msg)
    unfit: BadAlg | None = None
    untrusted: SignerNotTrusted | None = None
    checked = False
    for cert in candidates:
        try:
            ok = verify(_public_key(cert), alg, data, value)
        except BadAlg as exc:  # e.g. an ECDSA identifier and an RSA certificate
            unfit = unfit or exc
            continue
        checked = True
        if not ok:
            continue
        try:
            signer = validate_signer(cert, extra, trust, now)
        except SignerNotTrusted as exc:  # e.g. an expired certificate before its renewal
            untrusted = untrusted or exc
            continue
        kid = header_fields(header).sender_kid
        return VerifiedProtection(ProtectionKind.SIGNATURE, alg, kid, signer=signer)
    if untrusted is not None:
        raise untrusted  # the signature verified, but no certificate for its key is trusted
    if unfit is not None and not checked:
        raise unfit  # the algorithm fits none of the candidate keys
    raise BadMessageCheck("signature-based protection does not verify")


def _mac_parameters(
    scheme: PbmScheme | Pbmac1Scheme, random_bytes: RandomBytes
) -> tuple[MacParameters, AlgorithmIdentifier]:
    salt = scheme.salt if scheme.salt is not None else random_bytes(scheme.salt_length)
    if isinstance(scheme, PbmScheme):
        alg = pbm_algorithm(salt, owf=scheme.owf, iterations=scheme.iterations, mac=scheme.mac)
        return MacParameters("pbm", salt, scheme.iterations, scheme.owf, scheme.mac), alg
    alg = pbmac1_algorithm(
        salt,
        prf=scheme.prf,
        iterations=scheme.iterations,
        key_length=scheme.key_length,
        mac=scheme.mac,
    )
    params = MacParameters(
        "pbmac1", salt, scheme.iterations, scheme.prf, scheme.mac, scheme.key_length
    )
    return params, alg


def _scheme_of(params: MacParameters) -> PbmScheme | Pbmac1Scheme:
    if params.scheme == "pbm":
        return PbmScheme(
            params.kdf_hash, params.mac_hash, params.iterations, len(params.salt), params.salt
        )
    return Pbmac1Scheme(
        params.kdf_hash,
        params.mac_hash,
        params.iterations,
        params.key_length or 32,
        len(params.salt),
        params.salt,
    )


def _unprotected_parts(msg: PKIMessage) -> tuple[bytes, bytes, list[bytes]]:
    """The DER of `msg`'s header and body, and of each certificate in its extraCerts."""
    fields = split(msg.contents)  # header, body, then [0] protection and [1] extraCerts if present
    extra: list[bytes] = []
    for tagged in fields[2:]:
        if tagged[0] == 0xA1:
            extra = split(contents_of(contents_of(tagged)))  # [1] EXPLICIT SEQUENCE OF
    return fields[0], fields[1], extra


def _protected_header(
    header: bytes, alg: bytes, sender_kid: bytes | None, subject: bytes | None = None
) -> bytes:
    """The DER of `header` with protectionAlg (`alg`, DER) and senderKID (None: absent) set; with
    `subject` (a signer's DER Name), a NULL-DN sender becomes that name, any other must equal it."""
    pvno, sender, recipient, *optional = split(contents_of(header))
    if subject is not None:
        sender = _signer_sender(sender, subject)
    tagged = {field[0]: field for field in optional}  # [0]..[8] by their identifier octet
    tagged[0xA1] = explicit(1, alg)
    if sender_kid is None:
        tagged.pop(0xA2, None)
    else:
        tagged[0xA2] = explicit(2, octet_string(sender_kid))
    return sequence(pvno, sender, recipient, *(tagged[tag] for tag in sorted(tagged)))


def _signer_sender(sender: bytes, subject: bytes) -> bytes:
    """The sender GeneralName for a signature by the holder of `subject`."""
    if sender[0] != 0xA4:  # [4] directoryName
        raise ValueError("signature protection needs a directoryName sender")
    if sender == NULL_DN_DER:
        return explicit(4, subject)
    if not names_match(contents_of(sender), subject):
        raise ValueError("sender is not the subject of the protection certificate")
    return sender


@dataclass(frozen=True)
class _SignerParts:
    """What signing with a credential puts into every message: the protectionAlg (also as DER), the
    subject (the sender) and SKID (the senderKID; None if none) of the certificate, and the DER of
    the certificate and its chain (the start of extraCerts)."""

    algorithm: AlgorithmIdentifier
    algorithm_der: bytes
    subject: bytes
    key_id: bytes | None
    certificates: tuple[bytes, ...]


@functools.lru_cache(maxsize=64)
def _signer_parts(credential: SignatureCredential) -> _SignerParts:
    """The `_SignerParts` of a credential, worked out once: a server signs with one credential."""
    cert = credential.certificate
    try:
        skid = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        skid = None
    algorithm = credential.algorithm or default_algorithm(credential.key)
    return _SignerParts(
        algorithm=algorithm,
        algorithm_der=algorithm.dump(),
        subject=cert.subject.public_bytes(),
        key_id=skid,
        certificates=tuple(c.public_bytes(Encoding.DER) for c in (cert, *credential.chain)),
    )


def _load_extra_certs(msg: PKIMessage) -> list[x509.Certificate]:
    """The extraCerts as `cryptography` certificates; `BadDataFormat` for one that is unusable.

    Each entry's DER is sliced from the SEQUENCE OF's content octets (no asn1crypto `Certificate` is
    built per entry) and parsed through `_certificate`, which remembers recent certificates: a
    client sends the same protection certificate and chain with every message.
    """
    extra = msg["extraCerts"]
    if not _present(extra):
        return []
    extra.dump()  # brings `contents` (inside the [1] EXPLICIT tag) up to date for a built message
    try:
        ders = split(extra.contents)
    except ValueError as exc:
        raise BadDataFormat(f"malformed extraCerts: {exc}") from None
    certs = []
    for index, der in enumerate(ders):
        try:
            certs.append(_certificate(der))
        except (ValueError, x509.InvalidVersion) as exc:
            raise BadDataFormat(f"extraCerts[{index}] is not a usable certificate: {exc}") from None
    return certs


@remembered(maxsize=1024, max_key_size=CERTIFICATE_BYTES)
def _certificate(der: bytes) -> x509.Certificate:
    """A certificate parsed from DER, cached by those bytes (bounded; errors are not cached)."""
    return x509.load_der_x509_certificate(der)


@remembered(maxsize=1024, max_key_size=CERTIFICATE_BYTES, size=certificate_size)
def _public_key(cert: x509.Certificate) -> VerifyingKey:
    """The key of a (candidate) protection certificate, cached per certificate DER."""
    try:
        spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadAlg(f"unusable public key in the protection certificate: {exc}") from None
    return load_public_key(spki)


def _present(value: object) -> bool:
    # `.native` would parse the whole value (and fail on certificates asn1crypto cannot type)
    return not isinstance(value, Void)
