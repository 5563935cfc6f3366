"""Storage interfaces the engine needs (transactions, seen nonces) and their in-memory versions.

The engine only talks to these `Protocol`s; durable implementations (SQLite, PostgreSQL) live with
the CA and must keep the same semantics: `save` replaces, `delete` forgets, `expired` lists.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

from .transaction import Transaction


class TransactionStore(Protocol):
    """Open transactions by transactionID (the record names the client bound to it)."""

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
    """A dict of records; the reference implementation of `TransactionStore`."""

    def __init__(self) -> None:
        self._records: dict[bytes, Transaction] = {}

    def load(self, transaction_id: bytes) -> Transaction | None:
        return self._records.get(transaction_id)

    def save(self, transaction: Transaction) -> None:
        self._records[transaction.transaction_id] = transaction

    def delete(self, transaction_id: bytes) -> None:
        self._records.pop(transaction_id, None)

    def expired(self, now: datetime) -> Iterator[Transaction]:
        return iter([t for t in self._records.values() if t.expires_at <= now])

    def __len__(self) -> int:
        return len(self._records)


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
