"""The CA's durable stores: issued certificates, pending approvals, open transactions, seen nonces.

`CertificateStore` and `ApprovalStore` are what the CA needs beyond the engine's
`TransactionStore` and `NonceStore`; `SqliteStore` implements all four in one SQLite database file
so that open transactions survive a restart of the server (a certConf or pollReq sent after it
completes the transaction).

Choices, shared by any other implementation (a PostgreSQL one can reuse the SQL below):

- Times are stored as integer microseconds since 1970-01-01T00:00Z (`BIGINT`; PostgreSQL's
  `timestamptz` has the same resolution). Stores take timezone-aware datetimes only (a naive one is
  a `ValueError`: its instant is unknowable) and always return aware UTC datetimes.
- Serial numbers (positive, up to 160 bits: RFC 5280 allows 20 octets) are stored as 40 lowercase
  hexadecimal digits, zero-padded, so that text order is numeric order. SQL integers are 64-bit.
- certReqIds are ASN.1 INTEGERs chosen by the client, unbounded: stored as decimal text.
- Every multi-statement write runs in one explicit transaction (`BEGIN IMMEDIATE` in SQLite:
  the write lock is taken up front, so a writer waits for another instead of failing when it
  upgrades a read) and is rolled back on any error: nothing is ever half-written.
- The SQL is standard apart from the PRAGMAs: `INSERT ... ON CONFLICT ... DO UPDATE`, `excluded`,
  `LIMIT ... OFFSET`. For PostgreSQL replace `?` by `%s`, the `BLOB` type by `BYTEA` (the schema
  statements take it as `{blob}`) and `BEGIN IMMEDIATE` by `BEGIN`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol

from sanscmp.engine.fsm import State
from sanscmp.engine.store import NonceStore, TransactionStore
from sanscmp.engine.transaction import Transaction

__all__ = [
    "APPROVAL_STATES",
    "CERTIFICATE_STATUSES",
    "CRL_REASONS",
    "MAX_SERIAL",
    "SCHEMA_VERSION",
    "STATUS_TRANSITIONS",
    "ApprovalAlreadyDecided",
    "ApprovalStore",
    "CaStore",
    "CertificateStore",
    "DuplicateApproval",
    "DuplicateCertificate",
    "DuplicateSerial",
    "DurableStore",
    "InvalidStatusTransition",
    "IssuedCertificate",
    "PendingApproval",
    "SchemaVersionError",
    "SqliteStore",
    "StoreClosed",
    "StoreError",
    "UnknownApproval",
    "UnknownCertificate",
    "schema_statements",
]

# ---- records -----------------------------------------------------------------------------------

CERTIFICATE_STATUSES: Final = frozenset({"unconfirmed", "active", "revoked"})
"""unconfirmed: issued, certConf not yet received; active: confirmed (or implicitly confirmed)."""

STATUS_TRANSITIONS: Final = frozenset(
    {("unconfirmed", "active"), ("active", "revoked"), ("unconfirmed", "revoked")}
)
"""The only status changes `set_status` makes; anything else (revoking twice, un-revoking, ...) is
an `InvalidStatusTransition`."""

CRL_REASONS: Final = frozenset({0, 1, 2, 3, 4, 5, 6, 8, 9, 10})
"""CRLReason codes (RFC 5280 5.3.1); 7 is not assigned."""

APPROVAL_STATES: Final = frozenset({"pending", "approved", "rejected"})

MAX_SERIAL: Final = (1 << 160) - 1


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate this CA issued, and where it stands."""

    serial: int  # 0 <= serial < 2**160
    der: bytes
    subject: str  # RFC 4514
    not_before: datetime  # aware
    not_after: datetime  # aware
    profile: str
    transaction_id: bytes  # the CMP transaction that issued it
    status: str = "unconfirmed"  # one of CERTIFICATE_STATUSES
    revoked_at: datetime | None = None  # set exactly when revoked
    reason: int | None = None  # CRLReason code, only when revoked (None: no reason given)

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 of the DER: the key of `CertificateStore.get_by_fingerprint`."""
        return hashlib.sha256(self.der).digest()


@dataclass(frozen=True)
class PendingApproval:
    """A certificate request waiting for (or decided by) an operator."""

    transaction_id: bytes
    profile: str  # profile label
    request_der: bytes  # the request as received (the whole PKIMessage)
    summary: str  # one line for the operator: subjects, key types, who asked
    state: str  # one of APPROVAL_STATES
    reason: str  # the operator's reason ("" when none was given or still pending)
    created_at: datetime
    decided_at: datetime | None = None  # set exactly when no longer pending


# ---- errors ------------------------------------------------------------------------------------


class StoreError(Exception):
    """Anything a store refuses to do."""


class _Missing(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StoreClosed(StoreError):
    """The store was closed, or is used in another process than the one that opened it."""


class SchemaVersionError(StoreError):
    """The database was written by a newer sanscmp than this one."""


class DuplicateSerial(StoreError):
    """A certificate with this serial number is already recorded: draw another serial."""


class DuplicateCertificate(StoreError):
    """This very certificate (same DER) is already recorded under another serial."""


class UnknownCertificate(_Missing):
    """No certificate with this serial number."""


class InvalidStatusTransition(StoreError, ValueError):
    """The status change is not one of `STATUS_TRANSITIONS` (e.g. revoking twice)."""


class DuplicateApproval(StoreError):
    """An approval record already exists for this transactionID."""


class UnknownApproval(_Missing):
    """No approval record for this transactionID."""


class ApprovalAlreadyDecided(StoreError, ValueError):
    """Only a pending request can be approved or rejected."""


# ---- interfaces --------------------------------------------------------------------------------


class CertificateStore(Protocol):
    """The certificates the CA issued; serial numbers are unique."""

    def add(self, record: IssuedCertificate) -> None:
        """Record a newly issued certificate; `DuplicateSerial` if the serial is taken."""
        ...

    def get(self, serial: int) -> IssuedCertificate | None:
        """The certificate with this serial, or None (also for serials no CA could issue)."""
        ...

    def get_by_fingerprint(self, sha256: bytes) -> IssuedCertificate | None:
        """The certificate whose DER has this SHA-256 digest, or None."""
        ...

    def set_status(
        self,
        serial: int,
        status: str,
        *,
        revoked_at: datetime | None = None,
        reason: int | None = None,
    ) -> None:
        """Move a certificate along `STATUS_TRANSITIONS`; "revoked" needs `revoked_at` (and takes a
        CRL reason code). `UnknownCertificate`, `InvalidStatusTransition`, or `ValueError` for
        arguments that do not fit the status."""
        ...

    def list_certificates(
        self, *, status: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[IssuedCertificate]:
        """Certificates (with this status), newest first (by notBefore, then serial)."""
        ...

    def count_certificates(self, *, status: str | None = None) -> int:
        """How many certificates (with this status) are recorded."""
        ...


class ApprovalStore(Protocol):
    """Requests waiting for an operator's decision (profiles with manual approval)."""

    def add_pending(
        self,
        transaction_id: bytes,
        profile: str,
        request_der: bytes,
        summary: str,
        created_at: datetime,
    ) -> PendingApproval:
        """Queue a request for approval; `DuplicateApproval` if this transaction has a record."""
        ...

    def get_pending(self, transaction_id: bytes) -> PendingApproval | None:
        """The approval record of this transaction (whatever its state), or None."""
        ...

    def decide_pending(
        self, transaction_id: bytes, approved: bool, reason: str, decided_at: datetime
    ) -> PendingApproval:
        """Approve or reject a pending request; the decided record. `UnknownApproval`, or
        `ApprovalAlreadyDecided` if it is not pending any more."""
        ...

    def list_pending(self, *, state: str | None = None) -> list[PendingApproval]:
        """Approval records (in this state), oldest first."""
        ...


