"""uvicorn's HTTP protocol with immediate ACKs, so a request sent in two writes does not stall.

`openssl cmp` (like many clients) writes an HTTP request's header and body separately, without
TCP_NODELAY. On a kept-alive connection Linux delays the ACK of the header (the connection looks
interactive), the client's Nagle algorithm holds the body until that ACK comes, and every message
after the first waits ~40 ms for the delayed-ACK timer. Re-arming TCP_QUICKACK whenever data
arrives makes the kernel acknowledge at once; it costs one setsockopt per read.

`openssl cmp` 3.0 also speaks HTTP/1.0 with `Connection: keep-alive`, which uvicorn answers by
closing the connection: every message of a transaction then pays a new TCP connection. This
protocol keeps such connections open and says so in the response, as HTTP/1.0 requires.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # httptools is optional in uvicorn; h11 is always there
    _Base = H11Protocol  # type: ignore[misc,assignment]

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only; elsewhere a no-op


class QuickAckHttpProtocol(_Base):
    """uvicorn's HTTP protocol that re-arms TCP_QUICKACK on every read and honours HTTP/1.0
    keep-alive requests."""

    def connection_made(self, transport: Any) -> None:
        self._quickack_socket = transport.get_extra_info("socket")
        _quickack(self._quickack_socket)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        _quickack(self._quickack_socket)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if self.scope.get("http_version") == "1.0" and _asks_keep_alive(self.headers):
            cycle.keep_alive = True
            cycle.default_headers = [*cycle.default_headers, (b"connection", b"keep-alive")]


def _asks_keep_alive(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"connection" and b"keep-alive" in value.lower() for name, value in headers)


def _quickack(sock: Any) -> None:
    if _QUICKACK is None or sock is None:
        return
    with contextlib.suppress(OSError):  # not a TCP socket (e.g. a Unix socket): nothing to do
        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
