"""The HTTP transport (RFC 9811) under uvicorn on 127.0.0.1, through the transport test kit."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from cmp_pki import make_client, make_server
from transport_kit import CMP, Answer, TransportKit

from sanscmp.engine.client import ClientEngine
from sanscmp.transport import quickack
from sanscmp.transport.http import CmpHttpApp, HttpConfig
from sanscmp.transport.quickack import QuickAckHttpProtocol
from sanscmp.transport.service import EngineService


class HttpEndpoint:
    """Raw HTTP/1.1 requests to the server under test."""

    def __init__(self, port: int) -> None:
        self.port = port

    def send(
        self, path: str, body: bytes, *, content_type: str = CMP, method: str = "POST"
    ) -> Answer:
        return self.send_many(path, [body], content_type=content_type, method=method)[0]

    def send_many(
        self, path: str, bodies: list[bytes], *, content_type: str = CMP, method: str = "POST"
    ) -> list[Answer]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        answers = []
        try:
            for body in bodies:
                connection.request(method, path, body=body, headers={"Content-Type": content_type})
                response = connection.getresponse()
                answers.append(
                    Answer(response.status, response.getheader("content-type", ""), response.read())
                )
        finally:
            connection.close()
        return answers


@pytest.fixture(scope="module")
def endpoint() -> Iterator[HttpEndpoint]:
    server = make_server()
    service = EngineService(server.process_request)
    app = CmpHttpApp(HttpConfig(services={"": service, "other": service}, legacy_paths=("/pkix/",)))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on", http=QuickAckHttpProtocol)
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not runner.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.started, "uvicorn did not start"
    yield HttpEndpoint(sock.getsockname()[1])
    runner.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def client() -> ClientEngine:
    return make_client("mac", seed=str(time.monotonic_ns()))


class TestHttpTransport(TransportKit):
    """RFC 9811 over uvicorn."""

    def test_content_length_above_limit_is_refused_before_reading(
        self, endpoint: HttpEndpoint
    ) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
        connection.putrequest("POST", "/.well-known/cmp")
        connection.putheader("Content-Type", CMP)
        connection.putheader("Content-Length", str(10**9))
        connection.endheaders()
        assert connection.getresponse().status == 413
        connection.close()


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")
def test_quickack_is_rearmed_on_every_read(
    endpoint: HttpEndpoint, client: ClientEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read on a kept-alive connection re-arms TCP_QUICKACK on the real socket (the
    delayed-ACK stall it avoids is measured by bench/bench_keepalive.py: ~44 ms -> ~1 ms)."""
    armed: list[int] = []
    original = quickack._quickack

    def spy(sock: socket.socket) -> None:
        original(sock)
        armed.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK))

    monkeypatch.setattr(quickack, "_quickack", spy)
    answers = endpoint.send_many("/.well-known/cmp", [client.genm([]).request.dump()] * 3)
    assert [a.status for a in answers] == [200] * 3
    assert len(armed) >= 3 and all(armed)


def test_http_10_keep_alive_is_honoured(endpoint: HttpEndpoint, client: ClientEngine) -> None:
    """`openssl cmp` 3.0 sends HTTP/1.0 with Connection: keep-alive: one connection serves the
    whole transaction (uvicorn alone would close it after every response)."""
    body = client.genm([]).request.dump()
    request = (
        b"POST /.well-known/cmp HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
        b"Content-Type: application/pkixcmp\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
        for _ in range(2):
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(65536)
            header, _, rest = head.partition(b"\r\n\r\n")
            assert header.startswith(b"HTTP/1.1 200")
            assert b"connection: keep-alive" in header.lower()
            length = int(header.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += sock.recv(65536)
    plain = request.replace(b"Connection: keep-alive\r\n", b"")
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
        sock.sendall(plain)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes an HTTP/1.0 connection by default
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