class CaStore(CertificateStore, ApprovalStore, Protocol):
    """Everything the CA service needs from storage."""


class DurableStore(TransactionStore, NonceStore, CaStore, Protocol):
    """One store for the engine and the CA, as the server wires it."""

    def close(self) -> None:
        """Release the database; the store cannot be used afterwards."""
        ...


# ---- encodings ---------------------------------------------------------------------------------

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_NO_LIMIT: Final = (1 << 63) - 1  # LIMIT without a bound, in SQL both SQLite and PostgreSQL take


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch (UTC) of an aware datetime."""
    if moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: stores take timezone-aware times only")
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _maybe_moment(micros: int | None) -> datetime | None:
    return None if micros is None else _moment(micros)


def _serial_text(serial: int) -> str:
    """The stored form of a serial number; `ValueError` outside 0 .. 2**160-1."""
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 <= serial <= MAX_SERIAL:
        raise ValueError(f"serial number {serial!r} is not in 0 .. 2**160-1")
    return format(serial, "040x")


def _state(name: str) -> str:
    """The stored state name as the engine's `State` where it is one."""
    try:
        return State(name)
    except ValueError:
        return name


# ---- schema ------------------------------------------------------------------------------------

SCHEMA_VERSION: Final = 1
"""The schema this code writes; `_MIGRATIONS[n - 1]` takes a database from version n-1 to n."""

