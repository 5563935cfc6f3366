"""Who signed a message: pick the CMP protection certificate and validate it at `now`.

RFC 9810 5.1.3.3 and RFC 9483 3.1: the protection certificate comes first in extraCerts, its
subject is the header's `sender` and its subjectKeyIdentifier the `senderKID`. Path validation is
`cryptography.x509.verification` (RFC 5280 chain building) with extension policies fitted to CMP:
end-entity certificates need neither EKU clientAuth nor a subjectAltName, but a KeyUsage, where
present, must allow digitalSignature; CA certificates follow the Web PKI defaults except that
KeyUsage may be absent (as in `openssl req -x509` CAs) and, when present, must allow keyCertSign.

Errors: a sender or senderKID that names another certificate than the one that signed is
`BadMessageCheck` (the protection does not authenticate the claimed sender); a certificate that
does not chain to a trust anchor at `now`, or may not sign, is `SignerNotTrusted`.

The same client certificate and chain arrive with every message, so what is derived from them is
cached, bounded, and keyed by content: a certificate's subject and SKID, and successful path
validations, reused only for the same inputs while `now` lies inside every certificate's
validity (see `_ValidationCache`). A failure is never cached.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto.x509 import Name
from cryptography import x509
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from .asn1 import NULL_DN_DER, PKIHeader, header_fields
from .encode import contents_of
from .errors import BadMessageCheck, SignerNotTrusted
from .memo import CERTIFICATE_BYTES, NAME_BYTES, certificate_size, remembered

ANY_EXTENDED_KEY_USAGE = x509.ObjectIdentifier("2.5.29.37.0")


@dataclass(frozen=True)
class TrustConfig:
    """What a recipient trusts for signature-based protection.

    `anchors` are the trust anchors (like `openssl cmp -trusted`); `intermediates` are locally known
    untrusted certificates that may complete a path (`-untrusted`). A `pinned` certificate (like
    `-srvcert`) is the only acceptable signer and is trusted directly, no chain needed, but must be
    valid at `now`. `extended_key_usage`, if set, must be in the signer's EKU extension (e.g.
    id-kp-cmcRA when a client checks an RA); by default EKU is not required. At most
    `max_signer_candidates` matching certificates are tried, bounding the work a message can cause.
    """

    anchors: tuple[x509.Certificate, ...] = ()
    intermediates: tuple[x509.Certificate, ...] = ()
    pinned: x509.Certificate | None = None
    extended_key_usage: x509.ObjectIdentifier | None = None
    max_chain_depth: int = 8
    max_signer_candidates: int = 4  # signature checks per message: extraCerts is sender-chosen


@dataclass(frozen=True)
class TrustedSigner:
    """A validated CMP protection certificate and its path (leaf first, trust anchor last)."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def signer_candidates(
    header: PKIHeader, extra_certs: Sequence[x509.Certificate], config: TrustConfig
) -> list[x509.Certificate]:
    """The certificates that may have protected a message with `header`, most likely first.

    The pinned certificate if configured, else extraCerts in order (the first is the protection
    certificate, RFC 9483 3.1), then locally known certificates, keeping those whose subject is
    the header's sender (unless that is the NULL-DN) and whose SKID is the senderKID (if present).
    `BadMessageCheck` if certificates were offered but none fits; `SignerNotTrusted` if none was.
    """
    sender = _sender_name(header)
    wanted = None if sender is None else _NameForms(sender, _normalized(sender))
    kid = header_fields(header).sender_kid
    offered = [config.pinned] if config.pinned is not None else list(extra_certs)
    pool = offered if config.pinned is not None else _unique(extra_certs, config)
    found = [cert for cert in pool if _matches(_facts(cert), wanted, kid)]
    if found:
        return found[: config.max_signer_candidates]
    if not offered:
        raise SignerNotTrusted(
            "no certificate for the signer: extraCerts is empty and no known one matches"
        )
    what = "pinned certificate" if config.pinned is not None else "protection certificate"
    if wanted is not None and not _facts(offered[0]).subject.matches(wanted):
        raise BadMessageCheck(f"sender is not the subject of the {what}")
    raise BadMessageCheck(f"senderKID is not the subjectKeyIdentifier of the {what}")


