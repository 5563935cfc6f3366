"""The caches behind request verification never weaken a check.

Path validations (`trust._ValidationCache`) are reused only for the same signer, offered
certificates and `TrustConfig` object, and only while `now` lies inside the validity of every
certificate of the path; failures are never stored; the caches are bounded. Certificates parsed
from extraCerts and their keys are cached by DER, parse errors are not.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from asn1crypto.x509 import GeneralName, Name
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from test_trust import NOW, intermediate, issue, leaf, root, signing_key, unprotected

from sanscmp.engine import protection, trust
from sanscmp.engine.asn1 import PKIHeader, PKIMessage
from sanscmp.engine.errors import BadMessageCheck, SignerNotTrusted
from sanscmp.engine.protection import SignatureCredential, protect
from sanscmp.engine.trust import TrustConfig, _ValidationCache, validate_signer

DAY = dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    trust._VALIDATIONS.clear()


def short_lived() -> x509.Certificate:
    """A leaf valid from NOW - 1 day to NOW + 1 day under the long-lived intermediate."""
    return issue(
        "short",
        signing_key("p256"),
        intermediate(),
        signing_key("p384"),
        not_before=NOW - DAY,
        not_after=NOW + DAY,
    )


def test_a_repeated_validation_is_served_from_the_cache() -> None:
    cert, config = leaf(), TrustConfig(anchors=(root(),))
    first = validate_signer(cert, [intermediate()], config, NOW)
    assert len(trust._VALIDATIONS) == 1
    again = validate_signer(cert, [intermediate()], config, NOW + dt.timedelta(hours=1))
    assert again == first
    assert again.chain == (cert, intermediate(), root())


@pytest.mark.parametrize("offset", [2 * DAY, -2 * DAY, DAY, -DAY], ids=str)
def test_a_cached_path_is_not_reused_outside_or_at_the_edge_of_the_validity(
    offset: dt.timedelta,
) -> None:
    cert, config = short_lived(), TrustConfig(anchors=(root(),))
    validate_signer(cert, [intermediate()], config, NOW)
    later = NOW + offset
    assert trust._VALIDATIONS.get(cert, [intermediate()], config, later) is None
    if abs(offset) > DAY:  # outside the validity: the full validation runs, and fails
        with pytest.raises(SignerNotTrusted):
            validate_signer(cert, [intermediate()], config, later)


def test_the_window_is_the_intersection_of_the_chain() -> None:
    # The leaf outlives its CA: the CA's notAfter bounds the cached window.
    ca_key, key = signing_key("p384"), signing_key("p256")
    ca = issue("short ca", ca_key, root(), signing_key("rsa"), ca=True, not_after=NOW + DAY)
    cert = issue("long leaf", key, ca, ca_key, not_after=NOW + 100 * DAY)
    config = TrustConfig(anchors=(root(),))
    validate_signer(cert, [ca], config, NOW)
    with pytest.raises(SignerNotTrusted):
        validate_signer(cert, [ca], config, NOW + 2 * DAY)


def test_other_anchors_never_hit() -> None:
    cert = leaf()
    validate_signer(cert, [intermediate()], TrustConfig(anchors=(root(),)), NOW)
    other_root = issue("other root", signing_key("rsa-b"), ca=True)
    with pytest.raises(SignerNotTrusted):
        validate_signer(cert, [intermediate()], TrustConfig(anchors=(other_root,)), NOW)
    pinned_other = TrustConfig(pinned=issue("pinned", signing_key("p256-b")))
    with pytest.raises(SignerNotTrusted):
        validate_signer(cert, [intermediate()], pinned_other, NOW)


def test_other_offered_certificates_never_hit() -> None:
    cert, config = leaf(), TrustConfig(anchors=(root(),))
    validate_signer(cert, [intermediate()], config, NOW)
    with pytest.raises(SignerNotTrusted):  # without the intermediate there is no path
        validate_signer(cert, [], config, NOW)


def test_failures_are_not_cached() -> None:
    cert, config = leaf(), TrustConfig(anchors=(root(),))
    with pytest.raises(SignerNotTrusted):
        validate_signer(cert, [], config, NOW)
    assert len(trust._VALIDATIONS) == 0
    assert validate_signer(cert, [intermediate()], config, NOW).certificate == cert


def test_a_naive_now_bypasses_the_cache() -> None:
    cert, config = leaf(), TrustConfig(anchors=(root(),))
    validate_signer(cert, [intermediate()], config, NOW)
    assert trust._VALIDATIONS.get(cert, [intermediate()], config, NOW.replace(tzinfo=None)) is None


def test_the_cache_is_bounded_and_keeps_the_recently_used() -> None:
    cache = _ValidationCache(maxsize=2)
    config = TrustConfig(anchors=(root(),))
    certs = [leaf(), leaf("p384"), leaf("ed25519")]
    for cert in certs[:2]:
        cache.put(cert, [], config, (cert, root()))
    assert cache.get(certs[0], [], config, NOW) is not None  # certs[0] is now the most recent
    cache.put(certs[2], [], config, (certs[2], root()))
    assert len(cache) == 2
    assert cache.get(certs[1], [], config, NOW) is None
    assert cache.get(certs[0], [], config, NOW) is not None
    assert cache.get(certs[2], [], config, NOW) is not None


def test_an_equal_but_distinct_config_does_not_hit() -> None:
    cache = _ValidationCache(maxsize=4)
    cert = leaf()
    cache.put(cert, [], TrustConfig(anchors=(root(),)), (cert, root()))
    assert cache.get(cert, [], TrustConfig(anchors=(root(),)), NOW) is None


def test_expired_signer_still_fails_verify_protection_after_a_success() -> None:
    cert = short_lived()
    config = TrustConfig(anchors=(root(),))
    credential = SignatureCredential(signing_key("p256"), cert, (intermediate(),))
    message = PKIMessage.load(protect(unprotected(), credential, random_bytes=os.urandom).dump())
    assert protection.verify_protection(message, now=NOW, trust=config).certificate == cert
    with pytest.raises(SignerNotTrusted):
        protection.verify_protection(message, now=NOW + 2 * DAY, trust=config)


def test_extra_certificates_are_parsed_once_and_errors_are_not_cached() -> None:
    der = leaf().public_bytes(Encoding.DER)
    assert protection._certificate(der) is protection._certificate(bytes(der))
    before = protection._certificate.cache_info().currsize
    for _ in range(2):
        with pytest.raises(ValueError):
            protection._certificate(der[:-1])
    assert protection._certificate.cache_info().currsize == before


@pytest.mark.parametrize("length", [1, 60, 200, 70_000])
def test_sender_name_is_the_directory_name_der(length: int) -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "o" * min(length, 64)),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "d" * length),
        ]
    )
    der = subject.public_bytes()
    header = PKIHeader(
        {
            "pvno": 2,
            "sender": GeneralName(name="directory_name", value=Name.load(der)),
            "recipient": GeneralName(name="directory_name", value=Name.load(der)),
        }
    )
    assert trust._sender_name(PKIHeader.load(header.dump())) == der
    assert trust._sender_name(header) == der


def test_sender_name_null_dn_and_other_general_names() -> None:
    null = GeneralName(name="directory_name", value=Name.load(b"\x30\x00"))
    header = PKIHeader({"pvno": 2, "sender": null, "recipient": null})
    assert trust._sender_name(PKIHeader.load(header.dump())) is None
    uri = GeneralName(name="uniform_resource_identifier", value="http://example.com")
    header = PKIHeader({"pvno": 2, "sender": uri, "recipient": null})
    with pytest.raises(BadMessageCheck):
        trust._sender_name(header)
