"""In-process enrolments per second on one core through the whole engine, next to the crypto floor.

Run: `python bench/bench_engine.py` (add `--quick` for a fast, noisier run; `--no-profile` to skip
cProfile). One enrolment is ir + ip + certConf + pkiconf: a `ClientEngine` transaction driven by
`transfer.run` over `server_perform` into a `CmpServer` whose handlers (tests/cmp_pki.IssuingCA)
issue a real certificate from the test CA (ECDSA P-256). Messages cross as DER both ways, as over
HTTP; there is no HTTP, no storage and no process boundary. Client and server run in one thread,
so enrolments/s is what one core does for both sides. Profiles:

- `ecdsa-p256`: the client signs with its P-256 certificate, the new key is P-256;
- `rsa-2048`: the client signs with its RSA-2048 certificate (PKCS#1 v1.5), the new key (and so
  its POPO signature) is RSA-2048;
- `pbm-10000` / `pbm-500`: PasswordBasedMac (SHA-256 OWF, HMAC-SHA256) with that iteration
  count, new key P-256.

The server always signs with its P-256 key and both sides validate the other's certificate path
(RFC 5280, one CA below the anchor) on every signed message.

The crypto floor: an instrumented enrolment counts each primitive operation (PBM key derivation,
HMAC, signature and verification by key type, the certificate-signature checks inside path
validation, the CA's signature on the new certificate); each primitive is then timed alone in the
same run on realistic inputs (a bare `cryptography` sign/verify, one HMAC, `pbm_key`'s loop), and
the floor is the sum of count x unit cost: the time an enrolment would take if only the crypto
ran. `engine/floor` is µs per enrolment over floor µs; the crypto share is its inverse.

The profile (cProfile, own time) groups the rest by module; built-in functions are charged to the
module that called them, except `cryptography` / `hashlib` calls, which stay crypto.
"""

from __future__ import annotations

import argparse
import cProfile
import hmac
import os
import pstats
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from cmp_pki import FixedClock, IssuingCA, general_name, make_server, name, pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sanscmp.engine import pbm, popo, protection, trust
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
from sanscmp.engine.transfer import run, server_perform
from sanscmp.engine.trust import validate_signer

SUBJECT = name("bench enrolee")


@dataclass
class Profile:
    name: str
    credential: Callable[[], MacCredential | SignatureCredential]
    new_key: Callable[[], Any]


def _signature_credential(kind: str) -> Callable[[], SignatureCredential]:
    def make() -> SignatureCredential:
        identity = pki().clients[kind]
        return SignatureCredential(identity.key, identity.certificate)

    return make


def _mac_credential(iterations: int) -> Callable[[], MacCredential]:
    return lambda: MacCredential(
        b"client-1", pki().secrets[b"client-1"], PbmScheme(iterations=iterations)
    )


def _p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _rsa2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


