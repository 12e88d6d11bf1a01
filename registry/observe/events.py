"""What handlers and the auth gate report, in their own words; metrics and logs follow.

Callers say what happened ("authenticated", "pulled a blob") without knowing metric names or
label sets, which live in `metrics.py`. Label values are fixed words chosen here and by the
callers, never request data.
"""

from __future__ import annotations

from typing import Literal

from registry.observe import context
from registry.observe.metrics import (
    AUTH_ATTEMPTS,
    PROXY_COALESCED,
    PROXY_FETCHED_BYTES,
    PROXY_HITS,
    PROXY_MISSES,
    PROXY_STALE,
    PROXY_TOKENS,
    PROXY_UPSTREAM_DURATION,
    PROXY_UPSTREAM_REQUESTS,
    PULLS,
    PUSHES,
    TOKENS_ISSUED,
    UPLOAD_SESSIONS,
)

AuthMethod = Literal["basic", "bearer", "password", "refresh_token", "anonymous", "other"]
Kind = Literal["blob", "manifest"]
UploadEvent = Literal["started", "completed", "failed", "cancelled"]


def authenticated(method: AuthMethod, user: str) -> None:
    """Credentials (or anonymous access) accepted: count it, and name the user in the log."""
    AUTH_ATTEMPTS.labels(method, "success").inc()
    context.set_user(user)


def auth_failed(method: AuthMethod) -> None:
    """Credentials presented and refused (a request without any is not counted)."""
    AUTH_ATTEMPTS.labels(method, "failure").inc()


def token_issued(kind: Literal["access", "refresh"]) -> None:
    TOKENS_ISSUED.labels(kind).inc()


def upload(event: UploadEvent) -> None:
    UPLOAD_SESSIONS.labels(event).inc()


def pushed(kind: Kind) -> None:
    PUSHES.labels(kind).inc()


def pulled(kind: Kind) -> None:
    PULLS.labels(kind).inc()


# --- the pull-through cache: `cache` is a configured cache's name, never request data


def upstream_request(cache: str, kind: str, outcome: str, seconds: float) -> None:
    PROXY_UPSTREAM_REQUESTS.labels(cache, kind, outcome).inc()
    PROXY_UPSTREAM_DURATION.labels(cache, kind).observe(seconds)


def upstream_token(cache: str) -> None:
    PROXY_TOKENS.labels(cache).inc()


def cache_hit(cache: str, kind: Kind) -> None:
    PROXY_HITS.labels(cache, kind).inc()


def cache_miss(cache: str, kind: Kind) -> None:
    PROXY_MISSES.labels(cache, kind).inc()


def fetched(cache: str, size: int) -> None:
    PROXY_FETCHED_BYTES.labels(cache).inc(size)


def stale_served(cache: str) -> None:
    PROXY_STALE.labels(cache).inc()


def coalesced(cache: str) -> None:
    PROXY_COALESCED.labels(cache).inc()
