"""Storage interfaces the engine needs (transactions, seen nonces) and their in-memory versions.

The engine only talks to these `Protocol`s; durable implementations (SQLite, PostgreSQL) live with
the CA and must keep the same semantics: `save` replaces, `delete` forgets, `expired` lists.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from .transaction import Transaction


class TransactionStore(Protocol):
    """Open transactions by transactionID (the record names the client bound to it).

    Every field of the record is persisted, `version` included: the engine compares it to refuse
    a decision made on a transaction that moved on meanwhile (answered, expired).
    """

    def load(self, transaction_id: bytes) -> Transaction | None:
        """The live transaction with this ID, or None."""
        ...

    def save(self, transaction: Transaction) -> None:
        """Insert or replace the record."""
        ...

    def delete(self, transaction_id: bytes) -> None:
        """Forget the transaction (no error if absent)."""
        ...

    def expired(self, now: datetime) -> Iterator[Transaction]:
        """Live transactions whose `expires_at` is at or before `now`."""
        ...


class NonceStore(Protocol):
    """senderNonces already seen, remembered until a given time, to reject replayed requests."""

    def remember(self, nonce: bytes, until: datetime, now: datetime) -> bool:
        """Record `nonce`; False if it was already known (a replay)."""
        ...


class InMemoryTransactionStore:
    """A dict of records; the reference implementation of `TransactionStore`.

    Like a durable store it hands out copies: a record changes in the store only when saved.

    `expired` costs O(k log n) for k records due, not a scan of all n: a min-heap of
    (expires_at, transactionID) is kept beside the dict, as an index on `expires_at` is in SQL.
    Entries are invalidated lazily: a delete, or a save that moves the deadline (every answered
    request does), leaves the old entry, skipped when it surfaces. So that such entries cannot
    pile up when `expired` is seldom called, the heap is rebuilt from the records once it holds
    more than twice as many entries as there are records (amortised O(1) per save).
    """

    def __init__(self) -> None:
        self._records: dict[bytes, Transaction] = {}
        self._deadlines: list[tuple[datetime, bytes]] = []  # min-heap, may hold stale entries

    def load(self, transaction_id: bytes) -> Transaction | None:
        record = self._records.get(transaction_id)
        return _copy(record) if record is not None else None

    def save(self, transaction: Transaction) -> None:
        record = _copy(transaction)
        previous = self._records.get(record.transaction_id)
        self._records[record.transaction_id] = record
        if previous is not None and previous.expires_at == record.expires_at:
            return  # its heap entry still holds
        heapq.heappush(self._deadlines, (record.expires_at, record.transaction_id))
        if len(self._deadlines) > 2 * len(self._records) + _SLACK:
            self._deadlines = [(r.expires_at, tid) for tid, r in self._records.items()]
            heapq.heapify(self._deadlines)

    def delete(self, transaction_id: bytes) -> None:
        self._records.pop(transaction_id, None)  # its heap entry goes stale

    def expired(self, now: datetime) -> Iterator[Transaction]:
        """Copies of the records due at `now`, soonest first. The store is not changed (the
        records stay until the caller saves or deletes them): the live entries popped from
        the heap are pushed back, the stale ones are dropped."""
        due: dict[bytes, Transaction] = {}
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, transaction_id = heapq.heappop(self._deadlines)
            record = self._records.get(transaction_id)
            if record is not None and record.expires_at == deadline:
                due.setdefault(transaction_id, record)  # a second equal entry is dropped
        for transaction_id, record in due.items():
            heapq.heappush(self._deadlines, (record.expires_at, transaction_id))
        return iter([_copy(record) for record in due.values()])

    def __iter__(self) -> Iterator[Transaction]:
        """Copies of every live record (for inspection and tests)."""
        return iter([_copy(t) for t in self._records.values()])

    def __len__(self) -> int:
        return len(self._records)


_SLACK = 64  # heap entries beyond 2 x records tolerated before a rebuild (no churn when small)


class InMemoryNonceStore:
    """Seen nonces with their deadline; old ones are dropped as time passes (a min-heap)."""

    def __init__(self) -> None:
        self._until: dict[bytes, datetime] = {}
        self._deadlines: list[tuple[datetime, bytes]] = []

    def remember(self, nonce: bytes, until: datetime, now: datetime) -> bool:
        while self._deadlines and self._deadlines[0][0] <= now:
            _deadline, old = heapq.heappop(self._deadlines)
            if self._until.get(old, now) <= now:
                self._until.pop(old, None)
        if nonce in self._until:
            return False
        self._until[nonce] = until
        heapq.heappush(self._deadlines, (until, nonce))
        return True

    def __len__(self) -> int:
        return len(self._until)


def _copy(record: Transaction) -> Transaction:
    return replace(record, issued=dict(record.issued))
