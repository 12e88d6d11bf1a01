"""A reverse proxy in front of the upstream registry that fails on demand.

The pull-through cache must survive an upstream that is down, erroring, rate limiting, slow,
or sending bad blob bytes; a real registry does none of that on cue, so tests put this proxy
between the cache and Distribution and switch `mode` between requests:

- `pass`: forward everything unchanged (headers too: the `WWW-Authenticate` realm still points
  at the token issuer directly);
- `down`: close the connection without any response (the client sees a transport error);
- `error500`: answer every request 500;
- `ratelimit`: answer a manifest GET 429 with `Retry-After: retry_after` and a Docker-style
  error body; a manifest HEAD and everything else pass, as on Docker Hub;
- `slow`: hold each request `delay` seconds before forwarding it (the wait ends early when the
  mode changes or the proxy stops, so teardown is prompt);
- `truncate`: a blob GET keeps its full `Content-Length` but the body stops at half, then the
  connection closes;
- `corrupt`: a blob GET body has its first byte changed: same length, same headers, wrong
  digest.

Bodies stream through in chunks (httpx streaming), never whole. Every request is recorded at
arrival as `Seen(method, path, status)` (status is filled in before the answer is sent, 0 for
`down`), so a test reading `count` after its client got an answer sees that request.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

import httpx

from tests.proxy.serving import LoopbackServer, QuietHandler, owner_of

Mode = Literal["pass", "down", "error500", "ratelimit", "slow", "truncate", "corrupt"]
MODES: tuple[Mode, ...] = ("pass", "down", "error500", "ratelimit", "slow", "truncate", "corrupt")
Kind = Literal["base", "manifest", "blob", "upload", "tags", "referrers", "catalog", "other"]

# Headers of one connection, not of the message (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
CHUNK = 64 * 1024

_NAME = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_KINDS: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    ("base", re.compile(r"^/v2/?$")),
    ("catalog", re.compile(r"^/v2/_catalog$")),
    ("manifest", re.compile(rf"^/v2/{_NAME}/manifests/[^/]+$")),
    ("upload", re.compile(rf"^/v2/{_NAME}/blobs/uploads/.*$")),
    ("blob", re.compile(rf"^/v2/{_NAME}/blobs/[^/]+$")),
    ("tags", re.compile(rf"^/v2/{_NAME}/tags/list$")),
    ("referrers", re.compile(rf"^/v2/{_NAME}/referrers/[^/]+$")),
)


def kind_of(target: str) -> Kind:
    """What a request target (path, with or without its query) addresses."""
    path = urlsplit(target).path
    for kind, pattern in _KINDS:
        if pattern.match(path):
            return kind
    return "other"


class Seen(NamedTuple):
    method: str
    path: str  # the request target as sent: path and query
    status: int | None  # None while undecided; 0 when `down` answered nothing

    @property
    def kind(self) -> Kind:
        return kind_of(self.path)


class FaultProxy:
    """The proxy's settings, counters and server. Settings are read once per request, so a
    test may change them between requests from its own thread."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.retry_after = 30  # seconds, the `Retry-After` of `ratelimit`
        self.delay = 60.0  # seconds, the wait of `slow`
        self._mode: Mode = "pass"
        self._closed = False
        self._changed = threading.Condition()
        self._seen: list[Seen] = []
        self._generation = 0  # bumped by `reset`: a late answer must not mark a newer request
        # Long reads: a blob body may take its time; `slow` waits here, not in httpx.
        self.client = httpx.Client(timeout=httpx.Timeout(60.0), follow_redirects=False)
        for name in ("Accept", "Accept-Encoding", "User-Agent"):  # forward the client's own
            del self.client.headers[name]
        self._server: LoopbackServer | None = None

    # --- settings

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}")
        with self._changed:
            self._mode = mode
            self._changed.notify_all()  # a `slow` wait ends when the mode changes

    def wait_while_slow(self) -> None:
        """Hold a request for `delay` seconds unless the mode changes or the proxy stops."""
        with self._changed:
            self._changed.wait_for(lambda: self._mode != "slow" or self._closed, self.delay)

    def reset(self) -> None:
        """Back to `pass` with default settings and no recorded requests."""
        self.mode = "pass"
        self.retry_after = 30
        self.delay = 60.0
        with self._changed:
            self._seen.clear()
            self._generation += 1

    # --- counters

    @property
    def requests(self) -> list[Seen]:
        """A copy of every request seen since the last `reset`, in arrival order."""
        with self._changed:
            return list(self._seen)

    def count(
        self, method: str | None = None, kind: Kind | None = None, status: int | None = None
    ) -> int:
        """Requests seen (optionally: with this method, of this kind, answered this status)."""
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (kind is None or r.kind == kind)
            and (status is None or r.status == status)
        )

    def arrive(self, method: str, path: str) -> tuple[int, int]:
        """Record a request; the returned key lets `answer` fill in its status."""
        with self._changed:
            self._seen.append(Seen(method, path, None))
            return self._generation, len(self._seen) - 1

    def answer(self, key: tuple[int, int], status: int) -> None:
        generation, index = key
        with self._changed:
            if generation == self._generation:  # else a `reset` ran meanwhile (a `slow` wait)
                self._seen[index] = self._seen[index]._replace(status=status)

    # --- serving

    @property
    def url(self) -> str:
        assert self._server is not None, "the fault proxy is not started"
        return self._server.url

    def start(self) -> None:
        self._server = LoopbackServer(_ProxyHandler, self)

    def stop(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.client.close()


def rate_limit_body() -> bytes:
    """Docker Hub's answer to one pull too many."""
    return json.dumps(
        {
            "errors": [
                {
                    "code": "TOOMANYREQUESTS",
                    "message": "You have reached your pull rate limit. You may increase the "
                    "limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit",
                }
            ]
        }
    ).encode()


class _ProxyHandler(QuietHandler):
    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        proxy: FaultProxy = owner_of(self)
        key = proxy.arrive(self.command, self.path)
        mode = proxy.mode
        kind = kind_of(self.path)
        if mode == "down":
            proxy.answer(key, 0)
            self.close_connection = True  # closed unanswered: EOF where a status line was due
            return
        if mode == "error500":
            proxy.answer(key, 500)
            self._reply(500, b"upstream failure injected by the test\n", "text/plain")
            return
        if mode == "ratelimit" and self.command == "GET" and kind == "manifest":
            proxy.answer(key, 429)
            retry = {"Retry-After": str(proxy.retry_after)}
            self._reply(429, rate_limit_body(), "application/json", retry)
            return
        if mode == "slow":
            proxy.wait_while_slow()
        blob_get = kind == "blob" and self.command == "GET"
        try:
            self._forward(proxy, key, mode if blob_get else "pass")
        except (BrokenPipeError, ConnectionResetError, httpx.HTTPError):
            # The client gave up (a timeout, a digest check) or Distribution broke off.
            self.close_connection = True

    def _has_body(self) -> bool:
        chunked = "Transfer-Encoding" in self.headers
        return chunked or int(self.headers.get("Content-Length", "0") or 0) > 0

    def _reply(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        """A response of the proxy's own; the request body is not read, so the connection
        cannot carry another request after one."""
        if self._has_body():
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _request_body(self) -> Iterator[bytes] | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._chunked_body()
        length = int(self.headers.get("Content-Length", "0") or 0)
        return self._sized_body(length) if length else None

    def _sized_body(self, length: int) -> Iterator[bytes]:
        while length > 0:
            data = self.rfile.read(min(CHUNK, length))
            if not data:
                raise ConnectionError("client closed the request body early")
            length -= len(data)
            yield data

    def _chunked_body(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield from self._sized_body(size)
            self.rfile.readline()  # the CRLF after a chunk

    def _forward(self, proxy: FaultProxy, key: tuple[int, int], fault: Mode) -> None:
        headers = [
            (k, v)
            for k, v in self.headers.items()
            if k.lower() not in HOP_BY_HOP and k.lower() != "expect"  # 100-continue: done here
        ]
        body = self._request_body()
        request = proxy.client.build_request(
            self.command, proxy.upstream + self.path, headers=headers, content=body
        )
        try:
            response = proxy.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            proxy.answer(key, 502)
            self._reply(502, f"upstream unreachable: {exc}\n".encode(), "text/plain")
            return
        try:
            proxy.answer(key, response.status_code)
            self._send_response(response, fault)
        finally:
            response.close()

    def _send_response(self, response: httpx.Response, fault: Mode) -> None:
        self.send_response_only(response.status_code, response.reason_phrase)
        for name, value in response.headers.multi_items():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        sized = "Content-Length" in response.headers
        bodiless = self.command == "HEAD" or response.status_code in (204, 304)
        chunked = not sized and not bodiless
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if bodiless:
            return
        ok_blob = response.status_code == 200
        if fault == "truncate" and ok_blob and sized:
            self._send_truncated(response, int(response.headers["Content-Length"]) // 2)
            return
        first = fault == "corrupt" and ok_blob
        for data in response.iter_raw(CHUNK):
            if not data:
                continue  # an empty chunk would end a chunked body
            if first:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
                first = False
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _send_truncated(self, response: httpx.Response, limit: int) -> None:
        """Half the body under the full `Content-Length`, then the connection closes."""
        sent = 0
        for data in response.iter_raw(CHUNK):
            part = data[: limit - sent]
            self.wfile.write(part)
            sent += len(part)
            if sent >= limit:
                break
        self.close_connection = True
