"""How fast are the benchmark's clients against servers that do nothing?

    python bench/selfcheck.py

Starts two trivial servers pinned to CPU 1 (a raw-socket sink/source for blobs, and a uvloop
server answering every request with a fixed 2-byte response), runs the bench's own clients
pinned to CPU 0 against them, and prints what the clients reach and the CPU they use per
request or per GB. If those rates are far above what the registries reach in bench/run.py, and
the clients' cores there are small, the client is not the bottleneck.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import bulk
import loadgen
from rawhttp import Connection

SIZE = 256 * 1024 * 1024

SERVER = r"""
import asyncio, os, socket, sys, threading
os.sched_setaffinity(0, {1})
PAYLOAD = bytes(int(sys.argv[3]))

def bulk_server(port):
    srv = socket.create_server(("127.0.0.1", port))
    buf = memoryview(bytearray(4 << 20))
    while True:
        conn, _ = srv.accept()
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                data = conn.recv(65536)
                if not data:
                    break
                pending += data
            if b"\r\n\r\n" not in pending:
                conn.close()
                break
            head, _, pending = pending.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            left = length - len(pending)
            pending = pending[length:] if left <= 0 else b""
            while left > 0:
                left -= conn.recv_into(buf, min(len(buf), left))
            if head.startswith(b"GET"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(PAYLOAD))
                conn.sendall(PAYLOAD)
            elif head.startswith(b"POST"):
                conn.sendall(b"HTTP/1.1 202 Accepted\r\nLocation: /up\r\nContent-Length: 0\r\n\r\n")
            elif head.startswith(b"PATCH"):
                conn.sendall(b"HTTP/1.1 202 Accepted\r\nLocation: /up\r\nContent-Length: 0\r\n\r\n")
            else:
                conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")

RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"

class Fixed(asyncio.Protocol):
    def connection_made(self, transport):
        self.t, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            self.t.write(RESP[:-2] if head.startswith(b"HEAD") else RESP)

async def main():
    loop = asyncio.get_running_loop()
    await loop.create_server(Fixed, "127.0.0.1", int(sys.argv[2]))
    print("ready", flush=True)
    await asyncio.sleep(600)

threading.Thread(target=bulk_server, args=(int(sys.argv[1]),), daemon=True).start()
try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> int:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    bulk_port, rate_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(bulk_port), str(rate_port), str(SIZE)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("trivial server did not start")
        print(f"client on CPU 0, trivial servers on CPU 1, {Path(sys.executable).name}")
        blob = bulk.random_blob(SIZE)
        conn = Connection("127.0.0.1", bulk_port)
        checks = {
            "push monolithic": lambda: bulk.push_monolithic(conn, "x", blob.data, SIZE, "d"),
            "push chunked 8 MiB": lambda: bulk.push_chunked(
                conn, "x", bulk.slices(blob.data, 8 << 20), SIZE, "d"
            ),
            "pull": lambda: bulk.pull(conn, "x", "d", SIZE),
        }
        for label, run in checks.items():
            c0 = cpu()
            seconds = min(run() for _ in range(3))
            used = (cpu() - c0) / 3
            print(
                f"  {label:20s} {bulk.mb_per_s(SIZE, seconds):8.0f} MB/s, "
                f"client {used / (SIZE / 1e9):.2f} CPU-s per GB"
            )
        conn.close()
        url = f"http://127.0.0.1:{rate_port}/"
        runs = [
            (
                "wrk GET",
                lambda: loadgen.run_wrk(loadgen.find_wrk() or "wrk", url, "GET", {}, 32, 5),
            ),
            (
                "python GET",
                lambda: loadgen.run_python("127.0.0.1", rate_port, "/", "GET", {}, 32, 5),
            ),
            (
                "python HEAD",
                lambda: loadgen.run_python("127.0.0.1", rate_port, "/", "HEAD", {}, 32, 5),
            ),
        ]
        for label, go in runs:
            if label.startswith("wrk") and loadgen.find_wrk() is None:
                print(f"  {label:20s} skipped: wrk is not installed")
                continue
            r = go()
            print(
                f"  {label:20s} {r.rps:8.0f} req/s, client {r.client_cpu / r.seconds:.2f} cores, "
                f"{1e6 * r.client_cpu / max(r.requests, 1):.1f} CPU-us per request"
            )
    finally:
        server.kill()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
