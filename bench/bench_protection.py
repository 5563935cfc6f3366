"""Cost of message protection: µs per protect() and verify_protection() next to the bare primitive.

Run: `python bench/bench_protection.py` (add `--quick` for a fast, noisier run). Each figure is the
best of 7 interleaved batches; "raw" is the primitive alone on the same protected-part bytes
(the PBM/PBKDF2 derivation plus one HMAC, or key.sign / key.verify), measured in the same run.
verify_protection for signatures includes choosing the signer and RFC 5280 path validation
(RSA-2048 root -> P-256 intermediate -> signer), so its ratio over a bare verify is larger.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from asn1crypto.x509 import Name
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa
from cryptography.x509.oid import NameOID

from sanscmp.engine.asn1 import PKIMessage
from sanscmp.engine.pbm import DerivedKeyCache, pbm_key
from sanscmp.engine.protection import (
    MacCredential,
    Pbmac1Scheme,
    PbmScheme,
    SignatureCredential,
    protect,
    protected_part_bytes,
    verify_protection,
)
from sanscmp.engine.signature import SigningKey, pss_algorithm, sign, verify
from sanscmp.engine.trust import _VALIDATIONS, TrustConfig, validate_signer

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
REF, SECRET = b"bench-ref", b"bench secret"


BATCHES = 7


def timed(budget: float, *fns: Callable[[], object]) -> list[float]:
    """Best µs per call of each function over 7 interleaved batches of about `budget` / 7 s each.

    Interleaving puts the functions compared in one row under the same machine load; the minimum,
    as `timeit` advises, because other processes only ever add time.
    """
    sizes = []
    for fn in fns:
        fn()
        start = time.perf_counter()
        fn()
        once = max(time.perf_counter() - start, 1e-7)
        sizes.append(max(1, int(budget / BATCHES / len(fns) / once)))
    best = [float("inf")] * len(fns)
    for _ in range(BATCHES):
        for index, (fn, size) in enumerate(zip(fns, sizes, strict=True)):
            start = time.perf_counter()
            for _ in range(size):
                fn()
            best[index] = min(best[index], (time.perf_counter() - start) / size * 1e6)
    return best


class Secrets:
    def secret_for(self, sender_kid: bytes | None) -> bytes | None:
        return SECRET if sender_kid == REF else None


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    cn: str, key: SigningKey, issuer: x509.Certificate | None, issuer_key: SigningKey, ca: bool
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.subject if issuer else _name(cn))
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(True, None), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    return builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]


@dataclass
class Row:
    name: str
    raw_protect: float
    protect: float
    raw_verify: float
    verify: float


def message() -> PKIMessage:
    return PKIMessage(
        {
            "header": {
                "pvno": 2,
                "sender": {"directory_name": {"": {}}},
                "recipient": {"directory_name": Name.load(_name("bench server").public_bytes())},
                "transactionID": os.urandom(16),
                "senderNonce": os.urandom(16),
            },
            "body": {"genm": [{"infoType": "caCerts"}]},
        }
    )


def bench_mac(name: str, scheme: PbmScheme | Pbmac1Scheme, budget: float) -> Row:
    credential = MacCredential(REF, SECRET, scheme)
    msg = message()
    protected = PKIMessage.load(protect(msg, credential, random_bytes=os.urandom).dump())
    data = protected_part_bytes(protected)
    salt = os.urandom(scheme.salt_length)
    if isinstance(scheme, PbmScheme):

        def raw() -> bytes:
            key = pbm_key(SECRET, salt, scheme.iterations, scheme.owf)
            return hmac.digest(key, data, scheme.mac)
    else:

        def raw() -> bytes:
            key = hashlib.pbkdf2_hmac(
                scheme.prf, SECRET, salt, scheme.iterations, scheme.key_length
            )
            return hmac.digest(key, data, scheme.mac)

    secrets = Secrets()
    raw_us, protect_us, verify_us = timed(
        budget,
        raw,
        lambda: protect(msg, credential, random_bytes=os.urandom),
        lambda: verify_protection(protected, now=NOW, mac_secrets=secrets),
    )
    return Row(name, raw_us, protect_us, raw_us, verify_us)


def bench_cache_hit(budget: float) -> Row:
    scheme = PbmScheme(iterations=10_000, salt=os.urandom(16))
    credential = MacCredential(REF, SECRET, scheme)
    cache = DerivedKeyCache()
    msg = message()
    protected = PKIMessage.load(protect(msg, credential, random_bytes=os.urandom).dump())
    data = protected_part_bytes(protected)
    secrets = Secrets()
    verify_protection(protected, now=NOW, mac_secrets=secrets, cache=cache)
    raw_us, protect_us, verify_us = timed(
        budget,
        lambda: hmac.digest(b"k" * 32, data, "sha256"),
        lambda: protect(msg, credential, random_bytes=os.urandom, cache=cache),
        lambda: verify_protection(protected, now=NOW, mac_secrets=secrets, cache=cache),
    )
    return Row("PBM sha256 10000, cache hit", raw_us, protect_us, raw_us, verify_us)


def bench_signature(
    name: str,
    key: SigningKey,
    pss: bool,
    pki: tuple[x509.Certificate, x509.Certificate, SigningKey],
    budget: float,
) -> tuple[Row, float]:
    root, inter, inter_key = pki
    cert = _cert(f"bench {name}", key, inter, inter_key, ca=False)
    credential = SignatureCredential(key, cert, (inter,), pss_algorithm("sha256") if pss else None)
    msg = message()
    protected = PKIMessage.load(protect(msg, credential, random_bytes=os.urandom).dump())
    alg = protected["header"]["protectionAlg"]
    data = protected_part_bytes(protected)
    value = protected["protection"].native
    public = key.public_key()
    trust = TrustConfig(anchors=(root,))
    sign_us, protect_us, verify_us, full_us, path_us = timed(
        budget,
        lambda: sign(key, alg, data),
        lambda: protect(msg, credential, random_bytes=os.urandom),
        lambda: verify(public, alg, data, value),  # type: ignore[arg-type]
        lambda: verify_protection(protected, now=NOW, trust=trust),
        lambda: (_VALIDATIONS.clear(), validate_signer(cert, [inter], trust, NOW)),
    )
    return Row(name, sign_us, protect_us, verify_us, full_us), path_us


def bench_derivation_loops(budget: float) -> tuple[float, float]:
    """The PBM loop over hashlib (as in pbm.py) vs over cryptography Hash objects, 10000 rounds."""
    salt = os.urandom(16)

    def with_hashlib() -> bytes:
        return pbm_key(SECRET, salt, 10_000, "sha256")

    def with_cryptography() -> bytes:
        algorithm = hashes.SHA256()
        h = hashes.Hash(algorithm)
        h.update(SECRET + salt)
        key = h.finalize()
        for _ in range(9_999):
            h = hashes.Hash(algorithm)
            h.update(key)
            key = h.finalize()
        return key

    assert with_hashlib() == with_cryptography()
    fast, slow = timed(budget, with_hashlib, with_cryptography)
    return fast, slow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter, noisier timings")
    args = parser.parse_args()
    budget = 0.25 if args.quick else 1.0

    root_key = rsa.generate_private_key(65537, 2048)
    root = _cert("bench root", root_key, None, root_key, ca=True)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _cert("bench intermediate", inter_key, root, root_key, ca=True)
    pki = (root, inter, inter_key)

    rows = [
        bench_mac("PBM sha256/hmac-sha256 500", PbmScheme(iterations=500), budget),
        bench_mac("PBM sha256/hmac-sha256 10000", PbmScheme(iterations=10_000), budget),
        bench_mac("PBMAC1 pbkdf2-sha256 10000", Pbmac1Scheme(iterations=10_000), budget),
        bench_cache_hit(budget),
    ]
    paths = {}
    rsa_key = rsa.generate_private_key(65537, 2048)
    signers: list[tuple[str, SigningKey, bool]] = [
        ("RSA-2048 PKCS#1 v1.5", rsa_key, False),
        ("RSA-2048 PSS", rsa_key, True),
        ("ECDSA P-256", ec.generate_private_key(ec.SECP256R1()), False),
        ("ECDSA P-384", ec.generate_private_key(ec.SECP384R1()), False),
        ("Ed25519", ed25519.Ed25519PrivateKey.generate(), False),
        ("ML-DSA-65", mldsa.MLDSA65PrivateKey.generate(), False),
    ]
    for name, key, pss in signers:
        row, path = bench_signature(name, key, pss, pki, budget)
        rows.append(row)
        paths[name] = path

    print(f"Python {sys.version.split()[0]}, µs per call (best of {BATCHES} batches)\n")
    print("| algorithm | raw sign/MAC | protect() | ratio | raw verify | verify() | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.name} | {r.raw_protect:.1f} | {r.protect:.1f} | {r.protect / r.raw_protect:.2f} "
            f"| {r.raw_verify:.1f} | {r.verify:.1f} | {r.verify / r.raw_verify:.2f} |"
        )
    print("\nPath validation alone (validate_signer, 3-certificate path, cache emptied first):")
    for name, path in paths.items():
        print(f"- {name} signer: {path:.1f} µs")
    fast, slow = bench_derivation_loops(budget)
    print(
        f"\nPBM derivation, 10000 x SHA-256: hashlib {fast:.0f} µs, cryptography Hash "
        f"{slow:.0f} µs -> hashlib is {slow / fast:.1f}x faster"
    )


if __name__ == "__main__":
    main()
