"""Answers sent before the request body was read, and bodies that stop arriving, over raw
sockets against the real server: no request may outlive its answer, the connection stays
usable when the rest of the body could be read, and a stalled body frees its upload."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import start_scaled
from tests.oci import digest_of
from tests.server import RunningRegistry, basic_header, start

MIB = 1024 * 1024
WRONG = "Basic " + base64.b64encode(b"admin:wrong-password").decode()
# A missing digest: the handler never reads the body, whatever the credentials.
UPLOAD = f"/v2/early/blobs/uploads/?digest=sha256:{'0' * 64}"


def chunked(data: bytes, size: int = MIB) -> bytes:
    pieces = [
        b"%x\r\n" % len(data[i : i + size]) + data[i : i + size] + b"\r\n"
        for i in range(0, len(data), size)
    ]
    return b"".join(pieces) + b"0\r\n\r\n"


def request_head(
    server: RunningRegistry, line: str, auth: str | None, length: int | None, *extra: str
) -> bytes:
    """A request head; `length` None means a chunked body."""
    head = f"{line} HTTP/1.1\r\nHost: {urlsplit(server.url).netloc}\r\n"
    head += "".join(f"{header}\r\n" for header in extra)
    if auth is not None:
        head += f"Authorization: {auth}\r\n"
    if length is None:
        head += "Transfer-Encoding: chunked\r\n"
    else:
        head += f"Content-Length: {length}\r\n"
    return (head + "\r\n").encode()


def connect(server: RunningRegistry) -> socket.socket:
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    # A hang fails the test at this timeout instead of blocking it.
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole answer (every answer of the registry carries Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"connection closed before an answer: {data!r}"
        data += piece
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(rest) < length:
        piece = sock.recv(65536)
        assert piece, "connection closed in the middle of an answer"
        rest += piece
    return int(lines[0].split()[1]), headers, rest[:length]


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    """The client keeps sending its body while it reads the answer, as real clients do."""

    def send() -> None:
        # The server may close: what the test then sees says whether it should have.
        with contextlib.suppress(OSError):
            sock.sendall(data)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_early_answer_reads_the_body_and_keeps_the_connection(
    registry_server: RunningRegistry, framing: str
) -> None:
    """Wrong credentials cost a password check, time enough for 20 MiB to queue up behind
    the handler; the 401 comes whole, then the same connection serves the retry."""
    body = os.urandom(20 * MIB)
    length = len(body) if framing == "content-length" else None
    payload = body if length is not None else chunked(body)
    with connect(registry_server) as sock:
        sock.sendall(request_head(registry_server, f"POST {UPLOAD}", WRONG, length))
        sender = send_in_background(sock, payload)
        status, headers, answer = read_response(sock)
        assert status == 401
        assert json.loads(answer)["errors"][0]["code"] == "UNAUTHORIZED"
        assert headers.get("connection") != "close"
        sender.join(timeout=30)
        assert not sender.is_alive(), "the server stopped reading the body"
        auth = basic_header(registry_server)
        sock.sendall(request_head(registry_server, "GET /v2/", auth, 0))
        assert read_response(sock)[0] == 200


def test_an_early_answer_to_a_body_too_long_to_read_says_close(
    registry_server: RunningRegistry,
) -> None:
    """The declared rest is beyond what the server reads after an early answer: it says so
    in the answer; the client stops sending and closes its side, and the server closes the
    connection, cleanly, instead of holding the request."""
    with connect(registry_server) as sock:
        sock.sendall(request_head(registry_server, f"POST {UPLOAD}", None, 200 * MIB))
        send_in_background(sock, b"x" * MIB).join(timeout=30)
        status, headers, _ = read_response(sock)
        assert status == 401
        assert headers["connection"] == "close"
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(65536) == b""  # closed, not held


def _access_line(server: RunningRegistry, path: str) -> dict[str, object] | None:
    for line in list(server.output):
        if '"registry.access"' in line and path in line:
            entry: dict[str, object] = json.loads(line)
            return entry
    return None


def test_the_access_log_records_the_answer_not_the_drain(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    """The client sends part of its body and then nothing: the server reads the rest for up
    to ten seconds before it closes. The access line must be written while that connection
    is still open, with the application's status, not once the draining is over."""
    server = start_registry()
    with connect(server) as sock:
        sock.sendall(request_head(server, "POST /v2/logged/blobs/uploads/", None, 4 * MIB))
        sock.sendall(b"x" * 1000)
        assert read_response(sock)[0] == 401
        entry = None
        for _ in range(400):  # the line is written as the handler returns: a bounded wait
            entry = _access_line(server, "/v2/logged/")
            if entry is not None:
                break
            time.sleep(0.025)
        assert entry is not None, "no access line while the body was being drained"
        assert (entry["status"], entry["bytes_received"]) == (401, 0)
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # still open: the drain goes on, and was not in the logged request


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _settled(measure: Callable[[], int], target: int) -> int:
    """The measure once it is back at the target, or its last value after a bounded number
    of tries: the server shuts its side down (the client sees the end) a moment before the
    event loop closes the socket, so a single look right away may come too early."""
    value = measure()
    for _ in range(400):
        if value <= target:
            break
        time.sleep(0.025)
        value = measure()
    return value


