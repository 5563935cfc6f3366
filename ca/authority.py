"""The issuing CA: turns an accepted request into a certificate with `cryptography`'s builder.

What a profile allows is enforced here, request by request: key type and size, subject, SANs,
validity (requested values honoured within the profile's limits), no CA certificates unless the
profile says so; the extensions (KU, EKU, basicConstraints, SKID/AKID, CRL distribution point)
come from the profile, not from the request.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ObjectIdentifier

from sanscmp.engine.errors import BadAlg, BadCertTemplate, NotAuthorized

from .profile import EXTENDED_KEY_USAGES, KEY_USAGES, Profile

CaKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
SAN_OID = x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME
BASIC_CONSTRAINTS_OID = x509.oid.ExtensionOID.BASIC_CONSTRAINTS
CLOCK_SKEW = timedelta(minutes=5)  # notBefore is backdated this much for clients with slow clocks
_BASIC_CONSTRAINTS = {  # by cA: critical, no pathLenConstraint
    ca: x509.Extension(BASIC_CONSTRAINTS_OID, True, x509.BasicConstraints(ca, None))
    for ca in (False, True)
}


@dataclass(frozen=True)
class CertificateRequest:
    """What a client asked for, taken from a CertTemplate or a PKCS#10 request."""

    public_key_der: bytes  # SubjectPublicKeyInfo
    subject: x509.Name
    subject_alt_names: bytes | None = None  # DER GeneralNames of a requested subjectAltName
    ca: bool = False  # basicConstraints cA requested
    not_before: datetime | None = None
    not_after: datetime | None = None


@dataclass(frozen=True)
class Issued:
    """A certificate and whether it differs from what was asked for (grantedWithMods)."""

    certificate: x509.Certificate
    modified: bool


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA key and certificate (and the chain above it, if the CA is not a root).

    Frozen: what derives from them (its name, the AuthorityKeyIdentifier of the certificates it
    issues, the signature hash) is computed once, on first use.
    """

    key: CaKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def path(self) -> tuple[x509.Certificate, ...]:
        """This CA's certificate and the ones above it: the chain sent with issued certificates."""
        return (self.certificate, *self.chain)

    @functools.cached_property
    def subject(self) -> x509.Name:
        """This CA's name (the issuer of its certificates), parsed once."""
        return self.certificate.subject

    def issue(
        self, request: CertificateRequest, profile: Profile, now: datetime, serial: int
    ) -> Issued:
        """Issue under `profile`; `BadAlg`, `BadCertTemplate` or `NotAuthorized` if not allowed."""
        public_key = _allowed_key(request.public_key_der, profile)
        if profile.require_subject and len(request.subject) == 0:
            raise BadCertTemplate("the certificate template must name a subject")
        modified = False
        if request.ca and not profile.allow_ca:
            raise NotAuthorized(f"profile {profile.label or 'default'!r} issues no CA certificates")
        not_before, not_after, clamped = _validity(request, profile, now)
        modified |= clamped
        fixed = _profile_extensions(
            profile.key_usage, profile.extended_key_usage, profile.crl_distribution_point
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
        extensions = [
            _BASIC_CONSTRAINTS[request.ca],
            fixed.key_usage,
            x509.Extension(ski.oid, False, ski),
            self._authority_key_id,
            *fixed.extended_key_usage,
        ]
        if request.subject_alt_names is not None:
            if profile.allow_san:
                # Copied as requested (the engine has checked it is DER GeneralNames).
                san = x509.UnrecognizedExtension(SAN_OID, request.subject_alt_names)
                extensions.append(x509.Extension(SAN_OID, len(request.subject) == 0, san))
            else:
                modified = True
        extensions.extend(fixed.crl_distribution_points)
        # The extensions in one list (distinct by construction): `add_extension` would copy the
        # builder and compare each with those before it, for every one.
        builder = (
            x509.CertificateBuilder(extensions=extensions)
            .subject_name(request.subject)
            .issuer_name(self.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
        )
        certificate = builder.sign(self.key, self._signature_hash)
        return Issued(certificate, modified)

    @functools.cached_property
    def _authority_key_id(self) -> x509.Extension[x509.AuthorityKeyIdentifier]:
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        return x509.Extension(aki.oid, False, aki)

    @functools.cached_property
    def _signature_hash(self) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
        return _signature_hash(self.key)


@dataclass(frozen=True)
class _ProfileExtensions:
    """The extensions a profile puts in every certificate (the same objects each time)."""

    key_usage: x509.Extension[x509.KeyUsage]
    extended_key_usage: tuple[x509.Extension[x509.ExtendedKeyUsage], ...]  # none or one
    crl_distribution_points: tuple[x509.Extension[x509.CRLDistributionPoints], ...]  # none or one


@functools.cache
def _profile_extensions(
    key_usage: tuple[str, ...], extended_key_usage: tuple[str, ...], crl_uri: str | None
) -> _ProfileExtensions:
    """A profile's fixed extensions, built once per distinct setting (keyed by the settings:
    `Profile` itself is not hashable)."""
    ku = _key_usage(key_usage)
    eku: tuple[x509.Extension[x509.ExtendedKeyUsage], ...] = ()
    if extended_key_usage:
        usages = x509.ExtendedKeyUsage(
            [ObjectIdentifier(EXTENDED_KEY_USAGES[u]) for u in extended_key_usage]
        )
        eku = (x509.Extension(usages.oid, False, usages),)
    crl: tuple[x509.Extension[x509.CRLDistributionPoints], ...] = ()
    if crl_uri:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_uri)], None, None, None)
        points = x509.CRLDistributionPoints([point])
        crl = (x509.Extension(points.oid, False, points),)
    return _ProfileExtensions(x509.Extension(ku.oid, True, ku), eku, crl)


