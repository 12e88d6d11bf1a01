"""A minimal blocking HTTP/1.1 keep-alive client on a raw socket, for bulk transfers.

It costs the shared CPU almost nothing: a request body is a buffer handed whole to
`socket.sendall` (one C loop, no Python per byte) or an iterator of big chunks; a response body
is read with `recv_into` into one reused buffer and dropped (or hashed) instead of being kept.
Every failure raises `HTTPFailure` carrying the request and the response as seen on the wire, so
a server bug can be reported exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

RECV_BUFFER = 4 * 1024 * 1024
MAX_HEAD = 64 * 1024
MAX_KEPT_BODY = 1024 * 1024


class HTTPFailure(Exception):
    """The request and what came back, to paste into a bug report."""

    def __init__(self, reason: str, request: str, response: str = "") -> None:
        self.reason = reason
        self.request = request
        self.response = response
        super().__init__(f"{reason}\n--- request ---\n{request}\n--- response ---\n{response}")


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes = b""
    length: int = 0
    sha256: str | None = None
    raw_head: str = ""
    elapsed: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        shown = self.body[:2000].decode("utf-8", "replace")
        return f"{self.raw_head}\n{shown}"


Body = bytes | bytearray | memoryview | Iterable[bytes | bytearray | memoryview] | None


class Connection:
    """One keep-alive connection; reconnects by itself when the server closed it."""

    def __init__(self, host: str, port: int, auth: str | None = None, timeout: float = 300) -> None:
        self.host, self.port, self.auth, self.timeout = host, port, auth, timeout
        self._sock: socket.socket | None = None
        self._buf = bytearray(RECV_BUFFER)
        self._view = memoryview(self._buf)
        self._pending = b""

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._pending = b""

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
        return self._sock

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        length: int | None = None,
        keep: bool = True,
        hash_body: bool = False,
        expect: Iterable[int] | None = None,
    ) -> Response:
        """Send one request; `keep=False` drops the response body instead of keeping it."""
        if isinstance(body, bytes | bytearray | memoryview):
            length = len(body)
        sent_headers = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.auth:
            sent_headers["Authorization"] = self.auth
        if body is not None or method in ("PUT", "POST", "PATCH"):
            sent_headers["Content-Length"] = str(length or 0)
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in sent_headers.items()
        )
        described = head + f"\r\n<body: {length or 0} bytes>"
        started = time.perf_counter()
        sock = self._connect()
        try:
            sock.sendall((head + "\r\n").encode("latin-1"))
            if isinstance(body, bytes | bytearray | memoryview):
                sock.sendall(body)
            elif body is not None:
                for chunk in body:
                    sock.sendall(chunk)
        except OSError as exc:
            # The server may have answered early (e.g. 401/400) and closed: show that answer.
            answer = ""
            with contextlib.suppress(OSError, HTTPFailure, ValueError):
                sock.settimeout(5)
                answer = self._read_response(method, keep=True, hash_body=False).describe()
            self.close()
            raise HTTPFailure(f"sending failed: {exc!r}", described, answer) from None
        try:
            response = self._read_response(method, keep=keep, hash_body=hash_body)
        except OSError as exc:
            self.close()
            raise HTTPFailure(f"reading the response failed: {exc!r}", described) from None
        response.elapsed = time.perf_counter() - started
        if response.headers.get("connection", "").lower() == "close":
            self.close()
        if expect is not None and response.status not in set(expect):
            raise HTTPFailure(
                f"unexpected status {response.status}", described, response.describe()
            )
        return response

    def _recv_some(self) -> bytes:
        assert self._sock is not None
        data = self._sock.recv(MAX_HEAD)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def _read_response(self, method: str, *, keep: bool, hash_body: bool) -> Response:
        data = self._pending
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_HEAD:
                raise HTTPFailure("response head too large", "", data[:2000].decode("latin-1"))
            data += self._recv_some()
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        _, status, reason = [*lines[0].split(" ", 2), "", ""][:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        response = Response(int(status), reason, headers, raw_head=head.decode("latin-1"))
        hasher = hashlib.sha256() if hash_body else None
        if method == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200:
            self._pending = rest
            return response
        if "content-length" in headers:
            rest = self._read_exact(int(headers["content-length"]), rest, response, keep, hasher)
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            rest = self._read_chunked(rest, response, keep, hasher)
        else:
            raise HTTPFailure("response without a length", "", response.describe())
        self._pending = rest
        if hasher is not None:
            response.sha256 = hasher.hexdigest()
        return response

    def _read_exact(
        self,
        size: int,
        rest: bytes,
        response: Response,
        keep: bool,
        hasher: hashlib._Hash | None,
    ) -> bytes:
        first = rest[:size]
        kept = [first] if keep else []
        if hasher is not None:
            hasher.update(first)
        got = len(first)
        assert self._sock is not None
        while got < size:
            n = self._sock.recv_into(self._view, min(RECV_BUFFER, size - got))
            if n == 0:
                raise ConnectionError(f"the server closed the body after {got} of {size} bytes")
            if hasher is not None:
                hasher.update(self._view[:n])
            if keep and got < MAX_KEPT_BODY:
                kept.append(bytes(self._view[:n]))
            got += n
        response.length = got
        response.body = b"".join(kept)
        return rest[size:]

    def _read_chunked(
        self, rest: bytes, response: Response, keep: bool, hasher: hashlib._Hash | None
    ) -> bytes:
        kept: list[bytes] = []
        for _ in range(1_000_000):
            while b"\r\n" not in rest:
                if len(rest) > MAX_HEAD:
                    raise HTTPFailure("chunk size line too long", "", rest[:200].decode("latin-1"))
                rest += self._recv_some()
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += self._recv_some()
            chunk, rest = rest[:size], rest[size + 2 :]
            if hasher is not None:
                hasher.update(chunk)
            if keep:
                kept.append(chunk)
            response.length += size
            if size == 0:
                break
        response.body = b"".join(kept)
        return rest


def target_of(location: str) -> str:
    """A `Location` header as a request target: absolute URLs lose scheme and host."""
    if "://" in location:
        after = location.split("://", 1)[1]
        slash = after.find("/")
        return after[slash:] if slash >= 0 else "/"
    return location


def with_query(target: str, key: str, value: str) -> str:
    return f"{target}{'&' if '?' in target else '?'}{key}={value}"
