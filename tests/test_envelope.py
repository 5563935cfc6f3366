"""EnvelopedData for encrCert (RFC 9810 5.2.2, RFC 9481 4-5, RFC 5652, RFC 5753, RFC 8418)."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto.cms import ContentInfo, EnvelopedData
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mlkem, rsa, x448, x25519
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from sanscmp.engine.envelope import (
    check_recipient_key,
    decrypt_certificate,
    decrypt_enveloped,
    encrypt_certificate,
    envelope,
    subject_key_identifier,
)
from sanscmp.engine.errors import BadAlg, BadDataFormat, DecodeError

_CA_KEY = ec.generate_private_key(ec.SECP256R1())
_CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "envelope test CA")])
KEYS: dict[str, object] = {
    "rsa2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "rsa3072": rsa.generate_private_key(public_exponent=65537, key_size=3072),
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
    "p521": ec.generate_private_key(ec.SECP521R1()),
    "x25519": x25519.X25519PrivateKey.generate(),
    "x448": x448.X448PrivateKey.generate(),
}
OPENSSL_KEYS = ["rsa2048", "rsa3072", "p256", "p384", "p521"]


def _spki(key: object) -> bytes:
    public = key.public_key()  # type: ignore[attr-defined]
    return bytes(
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _cert(key: object, *, skid: bytes | None = None, with_skid: bool = True) -> bytes:
    """A certificate for `key`'s public key issued by a test CA (X25519 keys cannot self-sign)."""
    public = key.public_key()  # type: ignore[attr-defined]
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "recipient")]))
        .issuer_name(_CA_NAME)
        .public_key(public)
        .serial_number(4242)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
    )
    if with_skid:
        ext = (
            x509.SubjectKeyIdentifier(skid)
            if skid is not None
            else x509.SubjectKeyIdentifier.from_public_key(public)
        )
        builder = builder.add_extension(ext, critical=False)
    cert = builder.sign(_CA_KEY, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.DER)


def _rng(seed: int) -> Callable[[int], bytes]:
    generator = random.Random(seed)
    return generator.randbytes


def _reload(env: EnvelopedData) -> EnvelopedData:
    return EnvelopedData.load(env.dump())


@pytest.mark.parametrize("name", sorted(KEYS))
def test_round_trip(name: str) -> None:
    key = KEYS[name]
    cert = _cert(key)
    env = encrypt_certificate(cert, _rng(1))
    assert decrypt_certificate(_reload(env), key) == cert  # type: ignore[arg-type]
    assert env["version"].native == "v2"
    assert len(env["recipient_infos"]) == 1
    content = env["encrypted_content_info"]
    assert content["content_type"].native == "data"
    assert content["content_encryption_algorithm"]["algorithm"].native == "aes256_cbc"
    assert cert not in env.dump()


@pytest.mark.parametrize("name", sorted(KEYS))
def test_deterministic_given_the_random_source(name: str) -> None:
    """Content key, IV and ephemeral keys come from the injected source; only the RSA-OAEP seed
    is OpenSSL's own (RSA is never computed by hand)."""
    cert = _cert(KEYS[name])
    first, again = encrypt_certificate(cert, _rng(7)), encrypt_certificate(cert, _rng(7))
    content = first["encrypted_content_info"].dump()
    assert content == again["encrypted_content_info"].dump()
    assert (first.dump() == again.dump()) is not name.startswith("rsa")
    assert content != encrypt_certificate(cert, _rng(8))["encrypted_content_info"].dump()


def test_rsa_recipient_is_ktri_oaep_sha256_with_skid() -> None:
    key = KEYS["rsa2048"]
    cert = _cert(key, skid=b"\x01\x02\x03\x04")
    ri = encrypt_certificate(cert, _rng(2))["recipient_infos"][0]
    assert ri.name == "ktri"
    ktri = ri.chosen
    assert ktri["version"].native == "v2"
    assert ktri["rid"].name == "subject_key_identifier"
    assert ktri["rid"].chosen.native == b"\x01\x02\x03\x04"  # the certificate's SKID extension
    alg = ktri["key_encryption_algorithm"]
    assert alg["algorithm"].native == "rsaes_oaep"
    params = alg["parameters"]
    assert params["hash_algorithm"]["algorithm"].native == "sha256"
    assert params["mask_gen_algorithm"]["parameters"]["algorithm"].native == "sha256"
    # SHA-2 identifiers are written with absent parameters (RFC 5754 section 2).
    assert b"\x05\x00" not in alg["parameters"].dump()
    assert len(ktri["encrypted_key"].native) == 256


