"""One ASGI middleware around the whole application: request id, metrics, access log.

It sits outside Starlette so that it sees every request, including those no route matches and
those an exception handler answered. Per request it

- takes the id from `X-Request-Id` when it is short and plain (else makes one), returns it in
  the response's `X-Request-Id` and stamps it on every log line the request causes;
- labels everything with the matched route's name (`unknown` when none matches): never the
  raw path or the repository, so the number of series stays bounded;
- counts body bytes as they pass, times the request to the end of its response body, and
  keeps the in-flight gauge;
- writes one access log line: route, method, path (never the query string, which may carry
  anything), status, duration, bytes, client address, user and user agent. Headers other than
  the user agent and the request id are never logged, and bodies never are.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Sequence
from ipaddress import ip_address

from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.observe import context
from registry.observe.metrics import (
    HTTP_DURATION,
    HTTP_IN_FLIGHT,
    HTTP_RECEIVED,
    HTTP_REQUESTS,
    HTTP_SENT,
    method_label,
)

access_log = logging.getLogger("registry.access")

UNKNOWN_ROUTE = "unknown"
# Probes and scrapes come every few seconds from machines: their lines are logged at debug.
QUIET_ROUTES = frozenset({"livez", "readyz", "metrics"})
REQUEST_ID = re.compile(r"[A-Za-z0-9._~:/+=@-]{1,128}")
MAX_LOGGED_PATH = 1024
MAX_LOGGED_AGENT = 256


def request_id(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The caller's id when it is safe to log and echo, otherwise a fresh one."""
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if REQUEST_ID.fullmatch(text):
                return text
            break
    return _fresh_id()


class _Ids:
    """Fresh request ids: a random prefix per process and a counter, 32 hex digits like a
    UUID. Unique without a system call per request; ids need not be unpredictable."""

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._count = itertools.count()

    def __call__(self) -> str:
        if self._pid != os.getpid():  # a new worker process: a prefix of its own
            self._pid, self._prefix = os.getpid(), secrets.token_hex(8)
        return f"{self._prefix}{next(self._count):016x}"


_fresh_id = _Ids()


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def client_address(scope: Scope, trust_forwarded: bool) -> str | None:
    """The peer, or behind a trusted proxy the address that proxy appended to
    `X-Forwarded-For` (the last one: entries before it are whatever the client sent)."""
    peer = scope.get("client")
    address = str(peer[0]) if peer else None
    if trust_forwarded:
        forwarded = _header(scope, b"x-forwarded-for")
        if forwarded:
            last = forwarded.rsplit(",", 1)[-1].strip()
            with contextlib.suppress(ValueError):  # not an address: keep the peer's
                address = str(ip_address(last))
    return address


