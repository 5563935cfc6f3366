"""Latency of CMP requests whose HTTP header and body are written separately, as `openssl cmp`
does, on one kept-alive connection: uvicorn's own protocol against sanscmp's QuickAck protocol,
measured in the same run. Run: `python bench/bench_keepalive.py` (Linux; loopback only).
"""

from __future__ import annotations

import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cmp_pki import make_client, make_server

from sanscmp.transport.http import CmpHttpApp, HttpConfig
from sanscmp.transport.quickack import QuickAckHttpProtocol
from sanscmp.transport.service import EngineService

ROUNDS = 50


def serve(http: object) -> tuple[uvicorn.Server, int]:
    server = make_server()
    app = CmpHttpApp(HttpConfig(services={"": EngineService(server.process_request)}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    runner = uvicorn.Server(uvicorn.Config(app, log_level="warning", http=http))  # type: ignore[arg-type]
    threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not runner.started:
        time.sleep(0.01)
    return runner, sock.getsockname()[1]


def split_write_latencies(port: int, body: bytes) -> list[float]:
    conn = socket.create_connection(("127.0.0.1", port))  # Nagle on, like openssl cmp
    head = (
        "POST /.well-known/cmp HTTP/1.1\r\nHost: x\r\nContent-Type: application/pkixcmp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    out = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        conn.sendall(head)
        conn.sendall(body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        header, rest = data.split(b"\r\n\r\n", 1)
        length = next(
            int(line.split(b":")[1])
            for line in header.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        while len(rest) < length:
            rest += conn.recv(65536)
        out.append((time.perf_counter() - start) * 1000)
    conn.close()
    return out


def main() -> None:
    body = make_client("mac").genm([]).request.dump()  # answered (replay refused) either way
    results = {}
    for name, http in (("uvicorn default", "auto"), ("sanscmp QuickAck", QuickAckHttpProtocol)):
        runner, port = serve(http)
        results[name] = split_write_latencies(port, body)
        runner.should_exit = True
    print(f"{'protocol':<18} {'first ms':>9} {'median ms':>10} {'p90 ms':>8}")
    for name, lat in results.items():
        p90 = statistics.quantiles(lat, n=10)[-1]
        print(f"{name:<18} {lat[0]:>9.2f} {statistics.median(lat):>10.2f} {p90:>8.2f}")
    ratio = statistics.median(results["uvicorn default"]) / statistics.median(
        results["sanscmp QuickAck"]
    )
    print(f"median ratio default/QuickAck: {ratio:.1f}x")


if __name__ == "__main__":
    main()