@pytest.mark.parametrize(
    ("name", "scheme"),
    [
        ("p256", "1.3.132.1.11.1"),
        ("p384", "1.3.132.1.11.2"),
        ("p521", "1.3.132.1.11.3"),
        ("x25519", "1.2.840.113549.1.9.16.3.19"),
        ("x448", "1.2.840.113549.1.9.16.3.21"),
    ],
)
def test_agreement_recipient_is_kari(name: str, scheme: str) -> None:
    key = KEYS[name]
    cert = _cert(key, with_skid=False)
    ri = encrypt_certificate(cert, _rng(3))["recipient_infos"][0]
    assert ri.name == "kari"
    kari = ri.chosen
    assert kari["version"].native == "v3"
    assert kari["originator"].name == "originator_key"
    assert kari["ukm"].native is None
    assert kari["key_encryption_algorithm"]["algorithm"].dotted == scheme
    assert kari["key_encryption_algorithm"]["parameters"].dump() == bytes.fromhex(
        "300b060960864801650304012d"  # id-aes256-wrap, parameters absent
    )
    rek = kari["recipient_encrypted_keys"][0]
    # No SKID extension: the RFC 5280 method 1 identifier of the key.
    assert rek["rid"].chosen["subject_key_identifier"].native == subject_key_identifier(_spki(key))
    assert len(rek["encrypted_key"].native) == 40  # AES key wrap of a 256-bit key


def test_method_1_key_identifier() -> None:
    key = KEYS["p256"]
    bits = key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert subject_key_identifier(_spki(key)) == hashlib.sha1(bits).digest()
    expected = x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest  # type: ignore[attr-defined]
    assert subject_key_identifier(_spki(key)) == expected
    with pytest.raises(DecodeError):
        subject_key_identifier(b"\x30\x03\x02\x01")


@given(content=st.binary(max_size=600), seed=st.integers(0, 2**32))
@settings(max_examples=40, deadline=None)
def test_any_content_round_trips(content: bytes, seed: int) -> None:
    for name in ("rsa2048", "p256", "x25519"):
        key = KEYS[name]
        env = _reload(envelope(content, _spki(key), _rng(seed)))
        assert decrypt_enveloped(env, key) == content  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(KEYS))
def test_wrong_key_does_not_decrypt(name: str) -> None:
    key = KEYS[name]
    other = {
        rsa.RSAPrivateKey: lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.EllipticCurvePrivateKey: lambda: ec.generate_private_key(key.curve),  # type: ignore[attr-defined]
        x25519.X25519PrivateKey: x25519.X25519PrivateKey.generate,
        x448.X448PrivateKey: x448.X448PrivateKey.generate,
    }
    make = next(f for t, f in other.items() if isinstance(key, t))
    env = encrypt_certificate(_cert(key), _rng(4))
    with pytest.raises(BadDataFormat):
        decrypt_certificate(_reload(env), make())  # type: ignore[arg-type]


def test_key_of_another_type_is_bad_alg() -> None:
    env = encrypt_certificate(_cert(KEYS["p256"]), _rng(5))
    with pytest.raises(BadAlg):
        decrypt_enveloped(_reload(env), KEYS["rsa2048"])  # type: ignore[arg-type]
    env = encrypt_certificate(_cert(KEYS["rsa2048"]), _rng(5))
    with pytest.raises(BadAlg):
        decrypt_enveloped(_reload(env), KEYS["p256"])  # type: ignore[arg-type]


def test_tampered_encrypted_key_does_not_decrypt() -> None:
    for name in ("rsa2048", "p256", "x448"):
        key = KEYS[name]
        env = encrypt_certificate(_cert(key), _rng(6))
        ri = env["recipient_infos"][0].chosen
        holder = ri if name.startswith("rsa") else ri["recipient_encrypted_keys"][0]
        wrapped = bytearray(holder["encrypted_key"].native)
        wrapped[5] ^= 0x10
        holder["encrypted_key"] = bytes(wrapped)
        with pytest.raises(BadDataFormat):
            decrypt_enveloped(EnvelopedData.load(env.dump(force=True)), key)  # type: ignore[arg-type]


def test_decrypted_content_must_be_a_certificate() -> None:
    key = KEYS["p384"]
    env = envelope(b"not a certificate", _spki(key), _rng(9))
    assert decrypt_enveloped(_reload(env), key) == b"not a certificate"  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        decrypt_certificate(_reload(env), key)  # type: ignore[arg-type]


def test_unsupported_recipient_keys_are_bad_alg() -> None:
    unsupported = {
        "ML-KEM": mlkem.MLKEM768PrivateKey.generate(),
        "Ed25519": ed25519.Ed25519PrivateKey.generate(),
        "secp256k1": ec.generate_private_key(ec.SECP256K1()),
    }
    for label, key in unsupported.items():
        with pytest.raises(BadAlg):
            check_recipient_key(_spki(key))
        with pytest.raises(BadAlg):
            envelope(b"x", _spki(key), _rng(1))
        assert label
    with pytest.raises(BadAlg):
        check_recipient_key(b"\x30\x00")
    for name in KEYS:
        check_recipient_key(_spki(KEYS[name]))


