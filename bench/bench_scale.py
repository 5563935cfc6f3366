"""Cost per enrolment and memory as the stores grow: the curve from 1k to 1M certificates.

Run: `python bench/bench_scale.py` (about 20-30 minutes, a few GB of disk in the temp directory)
or `python bench/bench_scale.py --quick` (up to 10k, under a minute). Each series runs in its own
child process, so that its memory figure is its own.

What is grown, and how:

- Issued certificates (`--sizes`, default 1k, 10k, 100k, 1M): the CA's `SqliteStore` in a file
  (measured twice at each size, reopened with `synchronous=FULL`, the default, and with
  `NORMAL`) and in `":memory:"` (next to the engine's in-memory transaction and nonce stores:
  the all-in-memory wiring). Running a million enrolments would take hours, so the table is
  filled with one batched INSERT per 20k rows of realistic rows: 64 certificates really issued
  by the bench CA (`CertificateAuthority.issue`, the default profile, P-256 keys), each row one
  of them with its serial number bytes replaced by a fresh random 159-bit serial (same DER size,
  unique serial and fingerprint; the patched signature no longer verifies, which no store
  checks), random transactionIDs, notBefore spread over the past year, 5 % revoked.
- Open transactions (`--open`, default 1k, 10k, 100k): transactions left in waiting_certConf,
  each with its unconfirmed certificate and a remembered senderNonce, in the SQLite file store
  (FULL and NORMAL) and in the engine's `InMemoryTransactionStore` / `InMemoryNonceStore`. The
  record is a clone of a real one (an ir answered and never confirmed) with fresh IDs.

At each size:

- enrolments: `--enrolments` (default 200) real ones through the server path `sanscmp serve`
  uses (`app.wiring.build_endpoints`: `ProfileEndpoint.process` -> engine -> `CaService` ->
  `SqliteStore`), ir/ip then certConf/pkiconf, PBM-protected with 500 iterations (OpenSSL's
  default). Only the server's side is timed (`process` plus dumping the answer): median and p95
  µs per enrolment, and the median of each half (ir, certConf);
- store operations alone (median µs of `--ops` calls): add a certificate, look one up by serial
  and by fingerprint (random rows of the whole table), revoke one, save / load / delete a
  transaction, remember a nonce, and the expiry sweep (`expired(now)` with nothing due);
- memory: VmRSS of the process; the SQLite file size (database plus WAL).

"Median" is the lowest median of 5 consecutive rounds (the machine may be shared); p95 is over
all enrolments. Each table gives every figure's ratio to the first size's (1k): flat is 1.0.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sanscmp.app.config import Settings, load_settings
from sanscmp.app.provision import provision
from sanscmp.app.wiring import ProfileEndpoint, build_endpoints, load_authority
from sanscmp.ca.authority import CertificateRequest
from sanscmp.ca.store import IssuedCertificate, SqliteStore, certificate_row, transaction_row
from sanscmp.engine.client import CertRequestSpec, ClientConfig, ClientEngine
from sanscmp.engine.protection import MacCredential, PbmScheme
from sanscmp.engine.store import InMemoryNonceStore, InMemoryTransactionStore
from sanscmp.engine.transaction import Transaction
from sanscmp.engine.trust import TrustConfig

REF, SECRET = "bench-ref", "bench-secret"
SIZES = (1_000, 10_000, 100_000, 1_000_000)
OPEN_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
BATCH = 20_000  # rows per INSERT transaction while filling
OPEN_BATCH = 2_000  # open transactions per INSERT transaction (their rows are built first)
TEMPLATES = 64  # really issued certificates the fill rows are cut from
SERIAL_TOP = 1 << 158  # fill serials have 159 bits: always 20 DER octets, like the templates'

SERIES = {
    "certs-sqlite": "issued certificates, SQLite file",
    "certs-memory": "issued certificates, SQLite :memory: + engine in-memory stores",
    "open-sqlite": "open transactions, SQLite file",
    "open-memory": "open transactions, engine in-memory stores",
}


# ---- the measured process -------------------------------------------------------------------


def rss_mb() -> float:
    """Resident set size of this process (VmRSS), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def file_mb(path: Path | None) -> float:
    """Size of an SQLite database and its WAL, MB (0 for an in-memory one)."""
    if path is None:
        return 0.0
    files = (path, path.with_name(path.name + "-wal"))
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


ROUNDS = 5  # each series of samples is cut into this many consecutive rounds