def _printable(text: str) -> str:
    """Control characters escaped, so a crafted path cannot forge a line of a text log."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


class _RouteSeries:
    """One route's metric children, looked up once instead of on every request (a label
    lookup takes a lock). Routes, methods and status codes are few, so this stays small."""

    def __init__(self, route: str) -> None:
        self.route = route
        self.in_flight = HTTP_IN_FLIGHT.labels(route)
        self.received = HTTP_RECEIVED.labels(route)
        self.sent = HTTP_SENT.labels(route)
        self._answered: dict[tuple[str, int], Counter] = {}
        self._durations: dict[str, Histogram] = {}

    def answered(self, method: str, code: int) -> Counter:
        child = self._answered.get((method, code))
        if child is None:
            child = self._answered[(method, code)] = HTTP_REQUESTS.labels(
                self.route, method, str(code)
            )
        return child

    def duration(self, method: str) -> Histogram:
        child = self._durations.get(method)
        if child is None:
            child = self._durations[method] = HTTP_DURATION.labels(self.route, method)
        return child


class Observe:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute], *, trust_forwarded: bool) -> None:
        self.app = app
        self.routes = tuple(routes)
        self.trust_forwarded = trust_forwarded
        self._series: dict[str, _RouteSeries] = {}

    def series(self, route: str) -> _RouteSeries:
        series = self._series.get(route)
        if series is None:
            series = self._series[route] = _RouteSeries(route)
        return series

    def route_name(self, scope: Scope) -> str:
        """The name of the route Starlette will pick; a wrong method still names the route."""
        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "name", None) or UNKNOWN_ROUTE)
            if match is Match.PARTIAL and partial is None:
                partial = str(getattr(route, "name", None) or UNKNOWN_ROUTE)
        return partial or UNKNOWN_ROUTE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await _Exchange(self, scope, receive, send).run()


class _Exchange:
    """One HTTP request and its answer as they pass: the middleware's state for a request
    (bytes each way, status, whether the answer is complete) lives here, one object per
    request, and the application receives and sends through its methods."""

    def __init__(self, observe: Observe, scope: Scope, receive: Receive, send: Send) -> None:
        self.started = time.perf_counter()
        self.observe = observe
        self.scope = scope
        self._receive = receive
        self._send = send
        self.method = str(scope["method"])
        route = observe.route_name(scope)
        self.info = context.RequestInfo(request_id(scope.get("headers", ())), route)
        self.series = observe.series(route)
        self._stamp = (b"x-request-id", self.info.request_id.encode())
        self.status: int | None = None
        self.received = 0
        self.sent = 0
        self.finished = False  # the last byte of the answer went out
        self.error: BaseException | None = None

    async def run(self) -> None:
        token = context.CURRENT.set(self.info)
        self.series.in_flight.inc()
        try:
            await self.observe.app(self.scope, self.receive, self.send)
        except Exception as exc:
            self.error = exc
            # Starlette's handler for unexpected errors has already answered 500 and logged
            # the traceback, then re-raises: nothing more to do once the answer is complete.
            # Otherwise the server must see the error (and cut a half-sent response).
            if not self.finished:
                raise
        except BaseException as exc:  # cancelled: the connection or the server is going away
            self.error = exc
            raise
        finally:
            self.series.in_flight.dec()
            self._record()
            context.CURRENT.reset(token)

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            size = len(message.get("body", b""))
            if size:
                self.received += size
                self.series.received.inc(size)
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            message["headers"] = [*message.get("headers", ()), self._stamp]
        elif message["type"] == "http.response.body":
            size = len(message.get("body", b""))
            if size:
                self.sent += size
                self.series.sent.inc(size)
            if not message.get("more_body", False):
                self.finished = True
        await self._send(message)

    def _record(self) -> None:
        """The request's metrics and its access log line."""
        duration = time.perf_counter() - self.started
        status = self.status if self.status is not None else 500
        method = method_label(self.method)
        self.series.answered(method, status).inc()
        self.series.duration(method).observe(duration)
        self._log(status, duration)

    def _log(self, status: int, duration: float) -> None:
        info = self.info
        if status >= 500:
            level = logging.ERROR
        elif info.route in QUIET_ROUTES:
            level = logging.DEBUG
        else:
            level = logging.INFO
        if not access_log.isEnabledFor(level):
            return
        path = str(self.scope.get("path", ""))[:MAX_LOGGED_PATH]
        fields: dict[str, object] = {
            "route": info.route,
            "method": self.method[:16],
            "path": path,
            "status": status,
            "duration_seconds": round(duration, 6),
            "bytes_received": self.received,
            "bytes_sent": self.sent,
            "client": client_address(self.scope, self.observe.trust_forwarded),
            "user": info.user,
        }
        agent = _header(self.scope, b"user-agent")
        if agent is not None:
            fields["user_agent"] = agent[:MAX_LOGGED_AGENT]
        if self.error is not None and not self.finished:
            fields["error"] = type(self.error).__name__
        access_log.log(
            level,
            "%s %s %d",
            _printable(self.method[:16]),
            _printable(path),
            status,
            extra={"fields": fields, "request_id": info.request_id},
        )
