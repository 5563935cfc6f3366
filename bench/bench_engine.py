"""In-process enrolments per second through the whole engine, and how much of that is crypto.

Run: `python bench/bench_engine.py` (add `--quick` for a fast, noisier run; `--no-profile` to skip
cProfile). One enrolment is ir + ip + certConf + pkiconf: a `ClientEngine` transaction driven by
`transfer.run` over `server_perform` into a `CmpServer` whose handlers (tests/cmp_pki.IssuingCA)
issue a real certificate from the test CA (ECDSA P-256). Messages cross as DER both ways, as over
HTTP. Profiles:

- `ecdsa-p256`: the client signs with its P-256 certificate, the server with its own; both
  validate the other's certificate path (RFC 5280) on every message.
- `pbm-10000` / `pbm-500`: PasswordBasedMac (SHA-256 OWF, HMAC-SHA256) with that iteration count.

The crypto share: an instrumented enrolment counts each primitive (PBM key derivation, HMAC,
ECDSA sign and verify, certificate path validation, certificate signing by the CA); each
primitive is then timed alone in the same run, and `crypto µs` is the sum of count x unit cost.
The rest (`engine µs`) is ASN.1 encoding/decoding, checks, the FSM, stores and handler glue.
"""

from __future__ import annotations

import argparse
import cProfile
import hmac
import os
import pstats
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from cmp_pki import FixedClock, IssuingCA, general_name, make_server, name, pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from sanscmp.engine import pbm, popo, protection
from sanscmp.engine.client import (
    CertRequestSpec,
    ClientConfig,
    ClientEngine,
    ClientTransaction,
    Phase,
)
from sanscmp.engine.handlers import CmpServer
from sanscmp.engine.protection import MacCredential, PbmScheme, SignatureCredential
from sanscmp.engine.server import ServerOptions
from sanscmp.engine.signature import default_algorithm, sign, verify
from sanscmp.engine.transfer import run, server_perform
from sanscmp.engine.trust import validate_signer

SUBJECT = name("bench enrolee")


@dataclass
class Profile:
    name: str
    credential: Callable[[], MacCredential | SignatureCredential]


def _signature_credential() -> SignatureCredential:
    identity = pki().clients["ec"]
    return SignatureCredential(identity.key, identity.certificate)


PROFILES = [
    Profile("ecdsa-p256", _signature_credential),
    Profile(
        "pbm-10000",
        lambda: MacCredential(
            b"client-1", pki().secrets[b"client-1"], PbmScheme(iterations=10_000)
        ),
    ),
    Profile(
        "pbm-500",
        lambda: MacCredential(b"client-1", pki().secrets[b"client-1"], PbmScheme(iterations=500)),
    ),
]


class Bench:
    """One server and one client engine for a profile; `enrol()` runs one whole enrolment."""

    def __init__(self, profile: Profile) -> None:
        self.clock = FixedClock()
        self.server: CmpServer = make_server(
            IssuingCA(), clock=self.clock, options=ServerOptions(), seed=profile.name
        )
        self.transfer = server_perform(self.server)
        self.client = ClientEngine(
            ClientConfig(
                clock=self.clock,
                random=os.urandom,
                credential=profile.credential(),
                recipient=general_name(pki().server.name),
                trust=pki().trust,
            )
        )
        self.key = ec.generate_private_key(ec.SECP256R1())  # enrolment, not key generation
        self.spec = CertRequestSpec(key=self.key, subject=SUBJECT)

    def enrol(self) -> ClientTransaction:
        transaction = self.client.ir([self.spec])
        run(transaction, self.transfer)
        if transaction.phase is not Phase.done:
            raise RuntimeError(f"enrolment failed: {transaction.result.error}")
        return transaction


# ---- timing ------------------------------------------------------------------------------------