def validate_signer(
    cert: x509.Certificate,
    extra_certs: Sequence[x509.Certificate],
    config: TrustConfig,
    now: datetime,
) -> TrustedSigner:
    """Validate `cert` at `now`: pinned, or a path to an anchor; `SignerNotTrusted` otherwise.

    A successful validation is remembered (see `_ValidationCache`): the same client certificate
    and chain arrive with every message, and RFC 5280 path building costs ~100 µs each time.
    """
    if config.pinned is not None:
        if cert != config.pinned:
            raise SignerNotTrusted("the signer is not the pinned certificate")
        store = [config.pinned]
    elif config.anchors:
        store = list(config.anchors)
    else:
        raise SignerNotTrusted("no trust anchors configured")
    untrusted = [c for c in (*extra_certs, *config.intermediates) if c != cert]
    chain = _VALIDATIONS.get(cert, untrusted, config, now)
    if chain is not None:
        return TrustedSigner(cert, chain)
    verifier = (
        PolicyBuilder()
        .store(Store(store))
        .time(now)
        .max_chain_depth(config.max_chain_depth)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_ee_policy(config))
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(cert, untrusted)
    except VerificationError as exc:
        raise SignerNotTrusted(f"protection certificate not trusted: {exc}") from None
    chain = tuple(verified.chain)
    _VALIDATIONS.put(cert, untrusted, config, chain)
    return TrustedSigner(cert, chain)


@dataclass(frozen=True)
class _Validation:
    config: TrustConfig  # held so that its id() in the key cannot be reused by another config
    chain: tuple[x509.Certificate, ...]
    not_before: datetime  # latest notBefore in the chain
    not_after: datetime  # earliest notAfter in the chain


_ValidationKey = tuple[x509.Certificate, tuple[x509.Certificate, ...], int]


class _ValidationCache:
    """Successful path validations, most recently used kept, at most `maxsize`.

    Only successes are stored, so a lookup can never turn a failure into a success; a miss just
    validates again. The key is everything the path depends on except time: the signer and the
    untrusted certificates offered (`Certificate` equality is DER equality) and the very
    `TrustConfig` object (anchors, pin, intermediates, EKU and depth; frozen, and compared by
    identity so a config with other anchors never hits). The only time-dependent check of path
    validation is each certificate's validity period, so a stored path is reused only while
    `now` lies strictly inside all of them (boundaries and naive datetimes validate afresh).
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[_ValidationKey, _Validation] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        cert: x509.Certificate,
        untrusted: Sequence[x509.Certificate],
        config: TrustConfig,
        now: datetime,
    ) -> tuple[x509.Certificate, ...] | None:
        """The stored path for these inputs if it is valid throughout at `now`, else None."""
        if now.tzinfo is None:
            return None
        key = (cert, tuple(untrusted), id(config))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.config is not config:
                return None
            self._entries.move_to_end(key)
        if not entry.not_before < now < entry.not_after:
            return None
        return entry.chain

    def put(
        self,
        cert: x509.Certificate,
        untrusted: Sequence[x509.Certificate],
        config: TrustConfig,
        chain: tuple[x509.Certificate, ...],
    ) -> None:
        """Remember a path that has just been validated."""
        entry = _Validation(
            config,
            chain,
            max(c.not_valid_before_utc for c in chain),
            min(c.not_valid_after_utc for c in chain),
        )
        key = (cert, tuple(untrusted), id(config))
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every stored validation."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_VALIDATIONS = _ValidationCache(maxsize=1024)
_DIRECTORY_NAME = 0xA4  # GeneralName [4] directoryName


def _ca_key_usage(_policy: Policy, _cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    # RFC 5280 6.1.4 (n): a KeyUsage on a CA certificate must allow certificate signing.
    if ku is not None and not ku.key_cert_sign:
        raise ValueError("CA certificate KeyUsage lacks keyCertSign")


def _ee_key_usage(_policy: Policy, _cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    # RFC 9483 3.1: the CMP protection key signs; a KeyUsage, where present, must allow it.
    if ku is not None and not ku.digital_signature:
        raise ValueError("KeyUsage lacks digitalSignature")


_CA_POLICY = ExtensionPolicy.webpki_defaults_ca().may_be_present(
    x509.KeyUsage, Criticality.AGNOSTIC, _ca_key_usage
)
_EE_POLICY = ExtensionPolicy.permit_all().may_be_present(
    x509.KeyUsage, Criticality.AGNOSTIC, _ee_key_usage
)


def _ee_policy(config: TrustConfig) -> ExtensionPolicy:
    required = config.extended_key_usage
    if required is None:
        return _EE_POLICY

    def check_eku(_policy: Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage) -> None:
        if required not in eku and ANY_EXTENDED_KEY_USAGE not in eku:
            raise ValueError(f"ExtendedKeyUsage lacks {required.dotted_string}")

    return _EE_POLICY.require_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, check_eku)


def _unique(extra_certs: Sequence[x509.Certificate], config: TrustConfig) -> list[x509.Certificate]:
    # dict keeps the first occurrence's order; linear in the (sender-chosen) number of certificates
    return list(dict.fromkeys(itertools.chain(extra_certs, config.intermediates, config.anchors)))


def _sender_name(header: PKIHeader) -> bytes | None:
    """DER of the sender's directoryName, None for the NULL-DN; `BadMessageCheck` for others."""
    der = header_fields(header).sender
    if der[0] != _DIRECTORY_NAME:
        raise BadMessageCheck("a signature-protected message needs a directoryName sender")
    # The Name is the content of the [4] EXPLICIT tag: slicing the GeneralName's DER spares
    # asn1crypto parsing the Name (and `untag()` copying it) on every message.
    return None if der == NULL_DN_DER else contents_of(der)


