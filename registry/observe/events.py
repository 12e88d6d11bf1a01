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