def test_short_random_source_is_refused() -> None:
    with pytest.raises(ValueError, match="random_bytes"):
        envelope(b"x", _spki(KEYS["p256"]), lambda n: b"\x00" * (n - 1))


# --- interoperability with the openssl CLI ------------------------------------------------------

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


def _write_key(path: Path, key: object) -> Path:
    pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    return path


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False)


@pytest.mark.interop
@needs_openssl
@pytest.mark.parametrize("name", OPENSSL_KEYS)
@pytest.mark.parametrize("with_skid", [True, False])
def test_openssl_decrypts_our_envelope(tmp_path: Path, name: str, with_skid: bool) -> None:
    key = KEYS[name]
    cert = _cert(key, with_skid=with_skid)
    env = encrypt_certificate(cert, _rng(11))
    wrapped = ContentInfo({"content_type": "enveloped_data", "content": env})
    (tmp_path / "env.der").write_bytes(wrapped.dump())
    key_path = _write_key(tmp_path / "key.pem", key)
    result = _openssl(
        "cms", "-decrypt", "-binary", "-inform", "DER", "-in", tmp_path / "env.der",
        "-inkey", key_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == cert


_OAEP = ["-keyopt", "rsa_padding_mode:oaep"]
_OPENSSL_ENCRYPT_OPTIONS = {
    "rsa-oaep-sha256": ("rsa", [*_OAEP, "-keyopt", "rsa_oaep_md:sha256"]),
    "rsa-oaep-sha1": ("rsa", _OAEP),
    "rsa-pkcs1": ("rsa", []),
    "ec-default-kdf": ("ec", []),
    "ec-sha256-kdf": ("ec", ["-keyopt", "ecdh_kdf_md:sha256"]),
    "ec-sha384-kdf": ("ec", ["-keyopt", "ecdh_kdf_md:sha384"]),
    "ec-sha512-kdf": ("ec", ["-keyopt", "ecdh_kdf_md:sha512"]),
}


@pytest.mark.interop
@needs_openssl
@pytest.mark.parametrize("variant", sorted(_OPENSSL_ENCRYPT_OPTIONS))
@pytest.mark.parametrize("cipher", ["-aes256", "-aes128"])
@pytest.mark.parametrize("keyid", [True, False])
def test_we_decrypt_openssl_envelopes(
    tmp_path: Path, variant: str, cipher: str, keyid: bool
) -> None:
    family, options = _OPENSSL_ENCRYPT_OPTIONS[variant]
    names = ["rsa2048"] if family == "rsa" else ["p256", "p384", "p521"]
    for name in names:
        key = KEYS[name]
        cert = x509.load_der_x509_certificate(_cert(key))
        cert_path = tmp_path / f"{name}.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "in.bin").write_bytes(_cert(KEYS["p256"]))
        result = _openssl(
            "cms", "-encrypt", "-binary", cipher, "-in", tmp_path / "in.bin",
            "-outform", "DER", "-out", tmp_path / "env.der", "-recip", cert_path,
            *(["-keyid"] if keyid else []), *options,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        content_info = ContentInfo.load((tmp_path / "env.der").read_bytes())
        assert content_info["content_type"].native == "enveloped_data"
        env = content_info["content"]
        assert decrypt_certificate(env, key) == (tmp_path / "in.bin").read_bytes()  # type: ignore[arg-type]


@pytest.mark.interop
@needs_openssl
def test_openssl_x25519_envelope_if_supported(tmp_path: Path) -> None:
    """RFC 8418 interop needs an openssl with X25519 in CMS (not 3.0); skipped where missing."""
    key = KEYS["x25519"]
    cert = _cert(key)
    env = encrypt_certificate(cert, _rng(12))
    wrapped = ContentInfo({"content_type": "enveloped_data", "content": env})
    (tmp_path / "env.der").write_bytes(wrapped.dump())
    key_path = _write_key(tmp_path / "key.pem", key)
    result = _openssl(
        "cms", "-decrypt", "-binary", "-inform", "DER", "-in", tmp_path / "env.der",
        "-inkey", key_path,
    )  # fmt: skip
    if result.returncode != 0:
        version = _openssl("version").stdout.decode().strip()
        pytest.skip(f"{version} cannot decrypt X25519 KeyAgreeRecipientInfo")
    assert result.stdout == cert


@pytest.mark.parametrize("seed_byte", [0x00, 0xFF, 0x80])
@pytest.mark.parametrize("name", ["p256", "p384", "p521"])
def test_extreme_random_sources_give_valid_ephemeral_keys(name: str, seed_byte: int) -> None:
    """The ephemeral scalar is reduced into [1, n-1] whatever the random bytes are."""
    key = KEYS[name]
    env = envelope(b"edge", _spki(key), lambda n: bytes([seed_byte]) * n)
    assert decrypt_enveloped(_reload(env), key) == b"edge"  # type: ignore[arg-type]