_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        # Open transactions (engine `Transaction`); closed ones are deleted.
        """CREATE TABLE cmp_transaction (
            transaction_id    {blob}  NOT NULL PRIMARY KEY,
            client            {blob}  NOT NULL,
            request_type      TEXT    NOT NULL,
            pvno              INTEGER NOT NULL,
            expires_at        BIGINT  NOT NULL,
            state             TEXT    NOT NULL,
            last_sender_nonce {blob}  NOT NULL,
            pending_request   {blob}  NOT NULL,
            implicit_confirm  BOOLEAN NOT NULL,
            version           BIGINT  NOT NULL
        )""",
        "CREATE INDEX cmp_transaction_expires_at ON cmp_transaction (expires_at)",
        # `Transaction.issued`: certReqId -> certificate DER, in the dict's order (`position`).
        """CREATE TABLE cmp_transaction_certificate (
            transaction_id {blob}  NOT NULL
                REFERENCES cmp_transaction (transaction_id) ON DELETE CASCADE,
            cert_req_id    TEXT    NOT NULL,
            position       INTEGER NOT NULL,
            certificate    {blob}  NOT NULL,
            PRIMARY KEY (transaction_id, cert_req_id)
        )""",
        # senderNonces seen, kept until `keep_until`.
        """CREATE TABLE seen_nonce (
            nonce      {blob} NOT NULL PRIMARY KEY,
            keep_until BIGINT NOT NULL
        )""",
        "CREATE INDEX seen_nonce_keep_until ON seen_nonce (keep_until)",
        """CREATE TABLE issued_certificate (
            serial         TEXT    NOT NULL PRIMARY KEY CHECK (length(serial) = 40),
            fingerprint    {blob}  NOT NULL UNIQUE,
            der            {blob}  NOT NULL,
            subject        TEXT    NOT NULL,
            not_before     BIGINT  NOT NULL,
            not_after      BIGINT  NOT NULL,
            profile        TEXT    NOT NULL,
            transaction_id {blob}  NOT NULL,
            status         TEXT    NOT NULL CHECK (status IN ('unconfirmed', 'active', 'revoked')),
            revoked_at     BIGINT,
            reason         INTEGER CHECK (reason BETWEEN 0 AND 10 AND reason <> 7),
            CHECK ((status = 'revoked') = (revoked_at IS NOT NULL)),
            CHECK (status = 'revoked' OR reason IS NULL)
        )""",
        "CREATE INDEX issued_certificate_listing ON issued_certificate (not_before, serial)",
        "CREATE INDEX issued_certificate_status ON issued_certificate (status, not_before, serial)",
        "CREATE INDEX issued_certificate_transaction ON issued_certificate (transaction_id)",
        """CREATE TABLE pending_approval (
            transaction_id {blob} NOT NULL PRIMARY KEY,
            profile        TEXT   NOT NULL,
            request_der    {blob} NOT NULL,
            summary        TEXT   NOT NULL,
            state          TEXT   NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
            reason         TEXT   NOT NULL,
            created_at     BIGINT NOT NULL,
            decided_at     BIGINT,
            CHECK ((state = 'pending') = (decided_at IS NULL))
        )""",
        "CREATE INDEX pending_approval_state ON pending_approval (state, created_at)",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