def names_match(a_der: bytes, b_der: bytes) -> bool:
    """Whether two DER Names are equal the RFC 5280 7.1 way (case and whitespace folded)."""
    if a_der == b_der:
        return True
    folded = _normalized(a_der)
    return folded is not None and folded == _normalized(b_der)


@remembered(maxsize=1024, max_key_size=NAME_BYTES)
def _normalized(name_der: bytes) -> str | None:
    """The RFC 4518 prepared form of a Name; None if it has characters that prohibits."""
    # Cached: anchors and intermediates recur in every message, and string preparation is slow.
    try:
        hashable: str = Name.load(name_der).hashable
    except ValueError:
        return None
    return hashable


@dataclass(frozen=True)
class _NameForms:
    """A DER Name and its RFC 4518 prepared form (None if that prohibits its characters)."""

    der: bytes
    normalized: str | None

    def matches(self, other: _NameForms) -> bool:
        """`names_match(self.der, other.der)` from forms computed once."""
        if self.der == other.der:
            return True
        return self.normalized is not None and self.normalized == other.normalized


@dataclass(frozen=True)
class _CertificateFacts:
    """What signer selection reads from a certificate: its subject and subjectKeyIdentifier."""

    subject: _NameForms
    key_id: bytes | None  # None if it has no SKID or its extensions are malformed


@remembered(maxsize=1024, max_key_size=CERTIFICATE_BYTES, size=certificate_size)
def _facts(cert: x509.Certificate) -> _CertificateFacts:
    """The subject and SKID of `cert`, cached per certificate (keyed by its DER): the client's
    certificate, the anchors and the intermediates recur in every message."""
    subject = cert.subject.public_bytes()
    try:
        key_id = bytes(
            cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        )
    except x509.ExtensionNotFound:
        key_id = None  # like OpenSSL: a senderKID needs a certificate that has an SKID
    except ValueError:  # malformed extensions: not a certificate that can be the signer's
        key_id = None
    return _CertificateFacts(_NameForms(subject, _normalized(subject)), key_id)


def _matches(facts: _CertificateFacts, sender: _NameForms | None, kid: bytes | None) -> bool:
    if sender is not None and not facts.subject.matches(sender):
        return False
    return kid is None or facts.key_id == kid