PROFILES = [
    Profile("ecdsa-p256", _signature_credential("ec"), _p256),
    Profile("rsa-2048", _signature_credential("rsa"), _rsa2048),
    Profile("pbm-10000", _mac_credential(10_000), _p256),
    Profile("pbm-500", _mac_credential(500), _p256),
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
        self.key = profile.new_key()  # made once: enrolment, not key generation, is measured
        self.spec = CertRequestSpec(key=self.key, subject=SUBJECT)

    def enrol(self) -> ClientTransaction:
        transaction = self.client.ir([self.spec])
        run(transaction, self.transfer)
        if transaction.phase is not Phase.done:
            raise RuntimeError(f"enrolment failed: {transaction.result.error}")
        return transaction


# ---- timing ------------------------------------------------------------------------------------


def best_us(fn: Callable[[], object], budget: float, batches: int = 5) -> float:
    """Best CPU µs per call over `batches` batches filling about `budget` seconds.

    Process CPU time, not wall time: the bench is single-threaded, so this is the cost on one
    core, and time other jobs take from this process's core does not count.
    """
    fn()
    start = time.process_time()
    fn()
    once = max(time.process_time() - start, 1e-6)
    per_batch = max(1, int(budget / batches / once))
    best = float("inf")
    for _ in range(batches):
        start = time.process_time()
        for _ in range(per_batch):
            fn()
        best = min(best, (time.process_time() - start) / per_batch)
    return best * 1e6


# ---- counting the primitives -------------------------------------------------------------------


def key_kind(key: Any) -> str:
    """ "ECDSA P-256", "RSA-2048", ...: the label of a key's signature primitive."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return {"secp256r1": "ECDSA P-256"}.get(key.curve.name, f"ECDSA {key.curve.name}")
    return type(key).__name__


@dataclass
class Counts:
    """What one enrolment did: floor primitives, and whole operations shown for information."""

    floor: Counter[str]
    info: Counter[str]


def uncached(function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)` with the path-validation cache emptied first: the cost of a miss."""
    trust._VALIDATIONS.clear()
    return function(*args)


@contextmanager
def counting() -> Iterator[Counts]:
    """Count the crypto primitives the engine and the test CA run, by key type."""
    counts = Counts(Counter(), Counter())
    patches: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, attribute: str, count: Callable[..., None]) -> None:
        original = getattr(owner, attribute)

        def counted(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            count(result, *args, **kwargs)
            return result

        patches.append((owner, attribute, original))
        setattr(owner, attribute, counted)

    def derived(_result: Any, params: pbm.MacParameters, _secret: bytes) -> None:
        counts.floor[f"PBM derivation ({params.iterations} it)"] += 1

    def mac(*_: Any) -> None:
        counts.floor["HMAC"] += 1

    def signed(_result: Any, key: Any, *_: Any) -> None:
        counts.floor[f"{key_kind(key)} sign"] += 1

    def verified(_result: Any, key: Any, *_: Any) -> None:
        counts.floor[f"{key_kind(key)} verify"] += 1

    def validated(_result: Any, *_: Any) -> None:
        counts.info["path validation (whole)"] += 1

    def validated_afresh(
        _result: Any, _cert: Any, _untrusted: Any, _config: Any, chain: Any
    ) -> None:
        # A cache miss: one signature check per certificate below the anchor, by its issuer's key.
        for issuer in chain[1:]:
            counts.floor[f"{key_kind(issuer.public_key())} verify"] += 1

    def issued(_result: Any, _builder: Any, private_key: Any, *_: Any, **__: Any) -> None:
        counts.info["CA certificate build + sign (whole)"] += 1
        counts.floor[f"{key_kind(private_key)} sign"] += 1

    wrap(pbm.MacParameters, "derive", derived)
    wrap(pbm, "hmac_value", mac)
    for module in (protection, popo):
        wrap(module, "sign", signed)
        wrap(module, "verify", verified)
    wrap(protection, "validate_signer", validated)
    wrap(trust._VALIDATIONS, "put", validated_afresh)
    wrap(x509.CertificateBuilder, "sign", issued)
    try:
        yield counts
    finally:
        for owner, attribute, original in reversed(patches):
            setattr(owner, attribute, original)


def primitive_costs(budget: float) -> dict[str, float]:
    """µs per call of each primitive alone: bare `cryptography` / `hashlib` on realistic inputs."""
    data = os.urandom(900)  # about a protected part's size
    secret = pki().secrets[b"client-1"]
    salt = os.urandom(16)
    ec_key, rsa_key = _p256(), pki().clients["rsa"].key
    ecdsa, pkcs1, sha256 = ec.ECDSA(hashes.SHA256()), padding.PKCS1v15(), hashes.SHA256()
    ec_signature = ec_key.sign(data, ecdsa)
    rsa_signature = rsa_key.sign(data, pkcs1, sha256)
    ec_public, rsa_public = ec_key.public_key(), rsa_key.public_key()
    identity = pki().clients["ec"]
    ca_key, ca_name = pki().ca_key, pki().ca_name
    builder = (
        x509.CertificateBuilder()
        .subject_name(SUBJECT)
        .issuer_name(ca_name)
        .public_key(ec_public)
        .serial_number(12345)
        .not_valid_before(FixedClock()())
        .not_valid_after(FixedClock()().replace(year=2030))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ec_public), critical=False)
    )
    costs = {
        "HMAC": best_us(lambda: hmac.digest(b"k" * 32, data, "sha256"), budget),
        "ECDSA P-256 sign": best_us(lambda: ec_key.sign(data, ecdsa), budget),
        "ECDSA P-256 verify": best_us(lambda: ec_public.verify(ec_signature, data, ecdsa), budget),
        "RSA-2048 sign": best_us(lambda: rsa_key.sign(data, pkcs1, sha256), budget),
        "RSA-2048 verify": best_us(
            lambda: rsa_public.verify(rsa_signature, data, pkcs1, sha256), budget
        ),
        "path validation (whole)": best_us(
            lambda: uncached(
                validate_signer, identity.certificate, [], pki().trust, FixedClock()()
            ),
            budget,
        ),
        "CA certificate build + sign (whole)": best_us(
            lambda: builder.sign(ca_key, hashes.SHA256()), budget
        ),
    }
    for iterations in (10_000, 500):
        costs[f"PBM derivation ({iterations} it)"] = best_us(
            lambda n=iterations: pbm.pbm_key(secret, salt, n, "sha256"), budget
        )
    return costs