_SCHEMA_VERSION_TABLE: Final = """CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER NOT NULL PRIMARY KEY,
    applied_at BIGINT  NOT NULL
)"""


def schema_statements(blob_type: str = "BLOB") -> list[str]:
    """Every DDL statement of the current schema, with `blob_type` for binary columns
    (`BYTEA` for PostgreSQL)."""
    return [_SCHEMA_VERSION_TABLE] + [
        statement.format(blob=blob_type) for migration in _MIGRATIONS for statement in migration
    ]


# ---- SQL ---------------------------------------------------------------------------------------

_TRANSACTION_COLUMNS: Final = (
    "transaction_id",
    "client",
    "request_type",
    "pvno",
    "expires_at",
    "state",
    "last_sender_nonce",
    "pending_request",
    "implicit_confirm",
    "version",
)
_SAVE_TRANSACTION: Final = (
    f"INSERT INTO cmp_transaction ({', '.join(_TRANSACTION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _TRANSACTION_COLUMNS)}) "
    "ON CONFLICT (transaction_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _TRANSACTION_COLUMNS[1:])
)
_SELECT_TRANSACTIONS: Final = (
    "SELECT "
    + ", ".join(f"t.{c}" for c in _TRANSACTION_COLUMNS)
    + ", c.cert_req_id, c.certificate "
    "FROM cmp_transaction AS t LEFT JOIN cmp_transaction_certificate AS c "
    "ON c.transaction_id = t.transaction_id "
)
_TRANSACTION_ORDER: Final = " ORDER BY t.expires_at, t.transaction_id, c.position"

_REMEMBER_NONCE: Final = (
    "INSERT INTO seen_nonce (nonce, keep_until) VALUES (?, ?) "
    "ON CONFLICT (nonce) DO UPDATE SET keep_until = excluded.keep_until "
    "WHERE seen_nonce.keep_until <= ?"
)  # one row changed: new, or known but past its deadline; none: a replay

_CERTIFICATE_COLUMNS: Final = (
    "serial, der, subject, not_before, not_after, profile, transaction_id, status, revoked_at, "
    "reason"
)
_APPROVAL_COLUMNS: Final = (
    "transaction_id, profile, request_der, summary, state, reason, created_at, decided_at"
)


def certificate_row(record: IssuedCertificate) -> tuple[Any, ...]:
    """The issued_certificate columns of a record, then its fingerprint, as `add` inserts them."""
    return (
        _serial_text(record.serial),
        record.der,
        record.subject,
        _micros(record.not_before),
        _micros(record.not_after),
        record.profile,
        record.transaction_id,
        record.status,
        None if record.revoked_at is None else _micros(record.revoked_at),
        record.reason,
        record.fingerprint,
    )


def transaction_row(t: Transaction) -> tuple[Any, ...]:
    """The cmp_transaction columns of a record, in the order of the save statement."""
    return (
        t.transaction_id,
        t.client,
        t.request_type,
        t.pvno,
        _micros(t.expires_at),
        str(t.state),
        t.last_sender_nonce,
        t.pending_request,
        bool(t.implicit_confirm),
        t.version,
    )


