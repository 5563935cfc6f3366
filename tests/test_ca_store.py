"""The CA's durable SQLite store: every record round-trips, writes are all-or-nothing, the file
outlives the process and is shared by several, and it behaves like the engine's in-memory stores.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sanscmp.ca import store as store_module
from sanscmp.ca.store import (
    STATUS_TRANSITIONS,
    ApprovalAlreadyDecided,
    DuplicateApproval,
    DuplicateCertificate,
    DuplicateSerial,
    InvalidStatusTransition,
    IssuedCertificate,
    PendingApproval,
    SchemaVersionError,
    SqliteStore,
    StoreClosed,
    UnknownApproval,
    UnknownCertificate,
    schema_statements,
)
from sanscmp.engine.fsm import State
from sanscmp.engine.store import InMemoryNonceStore, InMemoryTransactionStore
from sanscmp.engine.transaction import Transaction

T0 = datetime(2031, 5, 17, 12, 30, 15, 123456, tzinfo=UTC)
US = timedelta(microseconds=1)
IST = timezone(timedelta(hours=5, minutes=30))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sanscmp.db"


@pytest.fixture
def store(db_path: Path) -> Any:
    with SqliteStore(db_path) as opened:
        yield opened


def transaction(tid: bytes = b"\x01" * 16, **changes: Any) -> Transaction:
    record = Transaction(
        transaction_id=tid,
        client=b"mac:client-1",
        request_type="ir",
        pvno=3,
        expires_at=T0,
        state=State.waiting_certConf,
        last_sender_nonce=b"\x02" * 16,
        issued={0: b"cert-0", 7: b"cert-7", -1: b"cert-p10"},
        pending_request=b"\x30\x03\x02\x01\x00",
        implicit_confirm=True,
        version=41,
    )
    return replace(record, **changes)


def certificate(serial: int, **changes: Any) -> IssuedCertificate:
    record = IssuedCertificate(
        serial=serial,
        der=b"\x30\x82" + serial.to_bytes(21, "big") + b"certificate body",
        subject=f"CN=client {serial},O=Example\\, Inc.",
        not_before=T0,
        not_after=T0 + timedelta(days=365),
        profile="default",
        transaction_id=b"\x09" * 16,
        status="unconfirmed",
    )
    return replace(record, **changes)


def raw(path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """A query through a connection of its own, as another process would see the file."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


# ---- transactions ----------------------------------------------------------------------------


def test_every_transaction_field_is_persisted() -> None:
    """A field added to the engine's record must get a column (or this fails, not restarts)."""
    persisted = set(store_module._TRANSACTION_COLUMNS) | {"issued"}
    assert {f.name for f in fields(Transaction)} == persisted


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize(
    ("issued", "pending"),
    [({}, b""), ({0: b"a", 2**100: b"big", -1: b"p10"}, b""), ({}, b"\x30\x00" * 50)],
    ids=["bare", "issued", "pending_request"],
)
def test_transaction_round_trip(
    store: SqliteStore, state: State, issued: dict[int, bytes], pending: bytes
) -> None:
    record = transaction(state=state, issued=issued, pending_request=pending)
    store.save(record)
    loaded = store.load(record.transaction_id)
    assert loaded == record
    assert loaded is not None and loaded is not record
    assert list(loaded.issued) == list(record.issued)  # the dict's order too
    assert loaded.state is state  # the engine's enum, not just an equal string
    assert loaded.expires_at.tzinfo is UTC
    assert store.load(b"unknown") is None


def test_transaction_times_are_normalised_to_utc(store: SqliteStore) -> None:
    record = transaction(expires_at=datetime(2031, 5, 17, 18, 0, 15, 123456, tzinfo=IST))
    store.save(record)
    loaded = store.load(record.transaction_id)
    assert loaded is not None
    assert loaded.expires_at == record.expires_at
    assert loaded.expires_at.tzinfo is UTC and loaded.expires_at.hour == 12


