"""In-process transfer: a client engine talks to a server with no network (OSSL_CMP_CTX_server_perform).

Messages cross as DER, exactly as over HTTP, so the server verifies received bytes, not objects.
"""

from __future__ import annotations

from collections.abc import Callable

from .asn1 import PKIMessage
from .client import ClientResult, ClientTransaction
from .handlers import CmpServer

Transfer = Callable[[PKIMessage], PKIMessage]


def server_perform(server: CmpServer) -> Transfer:
    """A transfer function that hands each request to `server` and returns its response."""

    def perform(request: PKIMessage) -> PKIMessage:
        return PKIMessage.load(server.process_request(request.dump()).dump())

    return perform


def run(transaction: ClientTransaction, transfer: Transfer, max_messages: int = 100) -> ClientResult:
    """Drive `transaction` to its end over `transfer` (polling without waiting: the caller's
    transfer may sleep `transaction.check_after` if it wants to)."""
    message: PKIMessage | None = transaction.request
    for _ in range(max_messages):
        if message is None:
            return transaction.result
        message = transaction.receive(transfer(message))
    raise RuntimeError(f"transaction did not end within {max_messages} messages")
