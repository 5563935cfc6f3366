"""In-process transfer (OSSL_CMP_CTX_server_perform): a client talks to a server with no network.

Messages cross as DER, exactly as over HTTP, so the server verifies received bytes, not objects.
`run` drives a client transaction over any transfer function (in-process, or one a transport
provides); it never sleeps itself: polling waits go through the optional `wait` callback.
"""

from __future__ import annotations

from collections.abc import Callable

from .asn1 import PKIMessage
from .client import ClientResult, ClientTransaction
from .handlers import CmpServer

Transfer = Callable[[PKIMessage], PKIMessage]
Wait = Callable[[int], None]


def server_perform(server: CmpServer) -> Transfer:
    """A transfer function that hands each request to `server` and returns its response."""

    def perform(request: PKIMessage) -> PKIMessage:
        return PKIMessage.load(server.process_request(request.dump()).dump())

    return perform


def run(
    transaction: ClientTransaction,
    transfer: Transfer,
    max_messages: int = 100,
    wait: Wait | None = None,
) -> ClientResult:
    """Drive `transaction` to its end over `transfer` and return its result.

    Before each pollReq, `wait(transaction.check_after)` is called if given (e.g. `time.sleep`);
    without it polls follow each other at once. A response failing validation raises its
    `CmpError`; more than `max_messages` requests raise `RuntimeError`.
    """
    message: PKIMessage | None = transaction.request
    for _ in range(max_messages):
        if message is None:
            return transaction.result
        if wait is not None and message["body"].name == "pollReq":
            wait(transaction.check_after)
        message = transaction.receive(transfer(message))
    if message is None:
        return transaction.result
    raise RuntimeError(f"transaction did not end within {max_messages} messages")