def test_naive_datetimes_are_refused(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.save(transaction(expires_at=datetime(2031, 1, 1)))
    with pytest.raises(ValueError, match="naive"):
        list(store.expired(datetime(2031, 1, 1)))
    with pytest.raises(ValueError, match="naive"):
        store.remember(b"n", datetime(2031, 1, 1), T0)


def test_save_upserts(store: SqliteStore, db_path: Path) -> None:
    first = transaction(issued={0: b"a", 1: b"b"})
    store.save(first)
    second = replace(
        first, state=State.polling, issued={2: b"c"}, version=42, implicit_confirm=False
    )
    store.save(second)
    assert store.load(first.transaction_id) == second
    assert store.count_transactions() == 1
    rows = raw(db_path, "SELECT cert_req_id FROM cmp_transaction_certificate")
    assert rows == [("2",)]  # the old certificates are gone, not merged


def test_delete(store: SqliteStore, db_path: Path) -> None:
    keep, drop = transaction(b"keep"), transaction(b"drop")
    store.save(keep)
    store.save(drop)
    store.delete(drop.transaction_id)
    store.delete(b"never there")  # no error
    assert store.load(drop.transaction_id) is None
    assert store.load(keep.transaction_id) == keep
    orphans = raw(
        db_path,
        "SELECT COUNT(*) FROM cmp_transaction_certificate WHERE transaction_id = ?",
        b"drop",
    )
    assert orphans == [(0,)]  # ON DELETE CASCADE took its certificates


def test_expired_boundaries(store: SqliteStore) -> None:
    early = transaction(b"early", expires_at=T0 - timedelta(seconds=1))
    exact = transaction(b"exact", expires_at=T0)
    late = transaction(b"late", expires_at=T0 + US)
    for record in (late, exact, early):
        store.save(record)
    assert list(store.expired(T0 - timedelta(seconds=1) - US)) == []
    assert list(store.expired(T0 - US)) == [early]
    assert list(store.expired(T0)) == [early, exact]  # at the deadline counts; soonest first
    assert list(store.expired(T0.astimezone(IST))) == [early, exact]  # an instant, any zone
    assert list(store.expired(datetime.max.replace(tzinfo=UTC))) == [early, exact, late]


def test_expired_can_be_consumed_while_deleting(store: SqliteStore) -> None:
    for index in range(5):
        store.save(transaction(bytes([index]), expires_at=T0))
    for record in store.expired(T0):
        store.delete(record.transaction_id)
    assert store.count_transactions() == 0


def test_in_memory_expired_follows_moved_deadlines() -> None:
    """The in-memory store's deadline heap (lazily invalidated) answers like the SQL index."""
    memory = InMemoryTransactionStore()
    early = transaction(b"early", expires_at=T0 - timedelta(seconds=1))
    exact = transaction(b"exact", expires_at=T0)
    late = transaction(b"late", expires_at=T0 + US)
    for record in (late, exact, early):
        memory.save(record)
    assert list(memory.expired(T0 - US)) == [early]
    assert list(memory.expired(T0)) == [early, exact]  # soonest first
    assert list(memory.expired(T0)) == [early, exact]  # asking changes nothing
    assert list(memory.expired(datetime.max.replace(tzinfo=UTC))) == [early, exact, late]
    postponed = replace(early, expires_at=T0 + timedelta(hours=1))
    memory.save(postponed)  # the old deadline's entry is stale now
    memory.save(replace(late, expires_at=T0 - timedelta(hours=1)))  # brought forward
    memory.delete(exact.transaction_id)
    memory.save(exact)  # deleted and saved again: two equal entries
    assert [r.transaction_id for r in memory.expired(T0)] == [b"late", b"exact"]
    assert list(memory.expired(T0 + timedelta(hours=1))) == [
        replace(late, expires_at=T0 - timedelta(hours=1)),
        exact,
        postponed,
    ]


def test_in_memory_deadline_heap_stays_bounded() -> None:
    """Stale heap entries (a deadline moved by every answer, records deleted before they were
    due) do not accumulate when `expired` is never called."""
    memory = InMemoryTransactionStore()
    busy = transaction(b"busy")
    for step in range(5_000):
        memory.save(replace(busy, expires_at=T0 + step * US))
        memory.save(transaction(step.to_bytes(4, "big"), expires_at=T0))
        memory.delete(step.to_bytes(4, "big"))
    heap = memory._deadlines  # the implementation detail under test
    assert len(memory) == 1 and len(heap) <= 2 * len(memory) + 64
    assert list(memory.expired(T0 + 10_000 * US)) == [replace(busy, expires_at=T0 + 4_999 * US)]


# ---- nonces ----------------------------------------------------------------------------------


def test_nonce_replay_detection(store: SqliteStore) -> None:
    until = T0 + timedelta(minutes=5)
    assert store.remember(b"n1", until, T0) is True
    assert store.remember(b"n1", until, T0 + timedelta(minutes=4)) is False  # replay
    assert store.remember(b"n2", until, T0) is True
    assert store.remember(b"n1", until, until - US) is False
    assert store.remember(b"n1", until + timedelta(minutes=5), until) is True  # deadline passed
    assert store.remember(b"n1", until + timedelta(minutes=5), until + US) is False


def test_nonces_are_pruned(db_path: Path) -> None:
    with SqliteStore(db_path, prune_every=10) as store:
        for index in range(10):  # the first call prunes (nothing yet), then every 10th
            assert store.remember(bytes([index]), T0 + timedelta(seconds=index), T0)
        assert store.count_nonces() == 10
        later = T0 + timedelta(seconds=4)
        assert store.remember(b"trigger", later, later)  # 11th call: the deadlines <= now go
        assert store.count_nonces() == 10 - 5 + 1
        assert store.prune_nonces(T0 + timedelta(hours=1)) == 6
        assert store.count_nonces() == 0


def test_nonces_are_shared_by_workers(db_path: Path) -> None:
    with SqliteStore(db_path) as one, SqliteStore(db_path) as two:
        assert one.remember(b"nonce", T0 + timedelta(minutes=5), T0)
        assert not two.remember(b"nonce", T0 + timedelta(minutes=5), T0 + US)


# ---- certificates ----------------------------------------------------------------------------


def test_certificate_round_trip(store: SqliteStore) -> None:
    record = certificate(0x1234_5678_9ABC_DEF0_1122, not_before=T0.astimezone(IST))
    store.add(record)
    assert store.get(record.serial) == record
    assert store.get_certificate(record.serial) == record
    assert store.get_by_fingerprint(hashlib.sha256(record.der).digest()) == record
    assert store.get_by_fingerprint(b"\x00" * 32) is None
    loaded = store.get(record.serial)
    assert loaded is not None and loaded.not_before.tzinfo is UTC
    assert store.get(record.serial + 1) is None


@pytest.mark.parametrize(
    "serial", [1, 2**63, 2**64 + 1, 2**158 + 12345, 2**159 - 1, 2**160 - 1], ids=hex
)
def test_large_serials(store: SqliteStore, serial: int) -> None:
    store.add(certificate(serial))
    loaded = store.get(serial)
    assert loaded is not None and loaded.serial == serial
    assert store.get(serial ^ 1) is None  # a neighbour is another certificate


def test_serials_outside_160_bits(store: SqliteStore) -> None:
    for serial in (-1, 2**160):
        with pytest.raises(ValueError, match="serial"):
            store.add(replace(certificate(0), serial=serial))
        assert store.get(serial) is None  # an rr may name anything: not found, not an error
        with pytest.raises(UnknownCertificate):
            store.set_status(serial, "active")


@pytest.mark.parametrize("serial", [42, 2**159 + 7], ids=hex)
def test_serial_uniqueness(store: SqliteStore, serial: int) -> None:
    first = certificate(serial)
    store.add(first)
    with pytest.raises(DuplicateSerial):
        store.add(certificate(serial, der=b"another certificate", status="active"))
    assert store.get(serial) == first
    assert store.count_certificates() == 1


def test_same_certificate_under_two_serials(store: SqliteStore) -> None:
    store.add(certificate(1, der=b"same"))
    with pytest.raises(DuplicateCertificate):
        store.add(certificate(2, der=b"same"))
    assert store.get(2) is None


def test_status_transitions(store: SqliteStore) -> None:
    store.add(certificate(1))
    store.set_status(1, "active")
    assert store.get(1) == certificate(1, status="active")
    store.set_status(1, "revoked", revoked_at=T0.astimezone(IST), reason=1)
    assert store.get(1) == certificate(1, status="revoked", revoked_at=T0, reason=1)
    store.add(certificate(2))
    store.set_status(2, "revoked", revoked_at=T0, reason=5)  # unconfirmed, then rejected
    revoked = store.get(2)
    assert revoked is not None and (revoked.status, revoked.reason) == ("revoked", 5)
    store.add(certificate(3, status="active"))
    store.set_status(3, "revoked", revoked_at=T0)  # a CRL entry may omit the reason
    assert store.get(3) == certificate(3, status="revoked", revoked_at=T0, reason=None)


_STATUSES = ["unconfirmed", "active", "revoked"]


@pytest.mark.parametrize("old", _STATUSES)
@pytest.mark.parametrize("new", _STATUSES)
def test_invalid_status_transitions_are_rejected(store: SqliteStore, old: str, new: str) -> None:
    revoked = {"revoked_at": T0, "reason": 0} if old == "revoked" else {}
    record = certificate(7, status=old, **revoked)
    store.add(record)
    arguments: dict[str, Any] = {"revoked_at": T0 + US, "reason": 4} if new == "revoked" else {}
    if (old, new) in STATUS_TRANSITIONS:
        store.set_status(7, new, **arguments)
        loaded = store.get(7)
        assert loaded is not None and loaded.status == new
    else:
        with pytest.raises(InvalidStatusTransition, match=f"is {old}|ever becomes"):
            store.set_status(7, new, **arguments)
        assert store.get(7) == record


def test_status_arguments_are_checked(store: SqliteStore) -> None:
    store.add(certificate(1, status="active"))
    with pytest.raises(ValueError, match="revocation time"):
        store.set_status(1, "revoked", reason=1)
    with pytest.raises(ValueError, match="CRLReason"):
        store.set_status(1, "revoked", revoked_at=T0, reason=7)
    with pytest.raises(ValueError, match="only go with"):
        store.set_status(1, "active", reason=1)
    with pytest.raises(InvalidStatusTransition):
        store.set_status(1, "expired")
    with pytest.raises(UnknownCertificate, match="0x2"):
        store.set_status(2, "active")
    with pytest.raises(ValueError, match="status"):
        store.add(certificate(3, status="suspended"))
    with pytest.raises(ValueError, match="revocation time"):
        store.add(certificate(3, status="revoked"))
    assert store.get(1) == certificate(1, status="active")


def test_list_and_count_certificates(store: SqliteStore) -> None:
    for index in range(10):
        status = ["unconfirmed", "active"][index % 2]
        store.add(certificate(1000 + index, not_before=T0 + timedelta(hours=index), status=status))
    store.set_status(1003, "revoked", revoked_at=T0, reason=4)
    newest_first = [r.serial for r in store.list_certificates()]
    assert newest_first == [1000 + i for i in reversed(range(10))]
    assert [r.serial for r in store.list_certificates(limit=3, offset=2)] == [1007, 1006, 1005]
    assert [r.serial for r in store.list_certificates(offset=8)] == [1001, 1000]
    assert [r.serial for r in store.list_certificates(status="revoked")] == [1003]
    assert [r.serial for r in store.list_certificates(status="unconfirmed", limit=2)] == [
        1008,
        1006,
    ]
    assert store.list_certificates(limit=0) == []
    assert store.count_certificates() == 10
    assert store.count_certificates(status="active") == 4
    assert store.count_certificates(status="unconfirmed") == 5
    with pytest.raises(ValueError, match="status"):
        store.list_certificates(status="bogus")
    with pytest.raises(ValueError, match="negative"):
        store.list_certificates(limit=-1)


# ---- approvals -------------------------------------------------------------------------------


def test_approvals_lifecycle(store: SqliteStore) -> None:
    first = store.add_pending(b"tid-1", "manual", b"\x30\x01\x00", "ir for CN=a (EC P-256)", T0)
    assert first == PendingApproval(
        b"tid-1", "manual", b"\x30\x01\x00", "ir for CN=a (EC P-256)", "pending", "", T0
    )
    store.add_pending(b"tid-2", "manual", b"req-2", "cr for CN=b (RSA 3072)", T0 + US)
    store.add_pending(b"tid-0", "other", b"req-0", "p10cr for CN=c", T0 - US)
    assert store.get_pending(b"tid-1") == first
    assert store.get_pending(b"nope") is None
    with pytest.raises(DuplicateApproval):
        store.add_pending(b"tid-1", "manual", b"again", "again", T0)
    assert [p.transaction_id for p in store.list_pending()] == [b"tid-0", b"tid-1", b"tid-2"]

    approved = store.decide_pending(b"tid-1", True, "", T0 + timedelta(minutes=1))
    assert approved == replace(first, state="approved", decided_at=T0 + timedelta(minutes=1))
    assert store.get_pending(b"tid-1") == approved
    rejected = store.decide_pending(b"tid-2", False, "unknown subject", T0.astimezone(IST))
    assert (rejected.state, rejected.reason, rejected.decided_at) == (
        "rejected",
        "unknown subject",
        T0,
    )
    with pytest.raises(ApprovalAlreadyDecided, match="approved"):
        store.decide_pending(b"tid-1", False, "too late", T0)
    with pytest.raises(ApprovalAlreadyDecided, match="rejected"):
        store.decide_pending(b"tid-2", True, "", T0)
    with pytest.raises(UnknownApproval, match="6e6f7065"):
        store.decide_pending(b"nope", True, "", T0)
    assert store.get_pending(b"tid-1") == approved  # the refused decisions changed nothing

    assert [p.transaction_id for p in store.list_pending(state="pending")] == [b"tid-0"]
    assert [p.transaction_id for p in store.list_pending(state="approved")] == [b"tid-1"]
    assert [p.transaction_id for p in store.list_pending(state="rejected")] == [b"tid-2"]
    with pytest.raises(ValueError, match="state"):
        store.list_pending(state="maybe")


def test_operator_errors_are_key_and_value_errors() -> None:
    """The CLI reports `KeyError` and `ValueError` from `decide_pending` as plain messages."""
    assert issubclass(UnknownApproval, KeyError)
    assert issubclass(ApprovalAlreadyDecided, ValueError)
    assert str(UnknownApproval("no such request")) == "no such request"


# ---- durability and sharing ------------------------------------------------------------------


def _fill(store: SqliteStore) -> None:
    store.save(transaction(b"open", state=State.polling))
    store.remember(b"seen", T0 + timedelta(minutes=5), T0)
    store.add(certificate(2**159 + 1, status="active"))
    store.add_pending(b"open", "manual", b"request", "summary", T0)


def _check_filled(store: SqliteStore) -> None:
    assert store.load(b"open") == transaction(b"open", state=State.polling)
    assert not store.remember(b"seen", T0 + timedelta(minutes=5), T0 + US)
    assert store.get(2**159 + 1) == certificate(2**159 + 1, status="active")
    pending = store.get_pending(b"open")
    assert pending is not None and pending.summary == "summary"


def test_everything_survives_close_and_reopen(db_path: Path) -> None:
    store = SqliteStore(db_path)
    _fill(store)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreClosed):
        store.load(b"open")
    with SqliteStore(db_path) as reopened:
        _check_filled(reopened)
        assert reopened.schema_version == store_module.SCHEMA_VERSION
    assert raw(db_path, "SELECT version FROM schema_version") == [(1,)]  # migrated once