def _certificate(row: Sequence[Any]) -> IssuedCertificate:
    return IssuedCertificate(
        serial=int(row[0], 16),
        der=bytes(row[1]),
        subject=str(row[2]),
        not_before=_moment(row[3]),
        not_after=_moment(row[4]),
        profile=str(row[5]),
        transaction_id=bytes(row[6]),
        status=str(row[7]),
        revoked_at=_maybe_moment(row[8]),
        reason=None if row[9] is None else int(row[9]),
    )


def _approval(row: Sequence[Any]) -> PendingApproval:
    return PendingApproval(
        transaction_id=bytes(row[0]),
        profile=str(row[1]),
        request_der=bytes(row[2]),
        summary=str(row[3]),
        state=str(row[4]),
        reason=str(row[5]),
        created_at=_moment(row[6]),
        decided_at=_maybe_moment(row[7]),
    )


def _transactions(rows: Sequence[Sequence[Any]]) -> list[Transaction]:
    """Records from `_SELECT_TRANSACTIONS` rows: one per issued certificate (or one with NULLs)."""
    records = []
    width = len(_TRANSACTION_COLUMNS)
    for _tid, group in itertools.groupby(rows, key=lambda row: bytes(row[0])):
        group_rows = list(group)
        first = group_rows[0]
        issued = {
            int(row[width]): bytes(row[width + 1]) for row in group_rows if row[width] is not None
        }
        records.append(
            Transaction(
                transaction_id=bytes(first[0]),
                client=bytes(first[1]),
                request_type=str(first[2]),
                pvno=int(first[3]),
                expires_at=_moment(first[4]),
                state=_state(str(first[5])),
                last_sender_nonce=bytes(first[6]),
                issued=issued,
                pending_request=bytes(first[7]),
                implicit_confirm=bool(first[8]),
                version=int(first[9]),
            )
        )
    return records


def _check_certificate(record: IssuedCertificate) -> None:
    _serial_text(record.serial)
    if record.status not in CERTIFICATE_STATUSES:
        raise ValueError(f"unknown certificate status {record.status!r}")
    _check_status_arguments(record.status, record.revoked_at, record.reason)
    for moment in (record.not_before, record.not_after):
        _micros(moment)


def _check_status_arguments(status: str, revoked_at: datetime | None, reason: int | None) -> None:
    if status == "revoked":
        if revoked_at is None:
            raise ValueError("a revoked certificate needs its revocation time")
        if reason is not None and reason not in CRL_REASONS:
            raise ValueError(f"{reason!r} is not a CRLReason code")
    elif revoked_at is not None or reason is not None:
        raise ValueError(f"revocation time and reason only go with status revoked, not {status}")


# ---- SQLite ------------------------------------------------------------------------------------

_SYNCHRONOUS: Final = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})


