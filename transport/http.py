"""CMP over HTTP (RFC 9811) as a plain ASGI application; uvicorn or any ASGI server runs it.

POST `application/pkixcmp` to `/.well-known/cmp` (the default profile) or
`/.well-known/cmp/p/<label>` (a named profile), or to an optional legacy path such as `/pkix/`.
Answers: 200 with the CMP response; 400 with a CMP error body when the request could not be decoded;
404 for an unknown path or label; 405 for other methods; 413 above the size limit; 415 for another
content type. The transport knows nothing of the CA: each label maps to a `CmpService`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from .service import CmpService

CONTENT_TYPE = b"application/pkixcmp"
WELL_KNOWN = "/.well-known/cmp"
LABEL_PREFIX = WELL_KNOWN + "/p/"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class HttpConfig:
    """Routing and limits of the HTTP transport."""

    services: Mapping[str, CmpService]  # profile label -> service; "" is the default profile
    legacy_paths: tuple[str, ...] = ()  # e.g. ("/", "/pkix/") for clients with fixed paths
    max_request_bytes: int = 256 * 1024  # CMP messages are a few KB; certificates chains tens
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class CmpHttpApp:
    """The ASGI application serving CMP per RFC 9811."""

    def __init__(self, config: HttpConfig) -> None:
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        service = self._route(scope["path"])
        if service is None:
            label = scope["path"].removeprefix(LABEL_PREFIX)
            text = (
                f"unknown CMP profile label {label!r}"
                if scope["path"].startswith(LABEL_PREFIX)
                else "no CMP endpoint here; POST to /.well-known/cmp"
            )
            await _plain(send, 404, text)
            return
        if scope["method"] != "POST":
            await _plain(send, 405, "CMP requests are POSTed", [(b"allow", b"POST")])
            return
        if _content_type(scope) != CONTENT_TYPE:
            await _plain(send, 415, "Content-Type must be application/pkixcmp")
            return
        declared = _content_length(scope)
        limit = self.config.max_request_bytes
        if declared is not None and declared > limit:
            await _plain(send, 413, f"request larger than {limit} bytes")
            return
        body = await _read_body(receive, limit)
        if body is None:
            await _plain(send, 413, f"request larger than {limit} bytes")
            return
        reply = service.handle(body)
        status = 400 if reply.malformed_request else 200
        headers = [(b"content-type", CONTENT_TYPE), *self.config.extra_headers]
        await _respond(send, status, reply.body, headers)

    def _route(self, path: str) -> CmpService | None:
        services = self.config.services
        if path in (WELL_KNOWN, WELL_KNOWN + "/") or path in self.config.legacy_paths:
            return services.get("")
        if path.startswith(LABEL_PREFIX):
            return services.get(path[len(LABEL_PREFIX) :].rstrip("/")) or None
        return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it exceeds `limit` (read no further)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def _content_type(scope: Scope) -> bytes:
    value = _header(scope, b"content-type") or b""
    return value.split(b";", 1)[0].strip().lower()


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _plain(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = (text + "\n").encode()
    plain = [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])]
    await _respond(send, status, body, plain)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
