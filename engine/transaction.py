"""The transaction record: everything the server remembers between two messages of one transaction.

Fields are plain bytes, ints and strings so that any store can persist them as they are (the state
as its name; certificates and the deferred request as DER), never a pickled object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .fsm import State


@dataclass
class Transaction:
    """One CMP transaction as the server sees it, keyed by `transaction_id`."""

    transaction_id: bytes
    client: bytes  # who started it: `ClientIdentity.key`; later messages must come from the same
    request_type: str  # body of the first request: ir, cr, kur, p10cr, rr, genm, error
    pvno: int
    expires_at: datetime
    state: str = State.idle
    last_sender_nonce: bytes = b""  # our senderNonce in the last response; echoed as recipNonce
    issued: dict[int, bytes] = field(default_factory=dict)  # certReqId -> certificate DER
    pending_request: bytes = b""  # DER of the deferred request, while polling
    implicit_confirm: bool = False
    version: int = 0  # how many responses moved it; a decision on an older version is stale

    @property
    def closed(self) -> bool:
        """Whether the transaction has ended; a closed record is never stored."""
        return self.state == State.closed