# ---- profile: own time by module group ---------------------------------------------------------

# First match wins; a built-in function (file "~") matches on its own name (cryptography's Rust
# methods and hashlib's C functions name their module) or else is charged to its callers.
PROFILE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cryptography (Rust: crypto, X.509)", ("cryptography",)),
    ("hashlib / hmac (PBM, HMAC)", ("hashlib", "/hmac.py", "_hashlib", "pbm.py:pbm_key")),
    ("sanscmp.engine.asn1.der", ("/engine/asn1/der.py",)),
    ("asn1crypto", ("asn1crypto",)),
    ("sanscmp.engine.asn1 (other)", ("/engine/asn1/",)),
    ("transitions", ("transitions",)),
    ("sanscmp.engine (other)", ("/engine/",)),
    ("sanscmp.ca, sqlite3", ("/ca/", "sqlite3")),
    ("sanscmp.transport, sanscmp.app", ("/transport/", "/app/")),
    ("uvicorn, httptools, asyncio", ("uvicorn", "httptools", "asyncio", "uvloop")),
    ("test CA (tests/cmp_pki)", ("/tests/",)),
)
OTHER = "other (stdlib, builtins)"
CRYPTO_GROUPS = {PROFILE_GROUPS[0][0], PROFILE_GROUPS[1][0]}


def group_of(filename: str, function: str) -> str | None:
    """The group of a profiled function; `pbm_key` (the PBM loop over hashlib) counts as crypto."""
    text = f"{filename}:{function}" if filename != "~" else function
    for title, markers in PROFILE_GROUPS:
        if any(marker in text for marker in markers):
            return title
    return None


def grouped_own_time(stats: pstats.Stats) -> dict[str, float]:
    """Own (tottime) seconds per module group; built-ins are charged to their callers' groups."""
    groups: dict[str, float] = defaultdict(float)
    entries = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, own, _cum, callers) in entries.items():
        group = group_of(filename, function)
        if filename != "~" or group in CRYPTO_GROUPS or not callers:
            groups[group or OTHER] += own
            continue
        for (caller_file, _, caller_function), caller_stats in callers.items():
            groups[group_of(caller_file, caller_function) or OTHER] += caller_stats[2]
    return groups


def profile_run(bench: Bench, enrolments: int) -> pstats.Stats:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(enrolments):
        bench.enrol()
    profiler.disable()
    return pstats.Stats(profiler)


def print_groups(columns: list[tuple[str, float, dict[str, float]]]) -> None:
    """One row per group, one column per profile: µs per enrolment (share of profiled time).

    cProfile slows Python code far more than C, so shares are of profiled time and µs are those
    shares applied to the unprofiled µs per enrolment: an estimate, good for ranking.
    """
    titles = [title for title, _ in PROFILE_GROUPS] + [OTHER]
    print(f"\n{'own time by module group':<36}" + "".join(f"{c[0]:>18}" for c in columns))
    for title in titles:
        cells = []
        for _name, total_us, groups in columns:
            share = groups.get(title, 0.0) / sum(groups.values())
            cells.append(f"{share * total_us:9.0f} ({share:4.0%})")
        if any(groups.get(title, 0.0) for _, _, groups in columns):
            print(f"{title:<36}" + "".join(f"{cell:>18}" for cell in cells))