def test_two_instances_see_each_others_writes(db_path: Path) -> None:
    with SqliteStore(db_path) as one, SqliteStore(db_path) as two:
        _fill(one)
        _check_filled(two)
        two.set_status(2**159 + 1, "revoked", revoked_at=T0, reason=1)
        two.save(transaction(b"open", state=State.waiting_certConf, version=99))
        two.decide_pending(b"open", True, "", T0)
        assert one.get(2**159 + 1) == certificate(
            2**159 + 1, status="revoked", revoked_at=T0, reason=1
        )
        assert one.load(b"open") == transaction(b"open", version=99)
        with pytest.raises(ApprovalAlreadyDecided):
            one.decide_pending(b"open", False, "", T0)


def _worker(path: str, worker: int, count: int, results: Any) -> None:
    accepted = 0
    with SqliteStore(path, synchronous="NORMAL") as store:
        for index in range(count):
            store.add(certificate(worker * 10_000 + index))
            store.save(transaction(bytes([worker]) + index.to_bytes(4, "big")))
            accepted += store.remember(index.to_bytes(4, "big"), T0 + timedelta(hours=1), T0)
    results.put(accepted)


def test_worker_processes_write_concurrently(db_path: Path) -> None:
    """Like uvicorn workers: no "database is locked", nothing lost, each nonce accepted once."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [
        context.Process(target=_worker, args=(str(db_path), worker, 150, results))
        for worker in range(1, 4)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    assert sum(results.get(timeout=5) for _ in workers) == 150  # each shared nonce once
    with SqliteStore(db_path) as store:
        assert store.count_certificates() == 450
        assert store.count_transactions() == 450


def test_threads_may_share_an_instance(db_path: Path) -> None:
    store = SqliteStore(db_path, synchronous="NORMAL")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for index in range(100):
                record = transaction(bytes([worker, index]))
                store.save(record)
                assert store.load(record.transaction_id) == record
                store.add(certificate(worker * 1000 + index))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count_transactions() == store.count_certificates() == 400
    store.close()


def test_a_store_does_not_cross_fork(store: SqliteStore) -> None:
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def child() -> None:
        try:
            store.load(b"x")
        except StoreClosed:
            results.put("refused")
        else:
            results.put("used")

    process = context.Process(target=child)
    process.start()
    process.join(30)
    assert results.get(timeout=5) == "refused"
    store.save(transaction())  # the parent's connection is unharmed
    assert store.load(transaction().transaction_id) == transaction()


# ---- atomicity -------------------------------------------------------------------------------


def test_failed_save_of_a_new_transaction_writes_nothing(store: SqliteStore, db_path: Path) -> None:
    broken = transaction(issued={0: b"good", 1: None})
    with pytest.raises(sqlite3.IntegrityError):  # NOT NULL, in the certificates' INSERT
        store.save(broken)
    assert store.load(broken.transaction_id) is None
    assert raw(db_path, "SELECT COUNT(*) FROM cmp_transaction") == [(0,)]
    assert raw(db_path, "SELECT COUNT(*) FROM cmp_transaction_certificate") == [(0,)]
    store.save(transaction())  # the connection is not left inside a transaction
    assert store.load(transaction().transaction_id) == transaction()


def test_failed_save_leaves_the_previous_record_whole(store: SqliteStore) -> None:
    before = transaction(issued={0: b"zero", 1: b"one"})
    store.save(before)
    missing: Any = None  # a certificate that is not bytes: the second INSERT fails
    broken = replace(before, state=State.polling, version=99, issued={5: b"five", 6: missing})
    with pytest.raises(sqlite3.IntegrityError):
        store.save(broken)
    assert store.load(before.transaction_id) == before  # row and certificates as they were


def test_failed_migration_leaves_no_schema(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = ((*store_module._MIGRATIONS[0][:3], "CREATE TABLE oops ("),)
    monkeypatch.setattr(store_module, "_MIGRATIONS", broken)
    with pytest.raises(sqlite3.OperationalError):
        SqliteStore(db_path)
    tables = raw(db_path, "SELECT name FROM sqlite_master WHERE type = 'table'")
    assert tables == []  # not even schema_version: DDL is transactional
    monkeypatch.undo()
    with SqliteStore(db_path) as store:
        store.save(transaction())


# ---- schema ----------------------------------------------------------------------------------


def test_database_settings(store: SqliteStore, db_path: Path) -> None:
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]  # persistent in the file
    connection = store._connection()
    assert connection.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert connection.execute("PRAGMA busy_timeout").fetchone() == (5000,)
    assert connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_newer_schema_is_refused(db_path: Path) -> None:
    SqliteStore(db_path).close()
    connection = sqlite3.connect(db_path)
    with connection:
        connection.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 0)")
    connection.close()
    with pytest.raises(SchemaVersionError, match="99"):
        SqliteStore(db_path)


def test_schema_statements_for_another_dialect() -> None:
    statements = schema_statements("BYTEA")
    assert not any("BLOB" in s for s in statements)
    assert sum(s.count("BYTEA") for s in statements) >= 10
    assert not any("PRAGMA" in s or "AUTOINCREMENT" in s for s in statements)


# ---- equivalence with the in-memory reference stores -----------------------------------------

_TIDS = st.sampled_from([b"", b"a", b"b", b"\x00" * 16]) | st.binary(max_size=16)
_ZONES = st.sampled_from([UTC, IST, timezone(-timedelta(hours=8))])
_MOMENTS = st.sampled_from([T0, T0 + US, T0 - US]) | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=_ZONES
)
_INT64 = st.integers(-(2**63), 2**63 - 1)
_TRANSACTIONS = st.builds(
    Transaction,
    transaction_id=_TIDS,
    client=st.binary(max_size=24),
    request_type=st.sampled_from(["ir", "cr", "kur", "p10cr", "rr", "genm"]) | st.text(max_size=8),
    pvno=_INT64,
    expires_at=_MOMENTS,
    state=st.sampled_from(list(State)) | st.text(max_size=8),
    last_sender_nonce=st.binary(max_size=16),
    issued=st.dictionaries(st.integers(), st.binary(max_size=12), max_size=4),
    pending_request=st.binary(max_size=32),
    implicit_confirm=st.booleans(),
    version=_INT64,
)


def _by_tid(records: Any) -> list[Transaction]:
    return sorted(records, key=lambda record: record.transaction_id)


class StoreEquivalence(RuleBasedStateMachine):
    """SqliteStore (two instances on one file, reopened at times) vs the in-memory stores."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp()
        self.path = Path(self.directory) / "equivalence.db"
        self.stores = [self._open(), self._open()]
        self.transactions = InMemoryTransactionStore()
        self.nonces = InMemoryNonceStore()
        self.now = T0

    def _open(self) -> SqliteStore:
        return SqliteStore(self.path, synchronous="NORMAL", prune_every=3)

    def teardown(self) -> None:
        for store in self.stores:
            store.close()
        shutil.rmtree(self.directory)

    @rule(which=st.integers(0, 1), record=_TRANSACTIONS)
    def save(self, which: int, record: Transaction) -> None:
        self.stores[which].save(record)
        self.transactions.save(record)

    @rule(which=st.integers(0, 1), tid=_TIDS)
    def delete(self, which: int, tid: bytes) -> None:
        self.stores[which].delete(tid)
        self.transactions.delete(tid)

    @precondition(lambda self: len(self.transactions) > 0)
    @rule(which=st.integers(0, 1), data=st.data())
    def delete_known(self, which: int, data: st.DataObject) -> None:
        tid = data.draw(st.sampled_from(sorted(t.transaction_id for t in self.transactions)))
        self.delete(which, tid)

    @rule(which=st.integers(0, 1), tid=_TIDS)
    def load(self, which: int, tid: bytes) -> None:
        assert self.stores[which].load(tid) == self.transactions.load(tid)

    @rule(which=st.integers(0, 1), now=_MOMENTS)
    def expired(self, which: int, now: datetime) -> None:
        durable = _by_tid(self.stores[which].expired(now))
        assert durable == _by_tid(self.transactions.expired(now))

    @rule(which=st.integers(0, 1))
    def reopen(self, which: int) -> None:
        self.stores[which].close()
        self.stores[which] = self._open()

    @rule(
        which=st.integers(0, 1),
        nonce=st.sampled_from([b"n1", b"n2", b"n3"]),
        step=st.sampled_from([timedelta(0), US, timedelta(seconds=30)]),
        keep=st.sampled_from([timedelta(0), US, timedelta(seconds=60)]),
    )
    def remember(self, which: int, nonce: bytes, step: timedelta, keep: timedelta) -> None:
        self.now += step  # a server's clock goes forward
        until = self.now + keep
        expected = self.nonces.remember(nonce, until, self.now)
        assert self.stores[which].remember(nonce, until, self.now) == expected

    @invariant()
    def same_records(self) -> None:
        assert _by_tid(self.stores[0].expired(datetime.max.replace(tzinfo=UTC))) == _by_tid(
            self.transactions
        )


