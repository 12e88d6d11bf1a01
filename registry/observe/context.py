"""What the current request is, for the access log and for every log line it causes.

A context variable holds one mutable record per request: the middleware creates it, the auth
gate fills in the user once known, and the log filter stamps the request id on every record
logged while the request runs. Tasks a handler spawns copy the context and so share the record.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    route: str
    user: str | None = None


CURRENT: ContextVar[RequestInfo | None] = ContextVar("registry_request", default=None)


def current() -> RequestInfo | None:
    return CURRENT.get()


def set_user(name: str) -> None:
    """Record who the request acts as (a name, never a credential)."""
    info = CURRENT.get()
    if info is not None:
        info.user = name
