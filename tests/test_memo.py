"""`engine.memo`: what the engine derives from received values is remembered only for small keys.

A peer may send large values (a certificate of hundreds of kilobytes in extraCerts, a huge
algorithm identifier): those are worked out afresh every time and never held by a cache, while
the usual small ones are remembered. Errors are never remembered.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sanscmp.engine import protection, trust
from sanscmp.engine.asn1 import NULL_DN_DER, PKIMessage, der
from sanscmp.engine.encode import explicit, sequence
from sanscmp.engine.memo import CERTIFICATE_BYTES, certificate_size, remembered


def test_small_keys_are_remembered_large_ones_recomputed() -> None:
    calls: list[bytes] = []

    @remembered(maxsize=8, max_key_size=4)
    def work(key: bytes) -> list[bytes]:
        calls.append(key)
        return [key]

    assert work(b"abcd") is work(b"abcd")
    assert work(b"abcde") is not work(b"abcde")
    assert calls == [b"abcd", b"abcde", b"abcde"]
    assert work.cache_info().currsize == 1


def test_errors_are_not_remembered() -> None:
    calls = 0

    @remembered(maxsize=8, max_key_size=64)
    def fail(key: bytes) -> None:
        nonlocal calls
        calls += 1
        raise ValueError(key)

    for _ in range(2):
        with pytest.raises(ValueError):
            fail(b"x")
    assert calls == 2


def _certificate(extension_bytes: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "large")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00" * (extension_bytes // 2)
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def test_a_large_certificate_is_used_but_not_kept() -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    large = _certificate(CERTIFICATE_BYTES + 1000)
    small = _certificate(100)
    assert certificate_size(large) > CERTIFICATE_BYTES >= certificate_size(small)
    large_der, small_der = large.public_bytes(Encoding.DER), small.public_bytes(Encoding.DER)
    before = protection._certificate.cache_info().currsize
    assert protection._certificate(large_der) == large
    assert protection._certificate(large_der) is not protection._certificate(large_der)
    assert protection._certificate(small_der) is protection._certificate(small_der)
    assert protection._certificate.cache_info().currsize == before + 1
    for cached in (protection._public_key, trust._facts):
        size = cached.cache_info().currsize
        cached(large)
        assert cached.cache_info().currsize == size
        cached(small)
        assert cached.cache_info().currsize == size + 1


def test_the_strict_walk_keeps_no_large_certificate() -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    large = _certificate(CERTIFICATE_BYTES + 1000).public_bytes(Encoding.DER)
    header = sequence(bytes.fromhex("020102"), NULL_DN_DER, NULL_DN_DER)
    pkiconf = explicit(19, b"\x05\x00")
    PKIMessage.load(sequence(header, pkiconf, explicit(1, sequence(large))))
    proven = [key for _, plan in der._PLANS.values() for key in plan.proven]
    assert all(len(octets) <= CERTIFICATE_BYTES for _, octets in proven)