StoreEquivalence.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreEquivalence = StoreEquivalence.TestCase


# ---- scale (printed, not asserted) -----------------------------------------------------------


def _scale(path: Path, count: int, synchronous: str) -> tuple[float, float]:
    with SqliteStore(path, synchronous=synchronous) as store:
        started = time.perf_counter()
        for index in range(count):
            store.add(certificate(2**150 + index * 7919))
        added = time.perf_counter() - started
        started = time.perf_counter()
        for index in range(count):
            record = transaction(index.to_bytes(16, "big"), issued={0: b"\x30" * 700})
            store.save(record)
            store.load(record.transaction_id)
        saved = time.perf_counter() - started
        assert store.count_certificates() == store.count_transactions() == count
    return added, saved


def test_scale_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """10k records with synchronous=NORMAL; the fsync per commit of FULL (the default) depends on
    the disk, so it is sampled on fewer."""
    lines = []
    for count, synchronous in ((10_000, "NORMAL"), (100, "FULL")):
        added, saved = _scale(tmp_path / f"{synchronous}.db", count, synchronous)
        lines.append(
            f"SqliteStore synchronous={synchronous}: {count} add() {added:.2f} s "
            f"({added / count * 1e6:.0f} µs each); {count} save()+load() {saved:.2f} s "
            f"({saved / count * 1e6:.0f} µs each)"
        )
    with capsys.disabled():
        print("\n" + "\n".join(lines))