def _unauthenticated_post(server: RunningRegistry, body: bytes) -> int:
    """A POST the server answers early, from a client that asks to close after it: the
    server closes once the answer is out and the body read, with a FIN (a reset would raise
    here)."""
    with connect(server) as sock:
        head = request_head(server, f"POST {UPLOAD}", WRONG, len(body), "Connection: close")
        sock.sendall(head)
        sender = send_in_background(sock, body)
        status = read_response(sock)[0]
        assert sock.recv(65536) == b""
        sender.join(timeout=30)
        return status


def test_a_burst_of_early_answers_leaves_nothing_behind(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    """Twenty 20 MiB unauthenticated POSTs at once: every one answered and its connection
    closed, and the worker holds no more descriptors than before and has not kept their
    bodies (each held request kept about 10 MiB of queued body).

    The clients ask to close: Hypercorn keeps the socket of an idle keep-alive connection
    that the client closed until its keep-alive timeout, which would hide what this checks.
    """
    server = start_registry()
    pid = server.process.pid  # one worker: it serves in this process
    body = os.urandom(20 * MIB)
    assert _unauthenticated_post(server, body) == 401  # warm up: imports, pools, buffers
    fds, rss = _open_fds(pid), _rss_mib(pid)
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda _: _unauthenticated_post(server, body), range(20)))
    assert statuses == [401] * 20
    assert _settled(lambda: _open_fds(pid), fds) <= fds
    assert _rss_mib(pid) < rss + 64


@pytest.fixture(params=["filesystem", "s3+redis"])
def stall_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningRegistry]:
    """A server whose request bodies may pause one second."""
    if request.param == "filesystem":
        server = start(tmp_path / "data", "-bodytimeout", "1")
    else:
        services = request.getfixturevalue("scaled_services")
        server = start_scaled(services, tmp_path / "data", "-bodytimeout", "1")
    yield server
    server.stop()


def test_a_stalled_body_fails_and_frees_its_upload(stall_server: RunningRegistry) -> None:
    first, rest = b"0123456789", b"abcdefghij"
    with stall_server.client() as http:
        started = http.post("/v2/stall/blobs/uploads/")
        assert started.status_code == 202
        location = started.headers["Location"]
        with connect(stall_server) as sock:
            auth = basic_header(stall_server)
            sock.sendall(request_head(stall_server, f"PATCH {location}", auth, 1000) + first)
            status, _, answer = read_response(sock)  # the client stalls: nothing more is sent
        assert status == 400
        error = json.loads(answer)["errors"][0]
        assert error["code"] == "BLOB_UPLOAD_INVALID"
        assert "no part of the request body arrived in 1 s" in error["message"]
        assert http.get(location).headers["Range"] == "0-0"  # nothing of the stalled chunk
        r = http.patch(location, content=first + rest)
        assert r.status_code == 202, r.text
        r = http.put(location, params={"digest": digest_of(first + rest)})
        assert r.status_code == 201, r.text