def print_top(stats: pstats.Stats, enrolments: int, top: int = 12) -> None:
    """The non-crypto functions with the most own time, with their cumulative time."""
    rows = [
        (function, cumulative, total, calls)
        for function, (calls, _primitive, total, cumulative, _callers) in stats.stats.items()  # type: ignore[attr-defined]
        if group_of(function[0], function[2]) not in CRYPTO_GROUPS
    ]
    print(f"{'µs/enrol own':>12} {'µs/enrol cum':>12} {'calls/enrol':>11}  function")
    for function, cumulative, total, calls in sorted(rows, key=lambda r: -r[2])[:top]:
        filename, line, func = function
        where = f"{short_path(filename)}:{line}({func})" if line else func
        print(
            f"{total / enrolments * 1e6:12.0f} {cumulative / enrolments * 1e6:12.0f} "
            f"{calls / enrolments:11.1f}  {where}"
        )


def short_path(filename: str) -> str:
    """A profiled file name without the install prefix."""
    if "/sanscmp/" in filename:
        return "sanscmp/" + filename.rsplit("/sanscmp/", 1)[1]
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    return re.sub(r".*/lib/python3\.\d+/", "", filename)  # the standard library


# ---- report ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run, noisier figures")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    args = parser.parse_args()
    budget = 1.0 if args.quick else 4.0

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, one thread (one core);"
        f" load average {os.getloadavg()[0]:.2f}; one enrolment = ir/ip + certConf/pkiconf"
    )
    costs = primitive_costs(budget / 4)
    rows = []
    for profile in PROFILES:
        bench = Bench(profile)
        with counting() as counts:
            bench.enrol()
        total_us = best_us(bench.enrol, budget)
        floor_us = sum(n * costs[label] for label, n in counts.floor.items())
        rows.append((profile.name, bench, total_us, floor_us, counts))

    print()
    header = (
        f"{'profile':<11} {'enrol/s/core':>12} {'µs/enrol':>9} {'floor µs':>9}"
        f" {'floor enrol/s':>13} {'engine/floor':>12} {'crypto share':>12}"
    )
    print(header)
    print("-" * len(header))
    for profile_name, _bench, total_us, floor_us, _counts in rows:
        print(
            f"{profile_name:<11} {1e6 / total_us:12.0f} {total_us:9.0f} {floor_us:9.0f}"
            f" {1e6 / floor_us:13.0f} {total_us / floor_us:11.1f}x {floor_us / total_us:11.0%}"
        )
    print("\ncrypto floor per enrolment: count x µs each (primitive alone, this run)")
    for profile_name, _bench, _total, _floor, counts in rows:
        parts = ", ".join(
            f"{n} x {label} {costs[label]:.0f}" for label, n in sorted(counts.floor.items())
        )
        print(f"  {profile_name}: {parts}")
    info = Counter[str]()
    for *_, counts in rows:
        info |= counts.info
    print(
        "  for comparison, whole operations: "
        + ", ".join(f"{label} {costs[label]:.0f} µs" for label in sorted(info))
    )

    if not args.no_profile:
        enrolments = 30 if args.quick else 150
        columns = []
        top_stats = None
        for profile_name, bench, total_us, _floor, _counts in rows:
            runs = enrolments // 5 if profile_name == "pbm-10000" else enrolments
            stats = profile_run(bench, runs)
            columns.append((profile_name, total_us, grouped_own_time(stats)))
            if profile_name == "ecdsa-p256":
                top_stats = (stats, runs)
        print_groups(columns)
        if top_stats is not None:
            print(f"\necdsa-p256, cProfile of {top_stats[1]} enrolments: top non-crypto own time")
            print_top(*top_stats)


if __name__ == "__main__":
    main()