# ---- units of work -----------------------------------------------------------------------------


def test_unit_of_work_commits_once_and_others_see_it_only_then(
    store: SqliteStore, db_path: Path
) -> None:
    commits: list[str] = []
    store._connection().set_trace_callback(
        lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None
    )
    with store.unit_of_work():
        assert store.remember(b"n" * 16, T0 + timedelta(hours=1), T0)
        store.add(certificate(11))
        store.save(transaction())
        assert raw(db_path, "SELECT COUNT(*) FROM issued_certificate") == [(0,)]
    assert commits == ["COMMIT"]
    assert raw(db_path, "SELECT COUNT(*) FROM issued_certificate") == [(1,)]
    assert store.load(transaction().transaction_id) == transaction()


def test_unit_of_work_is_all_or_nothing(store: SqliteStore) -> None:
    with pytest.raises(RuntimeError), store.unit_of_work():
        store.add(certificate(12))
        store.save(transaction())
        raise RuntimeError("the request failed")
    assert store.get(12) is None
    assert store.load(transaction().transaction_id) is None


def test_a_refused_write_leaves_the_unit_s_other_writes(store: SqliteStore) -> None:
    store.add(certificate(13))
    with store.unit_of_work():
        store.add(certificate(14))
        with pytest.raises(DuplicateSerial):
            store.add(certificate(13, der=b"\x30\x82other"))
        with store.unit_of_work():  # nested: joins the outer unit
            store.save(transaction())
    assert store.get(14) is not None
    assert store.load(transaction().transaction_id) is not None