def _allowed_key(spki_der: bytes, profile: Profile) -> CertificatePublicKeyTypes:
    try:
        key = serialization.load_der_public_key(spki_der)
    except ValueError as exc:
        raise BadAlg(f"public key not usable: {exc}") from None
    if isinstance(key, rsa.RSAPublicKey) and "rsa" in profile.key_types:
        if key.key_size < profile.min_rsa_bits:
            raise BadAlg(f"RSA keys need at least {profile.min_rsa_bits} bits")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and "ec" in profile.key_types:
        if key.curve.name not in profile.ec_curves:
            raise BadAlg(f"curve {key.curve.name} not allowed (allowed: {profile.ec_curves})")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey) and "ed25519" in profile.key_types:
        return key
    if isinstance(key, ed448.Ed448PublicKey) and "ed448" in profile.key_types:
        return key
    raise BadAlg(f"{type(key).__name__.removesuffix('PublicKey')} keys not allowed by this profile")


def _validity(
    request: CertificateRequest, profile: Profile, now: datetime
) -> tuple[datetime, datetime, bool]:
    """Requested validity, honoured within [now - skew, now + max_validity]."""
    clamped = False
    not_before = now - CLOCK_SKEW
    if request.not_before is not None:
        if request.not_before > now + profile.max_validity:
            raise BadCertTemplate("notBefore too far in the future")
        if request.not_before > not_before:
            not_before = request.not_before
        else:
            clamped = request.not_before < not_before
    latest = not_before + profile.max_validity
    not_after = request.not_after or not_before + profile.default_validity
    if not_after > latest:
        not_after, clamped = latest, True
    if not_after <= not_before:
        raise BadCertTemplate("notAfter is not after notBefore")
    return not_before, not_after, clamped


def _key_usage(key_usage: tuple[str, ...]) -> x509.KeyUsage:
    flags = {usage: usage in key_usage for usage in KEY_USAGES}
    return x509.KeyUsage(**flags, encipher_only=False, decipher_only=False)


def _signature_hash(key: CaKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384() if key.curve.key_size <= 384 else hashes.SHA512()
    return hashes.SHA256()
