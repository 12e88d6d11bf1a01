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

    def _new_series(self, route: str) -> _RouteSeries:
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
        started = time.perf_counter()
        route = self.route_name(scope)
        method = str(scope["method"])
        info = context.RequestInfo(request_id(scope.get("headers", ())), route)
        token = context.CURRENT.set(info)
        series = self._series.get(route) or self._new_series(route)
        in_flight, received_total, sent_total = series.in_flight, series.received, series.sent
        status: int | None = None
        received = sent = 0
        finished = False
        stamp = (b"x-request-id", info.request_id.encode())

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                if size:
                    received += size
                    received_total.inc(size)
            return message

        async def stamping_send(message: Message) -> None:
            nonlocal status, sent, finished
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", ()), stamp]
            elif message["type"] == "http.response.body":
                size = len(message.get("body", b""))
                if size:
                    sent += size
                    sent_total.inc(size)
                if not message.get("more_body", False):
                    finished = True
            await send(message)

        in_flight.inc()
        error: BaseException | None = None
        try:
            await self.app(scope, counting_receive, stamping_send)
        except Exception as exc:
            error = exc
            # Starlette's handler for unexpected errors has already answered 500 and logged
            # the traceback, then re-raises: nothing more to do once the answer is complete.
            # Otherwise the server must see the error (and cut a half-sent response).
            if not finished:
                raise
        except BaseException as exc:  # cancelled: the connection or the server is going away
            error = exc
            raise
        finally:
            in_flight.dec()
            duration = time.perf_counter() - started
            code = status if status is not None else 500
            method_name = method_label(method)
            series.answered(method_name, code).inc()
            series.duration(method_name).observe(duration)
            self._log(scope, info, method, code, duration, received, sent, error, finished)
            context.CURRENT.reset(token)

    def _log(
        self,
        scope: Scope,
        info: context.RequestInfo,
        method: str,
        status: int,
        duration: float,
        received: int,
        sent: int,
        error: BaseException | None,
        finished: bool,
    ) -> None:
        if status >= 500:
            level = logging.ERROR
        elif info.route in QUIET_ROUTES:
            level = logging.DEBUG
        else:
            level = logging.INFO
        if not access_log.isEnabledFor(level):
            return
        path = str(scope.get("path", ""))[:MAX_LOGGED_PATH]
        fields: dict[str, object] = {
            "route": info.route,
            "method": method[:16],
            "path": path,
            "status": status,
            "duration_seconds": round(duration, 6),
            "bytes_received": received,
            "bytes_sent": sent,
            "client": client_address(scope, self.trust_forwarded),
            "user": info.user,
        }
        agent = _header(scope, b"user-agent")
        if agent is not None:
            fields["user_agent"] = agent[:MAX_LOGGED_AGENT]
        if error is not None and not finished:
            fields["error"] = type(error).__name__
        access_log.log(
            level,
            "%s %s %d",
            _printable(method[:16]),
            _printable(path),
            status,
            extra={"fields": fields, "request_id": info.request_id},
        )
