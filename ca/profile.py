"""Certificate profiles: what the CA issues for one CMP endpoint label, and to whom.

A profile bounds keys, validity, names and extensions of issued certificates and says how clients
authenticate (PBM references, trusted client CAs), whether requests are approved automatically or
by an operator, whether implicit confirmation is granted, and what a key update does to the old
certificate. Profiles come from the `[profiles.<label>]` tables of the TOML configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

KEY_TYPES = ("ec", "rsa", "ed25519", "ed448", "ml-dsa")
APPROVALS = ("auto", "manual")
OLD_CERT_FATES = ("revoke", "keep")
EXTENDED_KEY_USAGES = {
    "serverAuth": "1.3.6.1.5.5.7.3.1",
    "clientAuth": "1.3.6.1.5.5.7.3.2",
    "codeSigning": "1.3.6.1.5.5.7.3.3",
    "emailProtection": "1.3.6.1.5.5.7.3.4",
    "timeStamping": "1.3.6.1.5.5.7.3.8",
    "ocspSigning": "1.3.6.1.5.5.7.3.9",
    "cmcCA": "1.3.6.1.5.5.7.3.27",
    "cmcRA": "1.3.6.1.5.5.7.3.28",
    "cmKGA": "1.3.6.1.5.5.7.3.32",
}
KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


class ProfileError(ValueError):
    """The configuration of a profile is invalid (raised at start-up, never per request)."""


@dataclass(frozen=True)
class Profile:
    """One issuing policy, served at /.well-known/cmp/p/<label> ("" is the default endpoint)."""

    label: str
    key_types: tuple[str, ...] = ("ec", "rsa", "ed25519", "ed448")
    min_rsa_bits: int = 2048
    ec_curves: tuple[str, ...] = ("secp256r1", "secp384r1", "secp521r1")
    default_validity: timedelta = timedelta(days=365)
    max_validity: timedelta = timedelta(days=825)
    require_subject: bool = True  # a subject DN with at least one attribute
    allow_san: bool = True  # copy subjectAltName from the request
    allow_ca: bool = False  # never issue CA certificates unless this says so
    key_usage: tuple[str, ...] = ("digital_signature", "key_encipherment")
    extended_key_usage: tuple[str, ...] = ("clientAuth",)
    crl_distribution_point: str | None = None
    approval: str = "auto"  # or "manual": requests wait (polling) for an operator
    check_after: int = 5  # seconds a client is told to wait while a request awaits approval
    implicit_confirm: bool = True  # grant implicit confirmation when asked
    kur_old_certificate: str = "revoke"  # or "keep" (left to expire)
    pbm_references: tuple[str, ...] = ()  # empty: every configured reference may use it
    trust_issued: bool = True  # certificates this CA issued authenticate signed requests
    client_ca_files: tuple[str, ...] = ()  # further CAs whose certificates authenticate clients
    ra_subjects: tuple[str, ...] = ()  # RFC 4514 subjects allowed to revoke for others
    extra: Mapping[str, Any] = field(default_factory=dict)

    def allows_reference(self, reference: bytes) -> bool:
        """Whether a PBM reference (senderKID) may enrol through this profile."""
        return not self.pbm_references or reference.decode(errors="replace") in self.pbm_references


def profile_from_table(label: str, table: Mapping[str, Any]) -> Profile:
    """Build a profile from its TOML table, checking every value; unknown keys are errors."""
    known = set(Profile.__dataclass_fields__) - {"label", "extra"}
    unknown = set(table) - known - {"validity_days", "max_validity_days"}
    if unknown:
        raise ProfileError(f"profile {label!r}: unknown settings {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name == "validity_days":
            values["default_validity"] = timedelta(days=int(value))
        elif name == "max_validity_days":
            values["max_validity"] = timedelta(days=int(value))
        elif isinstance(value, list):
            values[name] = tuple(value)
        else:
            values[name] = value
    profile = Profile(label=label, **values)
    _check(profile)
    return profile


def _check(profile: Profile) -> None:
    def fail(text: str) -> None:
        raise ProfileError(f"profile {profile.label!r}: {text}")

    if not set(profile.key_types) <= set(KEY_TYPES):
        fail(f"key_types must be among {KEY_TYPES}")
    if profile.approval not in APPROVALS:
        fail(f"approval must be one of {APPROVALS}")
    if profile.kur_old_certificate not in OLD_CERT_FATES:
        fail(f"kur_old_certificate must be one of {OLD_CERT_FATES}")
    if not set(profile.key_usage) <= set(KEY_USAGES):
        fail(f"key_usage must be among {KEY_USAGES}")
    if not set(profile.extended_key_usage) <= set(EXTENDED_KEY_USAGES):
        fail(f"extended_key_usage must be among {sorted(EXTENDED_KEY_USAGES)}")
    if profile.default_validity > profile.max_validity or profile.default_validity.days < 1:
        fail("validity_days must be at least 1 and at most max_validity_days")
    if profile.min_rsa_bits < 2048:
        fail("min_rsa_bits below 2048 is not allowed")