def median_us(samples: list[float]) -> float:
    """The lowest median of `ROUNDS` consecutive rounds, µs: the machine is shared, and a burst
    of another job's work should spoil one round, not the figure."""
    size = max(1, len(samples) // ROUNDS)
    rounds = [samples[i : i + size] for i in range(0, len(samples) - size + 1, size)]
    return min(statistics.median(r) for r in rounds) * 1e6


def p95_us(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1e6


@dataclass
class Rig:
    """A provisioned CA directory, its endpoint wired around `store`, and a PBM client."""

    settings: Settings
    store: SqliteStore
    memory: bool  # engine in-memory transaction and nonce stores instead of the SQLite ones
    endpoint: ProfileEndpoint = field(init=False)
    client: ClientEngine = field(init=False)
    spec: CertRequestSpec = field(init=False)

    def __post_init__(self) -> None:
        self.endpoint = build_endpoints(self.settings, self.store)[""]
        if self.memory:
            self.endpoint.engine.config.transactions = InMemoryTransactionStore()
            self.endpoint.engine.config.nonces = InMemoryNonceStore()
        ca_cert = x509.load_pem_x509_certificate(self.settings.ca_certificate.read_bytes())
        self.client = ClientEngine(
            ClientConfig(
                clock=lambda: datetime.now(UTC),
                random=os.urandom,
                # 500 iterations: OpenSSL's default; 10000 would add ~12 ms of KDF per enrolment
                credential=MacCredential(REF.encode(), SECRET.encode(), PbmScheme(iterations=500)),
                trust=TrustConfig(anchors=(ca_cert,)),
            )
        )
        key = ec.generate_private_key(ec.SECP256R1())  # one key: enrolment, not key generation
        self.spec = CertRequestSpec(key=key, subject=x509.Name.from_rfc4514_string("CN=bench"))

    @property
    def transactions(self) -> Any:
        return self.endpoint.engine.config.transactions

    @property
    def nonces(self) -> Any:
        return self.endpoint.engine.config.nonces

    def exchange(self, der: bytes) -> tuple[bytes, float]:
        """The server's answer to one request and the seconds it took (process + dump)."""
        start = time.perf_counter()
        answer = self.endpoint.process(der).dump()
        return answer, time.perf_counter() - start

    def enrol(self) -> tuple[float, float]:
        """One enrolment: (server seconds for ir/ip, for certConf/pkiconf)."""
        transaction = self.client.ir([self.spec])
        answer, ir_s = self.exchange(transaction.request.dump())
        conf = transaction.receive(answer)
        assert conf is not None and conf["body"].name == "certConf"
        answer, conf_s = self.exchange(conf.dump())
        if transaction.receive(answer) is not None or transaction.result.error is not None:
            raise RuntimeError(f"enrolment failed: {transaction.result.error}")
        return ir_s, conf_s

    def open_transaction(self) -> bytes:
        """An ir answered and never confirmed: the transactionID left waiting for certConf."""
        transaction = self.client.ir([self.spec])
        answer, _ = self.exchange(transaction.request.dump())
        assert transaction.receive(answer) is not None
        return bytes(transaction.request["header"]["transactionID"].native)


class Rows:
    """Realistic issued-certificate rows cut from really issued templates."""

    def __init__(self, settings: Settings) -> None:
        authority = load_authority(settings)
        profile = settings.profiles["default"]
        now = datetime.now(UTC)
        self.templates: list[tuple[bytes, bytes, str]] = []  # (DER, serial octets, subject)
        for i in range(TEMPLATES):
            key = ec.generate_private_key(ec.SECP256R1())
            spki = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            subject = x509.Name.from_rfc4514_string(f"CN=device-{i:06d},O=bench")
            serial = self.serial()
            issued = authority.issue(CertificateRequest(spki, subject), profile, now, serial)
            der = issued.certificate.public_bytes(serialization.Encoding.DER)
            octets = serial.to_bytes(20, "big")
            assert der.count(octets) == 1
            self.templates.append((der, octets, subject.rfc4514_string()))
        self.rng = random.Random(7)

    @staticmethod
    def serial() -> int:
        return SERIAL_TOP | random.getrandbits(158)

    def certificate(self, serial: int) -> tuple[bytes, str]:
        """A template's DER with `serial` in place of its own, and its subject."""
        der, octets, subject = self.templates[serial % TEMPLATES]
        return der.replace(octets, serial.to_bytes(20, "big")), subject

    def record(self, serial: int, at: datetime, status: str = "active") -> IssuedCertificate:
        der, subject = self.certificate(serial)
        return IssuedCertificate(
            serial=serial,
            der=der,
            subject=subject,
            not_before=at,
            not_after=at + timedelta(days=365),
            profile="default",
            transaction_id=os.urandom(16),
            status=status,
        )


_INSERT_CERTIFICATE = (
    "INSERT INTO issued_certificate (serial, der, subject, not_before, not_after, profile, "
    "transaction_id, status, revoked_at, reason, fingerprint) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TRANSACTION = (
    "INSERT INTO cmp_transaction (transaction_id, client, request_type, pvno, expires_at, state, "
    "last_sender_nonce, pending_request, implicit_confirm, version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TRANSACTION_CERTIFICATE = (
    "INSERT INTO cmp_transaction_certificate (transaction_id, cert_req_id, position, certificate) "
    "VALUES (?, ?, ?, ?)"
)
_INSERT_NONCE = "INSERT INTO seen_nonce (nonce, keep_until) VALUES (?, ?)"


def _micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


class Sample:
    """A uniform sample (reservoir) of the filled rows, to look up and revoke at random."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.seen = 0
        self.rows: list[tuple[int, bytes]] = []  # (serial, fingerprint), not revoked
        self.transactions: list[bytes] = []  # open transactionIDs
        self.opened = 0
        self.rng = random.Random(11)

    def offer(self, serial: int, fingerprint: bytes) -> None:
        self.seen += 1
        self._keep(self.rows, self.seen, (serial, fingerprint))

    def offer_transaction(self, transaction_id: bytes) -> None:
        self.opened += 1
        self._keep(self.transactions, self.opened, transaction_id)

    def _keep(self, kept: list[Any], seen: int, item: Any) -> None:
        if len(kept) < self.size:
            kept.append(item)
        else:
            slot = self.rng.randrange(seen)
            if slot < self.size:
                kept[slot] = item

    def take(self) -> tuple[int, bytes]:
        """A sampled active row, removed from the sample (it is about to be revoked)."""
        return self.rows.pop(self.rng.randrange(len(self.rows)))

    def pick(self) -> tuple[int, bytes]:
        return self.rows[self.rng.randrange(len(self.rows))]


def fill_certificates(
    store: SqliteStore, rows: Rows, start: int, stop: int, total: int, sample: Sample
) -> None:
    """Insert rows `start` .. `stop`-1 of `total` (notBefore spread over the past year, in
    order), one transaction per `BATCH` rows, through the store's own connection. Rows are
    generated as SQLite consumes them, so that the fill leaves no garbage in the RSS figures."""
    first = datetime.now(UTC) - timedelta(days=366)
    step = timedelta(days=365) / total

    def batch(low: int, high: int) -> Iterator[tuple[Any, ...]]:
        for i in range(low, high):
            serial = rows.serial()
            der, subject = rows.certificate(serial)
            at = first + i * step
            revoked = rows.rng.random() < 0.05
            record = IssuedCertificate(
                serial=serial,
                der=der,
                subject=subject,
                not_before=at,
                not_after=at + timedelta(days=365),
                profile="default",
                transaction_id=os.urandom(16),
                status="revoked" if revoked else "active",
                revoked_at=at + timedelta(days=1) if revoked else None,
                reason=1 if revoked else None,
            )
            row = certificate_row(record)
            if not revoked:
                sample.offer(serial, row[-1])
            yield row

    for low in range(start, stop, BATCH):
        with store._write() as db:  # the bench's bulk path: one INSERT transaction per batch
            db.executemany(_INSERT_CERTIFICATE, batch(low, min(stop, low + BATCH)))


def clone(template: Transaction, rows: Rows) -> tuple[Transaction, IssuedCertificate]:
    """An open transaction like `template` with fresh IDs, and the certificate it waits on."""
    serial = rows.serial()
    record = rows.record(serial, datetime.now(UTC), "unconfirmed")
    transaction = replace(
        template,
        transaction_id=os.urandom(16),
        last_sender_nonce=os.urandom(16),
        issued={0: record.der},
        expires_at=datetime.now(UTC) + timedelta(hours=2),  # none expires during the run
    )
    return transaction, replace(record, transaction_id=transaction.transaction_id)


def fill_open(rig: Rig, template: Transaction, rows: Rows, count: int, sample: Sample) -> None:
    """Leave `count` more transactions waiting for certConf, each with its unconfirmed
    certificate and a remembered nonce: batched INSERTs for SQLite, `save`/`remember` for the
    in-memory stores."""
    now = datetime.now(UTC)
    keep = _micros(now + timedelta(hours=1))
    for low in range(0, count, OPEN_BATCH):
        certificates, transactions, issued, nonces = [], [], [], []
        for _ in range(min(OPEN_BATCH, count - low)):
            transaction, record = clone(template, rows)
            sample.offer_transaction(transaction.transaction_id)
            sample.offer(record.serial, record.fingerprint)
            certificates.append(certificate_row(record))
            nonce = os.urandom(16)
            if rig.memory:
                rig.transactions.save(transaction)
                rig.nonces.remember(nonce, now + timedelta(hours=1), now)
                continue
            transactions.append(transaction_row(transaction))
            issued.append((transaction.transaction_id, "0", 0, record.der))
            nonces.append((nonce, keep))
        with rig.store._write() as db:  # the bench's bulk path, as for certificates
            db.executemany(_INSERT_CERTIFICATE, certificates)
            db.executemany(_INSERT_TRANSACTION, transactions)
            db.executemany(_INSERT_TRANSACTION_CERTIFICATE, issued)
            db.executemany(_INSERT_NONCE, nonces)


# ---- measuring one point --------------------------------------------------------------------


def timed(calls: Iterator[Callable[[], object]]) -> float:
    """µs per call (`median_us` of the calls, in order)."""
    samples = []
    for call in calls:
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return median_us(samples)


def measure(
    rig: Rig, rows: Rows, sample: Sample, template: Transaction, args: Any
) -> dict[str, Any]:
    """Enrolments and store operations on the stores as they are now."""
    for _ in range(5):  # warm up: caches, the first expiry sweep
        rig.enrol()
    ir, conf = [], []
    for _ in range(args.enrolments):
        ir_s, conf_s = rig.enrol()
        ir.append(ir_s)
        conf.append(conf_s)
    enrol = [a + b for a, b in zip(ir, conf, strict=True)]

    n = args.ops
    now = datetime.now(UTC)
    store, transactions, nonces = rig.store, rig.transactions, rig.nonces
    fresh = [rows.record(rows.serial(), now) for _ in range(n)]
    lookups = [sample.pick() for _ in range(n)]
    # revoke random rows of the table while the sample lasts, else the ones just added
    victims = [sample.take() if len(sample.rows) > n else (r.serial, b"") for r in fresh]
    opened = [clone(template, rows)[0] for _ in range(n)]
    # transactions to load: random open ones where the series left some, else those just saved
    pool = sample.transactions or [t.transaction_id for t in opened]
    known = [pool[sample.rng.randrange(len(pool))] for _ in range(n)]
    ops = {
        "add": timed(lambda r=r: store.add(r) for r in fresh),
        "get": timed(lambda s=s: store.get(s) for s, _ in lookups),
        "get fp": timed(lambda f=f: store.get_by_fingerprint(f) for _, f in lookups),
        "revoke": timed(
            lambda s=s: store.set_status(s, "revoked", revoked_at=now, reason=1) for s, _ in victims
        ),
        "tx save": timed(lambda t=t: transactions.save(t) for t in opened),
        "tx load": timed(lambda t=t: transactions.load(t) for t in known),
        "tx delete": timed(lambda t=t: transactions.delete(t.transaction_id) for t in opened),
        "nonce": timed(
            lambda: nonces.remember(os.urandom(16), now + timedelta(hours=1), now) for _ in range(n)
        ),
        "sweep": timed(lambda: list(transactions.expired(now)) for _ in range(max(5, n // 10))),
    }
    return {
        "enrol": median_us(enrol),
        "enrol p95": p95_us(enrol),
        "ir": median_us(ir),
        "certConf": median_us(conf),
        **ops,
        "RSS MB": rss_mb(),
        "file MB": file_mb(store.path),
    }


# ---- one series per child process ------------------------------------------------------------


def child(args: Any) -> None:
    """Run one series and print one JSON line per measured point."""
    directory = Path(args.dir)
    provision(directory, pbm_reference=REF, pbm_secret=SECRET)
    settings = load_settings(directory)
    rows = Rows(settings)
    sizes_der = sorted(len(der) for der, _, _ in rows.templates)
    print(f"  certificates of {sizes_der[0]}-{sizes_der[-1]} bytes", file=sys.stderr, flush=True)
    sample = Sample()
    series = args.child
    sqlite = series.endswith("sqlite")
    path = directory / "scale.db"
    stores = ("FULL", "NORMAL") if sqlite else ("memory",)
    sizes = args.sizes if series.startswith("certs") else args.open

    def rig(synchronous: str) -> Rig:
        if sqlite:
            return Rig(settings, SqliteStore(path, synchronous=synchronous), memory=False)
        return Rig(settings, memory_store, memory=True)

    memory_store = SqliteStore(":memory:")
    template_rig = rig("FULL")
    template = template_rig.transactions.load(template_rig.open_transaction())
    assert template is not None and template.issued
    if sqlite:
        template_rig.store.close()
    current = 0
    for size in sizes:
        started = time.perf_counter()
        filler = template_rig if not sqlite else rig("OFF")
        if series.startswith("certs"):
            fill_certificates(filler.store, rows, current, size, sizes[-1], sample)
        else:
            fill_open(filler, template, rows, size - current, sample)
        if sqlite:
            filler.store.close()
        fill_s = time.perf_counter() - started
        current = size
        for synchronous in stores:
            measured = rig(synchronous) if sqlite else template_rig
            gc.collect()
            point = measure(measured, rows, sample, template, args)
            if sqlite:
                measured.store.close()
            label = f"SQLite file, synchronous={synchronous}" if sqlite else "in memory"
            record = {"series": series, "store": label, "size": size, "fill s": fill_s, **point}
            print(json.dumps(record), flush=True)
    memory_store.close()


# ---- the tables ---------------------------------------------------------------------------------

TIMES = (
    "enrol",
    "enrol p95",
    "ir",
    "certConf",
    "add",
    "get",
    "get fp",
    "revoke",
    "tx save",
    "tx load",
    "tx delete",
    "nonce",
    "sweep",
)


def size_label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def table(points: list[dict[str, Any]]) -> str:
    """Markdown: µs per size, memory and file size, then each time's ratio to the first size."""
    columns = [*TIMES, "RSS MB", "file MB"]
    lines = [
        "| size | " + " | ".join(columns) + " |",
        "|---:|" + "---:|" * len(columns),
    ]
    for point in points:
        cells = [f"{point[c]:.0f}" if point[c] >= 10 else f"{point[c]:.1f}" for c in columns]
        lines.append(f"| {size_label(point['size'])} | " + " | ".join(cells) + " |")
    base = points[0]
    lines.append(f"| **ratio to {size_label(base['size'])}** |" + " |" * len(columns))
    for point in points[1:]:
        cells = [f"{point[c] / base[c]:.2f}" for c in TIMES] + [
            f"{point[c] / base[c]:.1f}x" if base[c] else "" for c in ("RSS MB", "file MB")
        ]
        lines.append(f"| {size_label(point['size'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="up to 10k, fewer enrolments")
    parser.add_argument("--sizes", type=int, nargs="+", help="issued-certificate counts")
    parser.add_argument("--open", type=int, nargs="+", help="open-transaction counts")
    parser.add_argument("--enrolments", type=int, help="timed enrolments per point (200)")
    parser.add_argument("--ops", type=int, help="calls per store operation per point (200)")
    parser.add_argument("--series", nargs="+", choices=sorted(SERIES), default=list(SERIES))
    parser.add_argument("--child", choices=sorted(SERIES), help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    args.open = args.open or (QUICK_SIZES if args.quick else OPEN_SIZES)
    args.enrolments = args.enrolments or (30 if args.quick else 200)
    args.ops = args.ops or (50 if args.quick else 200)
    if args.child:
        child(args)
        return

    import sqlite3

    print(
        f"python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs;"
        f" {args.enrolments} enrolments and {args.ops} calls per store operation per point;"
        " times in µs (best of 5 rounds' medians; p95 over all), server side only"
    )
    for series in args.series:
        print(f"\n## {SERIES[series]}", flush=True)
        points: dict[str, list[dict[str, Any]]] = {}
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            command = [sys.executable, __file__, "--child", series, "--dir", tmp]
            command += ["--sizes", *map(str, args.sizes), "--open", *map(str, args.open)]
            command += ["--enrolments", str(args.enrolments), "--ops", str(args.ops)]
            with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
                assert process.stdout is not None
                for line in process.stdout:
                    point = json.loads(line)
                    points.setdefault(point["store"], []).append(point)
                    print(
                        f"  {point['store']}, {size_label(point['size'])}: filled in "
                        f"{point['fill s']:.1f} s, enrolment {point['enrol']:.0f} µs",
                        flush=True,
                    )
            if process.returncode:
                raise SystemExit(f"{series} failed ({process.returncode})")
        for store, store_points in points.items():
            print(f"\n### {SERIES[series]}: {store}\n\n{table(store_points)}", flush=True)


if __name__ == "__main__":
    main()