def best_us(fn: Callable[[], object], budget: float, batches: int = 5) -> float:
    """Best µs per call over `batches` batches filling about `budget` seconds."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    per_batch = max(1, int(budget / batches / once))
    best = float("inf")
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(per_batch):
            fn()
        best = min(best, (time.perf_counter() - start) / per_batch)
    return best * 1e6


# ---- counting the primitives -------------------------------------------------------------------


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """Count calls of each crypto primitive the engine and the test CA make."""
    counts: Counter[str] = Counter()
    patches: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, attribute: str, label: str | Callable[..., str]) -> None:
        original = getattr(owner, attribute)

        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[label(*args, **kwargs) if callable(label) else label] += 1
            return original(*args, **kwargs)

        patches.append((owner, attribute, original))
        setattr(owner, attribute, counted)

    def derive_label(params: pbm.MacParameters, secret: bytes) -> str:
        return f"PBM derivation ({params.iterations} it)"

    wrap(pbm.MacParameters, "derive", derive_label)
    wrap(pbm, "hmac_value", "HMAC")
    for module in (protection, popo):
        wrap(module, "sign", "ECDSA P-256 sign")
        wrap(module, "verify", "ECDSA P-256 verify")
    wrap(protection, "validate_signer", "path validation")
    wrap(x509.CertificateBuilder, "sign", "CA certificate signing")
    try:
        yield counts
    finally:
        for owner, attribute, original in reversed(patches):
            setattr(owner, attribute, original)


def primitive_costs(budget: float) -> dict[str, float]:
    """µs per call of each primitive, alone, on realistic inputs."""
    data = os.urandom(900)  # about a protected part's size
    secret = pki().secrets[b"client-1"]
    salt = os.urandom(16)
    key = ec.generate_private_key(ec.SECP256R1())
    alg = default_algorithm(key)
    signature = sign(key, alg, data)
    public = key.public_key()
    identity = pki().clients["ec"]
    ca_key, ca_name = pki().ca_key, pki().ca_name
    builder = (
        x509.CertificateBuilder()
        .subject_name(SUBJECT)
        .issuer_name(ca_name)
        .public_key(public)
        .serial_number(12345)
        .not_valid_before(FixedClock()())
        .not_valid_after(FixedClock()().replace(year=2030))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    costs = {
        "HMAC": best_us(lambda: hmac.digest(b"k" * 32, data, "sha256"), budget),
        "ECDSA P-256 sign": best_us(lambda: sign(key, alg, data), budget),
        "ECDSA P-256 verify": best_us(lambda: verify(public, alg, data, signature), budget),
        "path validation": best_us(
            lambda: validate_signer(identity.certificate, [], pki().trust, FixedClock()()),
            budget,
        ),
        "CA certificate signing": best_us(lambda: builder.sign(ca_key, hashes.SHA256()), budget),
    }
    for iterations in (10_000, 500):
        costs[f"PBM derivation ({iterations} it)"] = best_us(
            lambda n=iterations: pbm.pbm_key(secret, salt, n, "sha256"), budget
        )
    return costs


# ---- report ------------------------------------------------------------------------------------

CRYPTO_MODULES = ("cryptography", "hashlib", "hmac", "_hashlib")
CRYPTO_FUNCTIONS = {
    "sign",
    "verify",
    "derive",
    "pbm_key",
    "hmac_value",
    "compute_mac",
    "verify_mac",
    "derive_key",
    "validate_signer",
    "digest",
    "decrypt_certificate",
    "encrypt_certificate",
}


def is_crypto(function: tuple[str, int, str]) -> bool:
    filename, _line, func = function
    if any(
        f"/{module}/" in filename or filename.endswith(f"/{module}.py") for module in CRYPTO_MODULES
    ):
        return True
    if "sanscmp" in filename or "/engine/" in filename:
        return func in CRYPTO_FUNCTIONS
    return func.startswith(("<built-in method _hashlib", "<method 'sign'", "<method 'verify'"))


def profile_run(bench: Bench, enrolments: int, top: int = 15) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(enrolments):
        bench.enrol()
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = [
        (function, cumulative, total, calls)
        for function, (calls, _primitive, total, cumulative, _callers) in stats.stats.items()  # type: ignore[attr-defined]
        if not is_crypto(function)
    ]
    for title, key in (("cumulative", 1), ("own (tottime)", 2)):
        print(f"\ncProfile, {enrolments} enrolments: top {top} non-crypto functions by {title}")
        print(f"{'µs/enrol cum':>12} {'µs/enrol own':>12} {'calls/enrol':>11}  function")
        for function, cumulative, total, calls in sorted(rows, key=lambda r: -r[key])[:top]:
            filename, line, func = function
            where = f"{_short(filename)}:{line}({func})" if line else func
            print(
                f"{cumulative / enrolments * 1e6:12.0f} {total / enrolments * 1e6:12.0f} "
                f"{calls / enrolments:11.1f}  {where}"
            )


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/engine/", "/tests/"):
        if marker in filename:
            return (
                filename.split(marker, 1)[1]
                if marker == "site-packages/"
                else (
                    ("engine/" if marker == "/engine/" else "tests/") + filename.split(marker, 1)[1]
                )
            )
    return filename


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run, noisier figures")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    args = parser.parse_args()
    budget = 1.0 if args.quick else 4.0

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs;"
        " one enrolment = ir/ip + certConf/pkiconf"
    )
    costs = primitive_costs(budget / 4)
    rows = []
    for profile in PROFILES:
        bench = Bench(profile)
        with counting() as counts:
            bench.enrol()
        total_us = best_us(bench.enrol, budget)
        crypto_us = sum(n * costs[label] for label, n in counts.items())
        rows.append((profile.name, total_us, crypto_us, dict(counts)))

    print()
    header = (
        f"{'profile':<11} {'enrol/s':>8} {'µs/enrol':>9} {'crypto µs':>10}"
        f" {'engine µs':>10} {'crypto share':>12}"
    )
    print(header)
    print("-" * len(header))
    for profile_name, total_us, crypto_us, _ in rows:
        print(
            f"{profile_name:<11} {1e6 / total_us:8.0f} {total_us:9.0f} {crypto_us:10.0f} "
            f"{total_us - crypto_us:10.0f} {crypto_us / total_us:11.0%}"
        )
    print("\nprimitives per enrolment x µs each (measured alone in this run):")
    for profile_name, _, _, counts in rows:
        parts = ", ".join(
            f"{n} x {label} {costs[label]:.0f}" for label, n in sorted(counts.items())
        )
        print(f"  {profile_name}: {parts}")

    if not args.no_profile:
        for profile in PROFILES[0], PROFILES[2]:
            print(f"\n== {profile.name} ==", end="")
            profile_run(Bench(profile), 50 if args.quick else 200)


if __name__ == "__main__":
    main()