class SqliteStore:
    """Transactions, nonces, certificates and approvals in one SQLite database file (WAL mode).

    One connection per instance. Open one instance per process (a uvicorn worker) *after* any
    fork: a store used in a child of the process that opened it raises `StoreClosed`. Several
    processes share the file safely: SQLite serialises writers (a writer waits up to
    `busy_timeout` seconds for another) while readers go on in parallel in WAL mode. Threads of one
    process may share an instance (the connection is opened with `check_same_thread=False`); a
    lock serialises its use, so the store never sees two statements of one connection interleave.

    `synchronous="FULL"` (the default) syncs the WAL at every commit, so that a record survives
    a power loss, not only a crash of the process; "NORMAL" survives a killed process (SIGKILL)
    but may lose the last commits to a power cut, and is faster.

    Seen nonces are pruned every `prune_every` calls of `remember` (and at the first), with an
    indexed DELETE; `prune_nonces` does it on demand.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        synchronous: str = "FULL",
        prune_every: int = 256,
    ) -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {sorted(_SYNCHRONOUS)}")
        if prune_every < 1:
            raise ValueError("prune_every must be at least 1")
        self.path = Path(path) if str(path) != ":memory:" else None
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._prune_every = prune_every
        self._remembered = 0
        self._units = 0  # depth of unit_of_work blocks
        db = sqlite3.connect(
            str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")  # persistent; ":memory:" stays in memory
            db.execute("PRAGMA foreign_keys = ON")
            db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self._db: sqlite3.Connection | None = db
            self._migrate()
        except BaseException:
            db.close()
            self._db = None
            raise

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent); the last one to close checkpoints the WAL."""
        with self._lock:
            if self._db is not None and os.getpid() == self._pid:
                self._db.close()
            self._db = None

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        with self._lock:
            row = self._connection().execute("SELECT MAX(version) FROM schema_version").fetchone()
            return int(row[0] or 0)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreClosed("the store is closed")
        if os.getpid() != self._pid:
            raise StoreClosed("a SqliteStore cannot cross fork(): open one in each process")
        return self._db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: its own transaction, or a savepoint inside `unit_of_work`'s."""
        with self._lock:
            db = self._connection()
            if not self._units:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                return
            if not db.in_transaction:
                db.execute("BEGIN IMMEDIATE")  # the unit's first write takes the write lock
            db.execute("SAVEPOINT write")
            try:
                yield db
                db.execute("RELEASE write")
            except BaseException:
                db.execute("ROLLBACK TO write")
                db.execute("RELEASE write")
                raise

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """Commit every write of the block at once (e.g. one CMP request's nonce, certificate and
        transaction): one WAL sync instead of one per write, and all or nothing. The write lock is
        taken at the first write and held to the end of the block; nested units join the outer."""
        with self._lock:
            self._units += 1
            try:
                yield
            except BaseException:
                if self._units == 1 and self._db is not None and self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            else:
                if self._units == 1 and self._db is not None and self._db.in_transaction:
                    self._db.execute("COMMIT")
            finally:
                self._units -= 1

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute(_SCHEMA_VERSION_TABLE)
            current = int(db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)
            if current > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"database schema version {current} is newer than this sanscmp's "
                    f"({SCHEMA_VERSION}): upgrade sanscmp"
                )
            now = _micros(datetime.now(UTC))
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version - 1]:
                    db.execute(statement.format(blob="BLOB"))
                db.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, now)
                )

    # -- TransactionStore --------------------------------------------------------------------

    def load(self, transaction_id: bytes) -> Transaction | None:
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    _SELECT_TRANSACTIONS + "WHERE t.transaction_id = ?" + _TRANSACTION_ORDER,
                    (transaction_id,),
                )
                .fetchall()
            )
        records = _transactions(rows)
        return records[0] if records else None

    def save(self, transaction: Transaction) -> None:
        t = transaction
        row = transaction_row(t)
        issued = [
            (t.transaction_id, str(cert_req_id), position, der)
            for position, (cert_req_id, der) in enumerate(t.issued.items())
        ]
        with self._write() as db:
            db.execute(_SAVE_TRANSACTION, row)
            db.execute(
                "DELETE FROM cmp_transaction_certificate WHERE transaction_id = ?",
                (t.transaction_id,),
            )
            db.executemany(
                "INSERT INTO cmp_transaction_certificate "
                "(transaction_id, cert_req_id, position, certificate) VALUES (?, ?, ?, ?)",
                issued,
            )

    def delete(self, transaction_id: bytes) -> None:
        with self._write() as db:  # the certificates go with it (ON DELETE CASCADE)
            db.execute("DELETE FROM cmp_transaction WHERE transaction_id = ?", (transaction_id,))

    def expired(self, now: datetime) -> Iterator[Transaction]:
        """Records with `expires_at <= now`, soonest first; read at once (the caller may save
        and delete while iterating)."""
        deadline = _micros(now)
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    _SELECT_TRANSACTIONS + "WHERE t.expires_at <= ?" + _TRANSACTION_ORDER,
                    (deadline,),
                )
                .fetchall()
            )
        return iter(_transactions(rows))

    def count_transactions(self) -> int:
        """How many open transactions are stored."""
        with self._lock:
            row = self._connection().execute("SELECT COUNT(*) FROM cmp_transaction").fetchone()
            return int(row[0])

    # -- NonceStore ---------------------------------------------------------------------------

    def remember(self, nonce: bytes, until: datetime, now: datetime) -> bool:
        keep_until, at = _micros(until), _micros(now)
        with self._write() as db:
            if self._remembered % self._prune_every == 0:
                self._prune(at)
            self._remembered += 1
            cursor = db.execute(_REMEMBER_NONCE, (nonce, keep_until, at))
            return cursor.rowcount == 1

    def prune_nonces(self, now: datetime) -> int:
        """Forget nonces whose deadline is at or before `now`; how many were forgotten."""
        at = _micros(now)
        with self._write():
            return self._prune(at)

    def _prune(self, at: int) -> int:
        cursor = self._connection().execute("DELETE FROM seen_nonce WHERE keep_until <= ?", (at,))
        return cursor.rowcount

    def count_nonces(self) -> int:
        """How many nonces are remembered (including any past their deadline, not yet pruned)."""
        with self._lock:
            row = self._connection().execute("SELECT COUNT(*) FROM seen_nonce").fetchone()
            return int(row[0])

    # -- CertificateStore ---------------------------------------------------------------------

    def add(self, record: IssuedCertificate) -> None:
        _check_certificate(record)
        row = certificate_row(record)
        with self._write() as db:
            try:
                cursor = db.execute(
                    f"INSERT INTO issued_certificate ({_CERTIFICATE_COLUMNS}, fingerprint) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (serial) DO NOTHING",
                    row,
                )
            except sqlite3.IntegrityError as exc:
                if self.get_by_fingerprint(record.fingerprint) is not None:
                    raise DuplicateCertificate(
                        f"certificate {record.fingerprint.hex()} is recorded under another serial"
                    ) from exc
                raise StoreError(f"certificate {record.serial:#x} not recorded: {exc}") from exc
            if cursor.rowcount != 1:
                raise DuplicateSerial(f"serial number {record.serial:#x} is already taken")

    def get(self, serial: int) -> IssuedCertificate | None:
        try:
            key = _serial_text(serial)
        except ValueError:
            return None  # e.g. a serial named in an rr: not one of ours
        return self._certificate_where("serial = ?", key)

    get_certificate = get  # the operator CLI's name for it

    def get_by_fingerprint(self, sha256: bytes) -> IssuedCertificate | None:
        return self._certificate_where("fingerprint = ?", sha256)

    def _certificate_where(self, condition: str, value: object) -> IssuedCertificate | None:
        with self._lock:
            row = (
                self._connection()
                .execute(
                    f"SELECT {_CERTIFICATE_COLUMNS} FROM issued_certificate WHERE {condition}",
                    (value,),
                )
                .fetchone()
            )
        return None if row is None else _certificate(row)

    def set_status(
        self,
        serial: int,
        status: str,
        *,
        revoked_at: datetime | None = None,
        reason: int | None = None,
    ) -> None:
        sources = sorted(old for old, new in STATUS_TRANSITIONS if new == status)
        if not sources:
            raise InvalidStatusTransition(f"no certificate ever becomes {status!r}")
        _check_status_arguments(status, revoked_at, reason)
        try:
            key = _serial_text(serial)
        except ValueError:
            raise UnknownCertificate(f"no certificate with serial number {serial!r}") from None
        revoked = None if revoked_at is None else _micros(revoked_at)
        with self._write() as db:
            cursor = db.execute(
                "UPDATE issued_certificate SET status = ?, revoked_at = ?, reason = ? "
                f"WHERE serial = ? AND status IN ({', '.join('?' for _ in sources)})",
                (status, revoked, reason, key, *sources),
            )  # compare-and-set: the status checked is the status changed
            if cursor.rowcount == 1:
                return
            current = self.get(serial)
        if current is None:
            raise UnknownCertificate(f"no certificate with serial number {serial:#x}")
        raise InvalidStatusTransition(
            f"certificate {serial:#x} is {current.status}: it cannot become {status}"
        )

    def list_certificates(
        self, *, status: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[IssuedCertificate]:
        if (limit is not None and limit < 0) or offset < 0:
            raise ValueError("limit and offset cannot be negative")
        where, args = _status_filter("status", status, CERTIFICATE_STATUSES)
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    f"SELECT {_CERTIFICATE_COLUMNS} FROM issued_certificate{where} "
                    "ORDER BY not_before DESC, serial DESC LIMIT ? OFFSET ?",
                    (*args, _NO_LIMIT if limit is None else limit, offset),
                )
                .fetchall()
            )
        return [_certificate(row) for row in rows]

    def count_certificates(self, *, status: str | None = None) -> int:
        where, args = _status_filter("status", status, CERTIFICATE_STATUSES)
        with self._lock:
            row = (
                self._connection()
                .execute(f"SELECT COUNT(*) FROM issued_certificate{where}", args)
                .fetchone()
            )
        return int(row[0])

    # -- ApprovalStore ------------------------------------------------------------------------

    def add_pending(
        self,
        transaction_id: bytes,
        profile: str,
        request_der: bytes,
        summary: str,
        created_at: datetime,
    ) -> PendingApproval:
        record = PendingApproval(
            transaction_id, profile, request_der, summary, "pending", "", created_at
        )
        with self._write() as db:
            cursor = db.execute(
                f"INSERT INTO pending_approval ({_APPROVAL_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (transaction_id) DO NOTHING",
                (transaction_id, profile, request_der, summary, "pending", "", _micros(created_at)),
            )
            if cursor.rowcount != 1:
                raise DuplicateApproval(f"transaction {transaction_id.hex()} is already queued")
        return record

    def get_pending(self, transaction_id: bytes) -> PendingApproval | None:
        with self._lock:
            row = (
                self._connection()
                .execute(
                    f"SELECT {_APPROVAL_COLUMNS} FROM pending_approval WHERE transaction_id = ?",
                    (transaction_id,),
                )
                .fetchone()
            )
        return None if row is None else _approval(row)

    def decide_pending(
        self, transaction_id: bytes, approved: bool, reason: str, decided_at: datetime
    ) -> PendingApproval:
        decided = _micros(decided_at)
        with self._write() as db:
            cursor = db.execute(
                "UPDATE pending_approval SET state = ?, reason = ?, decided_at = ? "
                "WHERE transaction_id = ? AND state = 'pending'",
                ("approved" if approved else "rejected", reason, decided, transaction_id),
            )
            row = db.execute(
                f"SELECT {_APPROVAL_COLUMNS} FROM pending_approval WHERE transaction_id = ?",
                (transaction_id,),
            ).fetchone()
        if row is None:
            raise UnknownApproval(f"no request waits under transaction {transaction_id.hex()}")
        record = _approval(row)
        if cursor.rowcount != 1:
            raise ApprovalAlreadyDecided(
                f"transaction {transaction_id.hex()} was {record.state} already"
            )
        return record

    def list_pending(self, *, state: str | None = None) -> list[PendingApproval]:
        where, args = _status_filter("state", state, APPROVAL_STATES)
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    f"SELECT {_APPROVAL_COLUMNS} FROM pending_approval{where} "
                    "ORDER BY created_at, transaction_id",
                    args,
                )
                .fetchall()
            )
        return [_approval(row) for row in rows]


def _status_filter(
    column: str, value: str | None, allowed: frozenset[str]
) -> tuple[str, tuple[str, ...]]:
    if value is None:
        return "", ()
    if value not in allowed:
        raise ValueError(f"{column} must be one of {sorted(allowed)}, not {value!r}")
    return f" WHERE {column} = ?", (value,)
