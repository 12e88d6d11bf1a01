"""The coordinator contract: what every worker must agree on, and nothing else.

The local implementation keeps this under the data directory (one host, many processes); the
distributed one keeps it in Redis. Records are opaque bytes so the model owns their format.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol


class LockTimeout(Exception):
    """The lock was still held by someone else when the wait ran out."""


class CoordinatorUnavailable(Exception):
    """The coordinator (Redis) cannot be used right now: unreachable, timed out, read-only,
    wrong credentials. Retryable from the client's point of view: the registry answers 503."""


class Coordinator(Protocol):
    name: str

    def lock(self, name: str, *, timeout: float = 30.0) -> AbstractAsyncContextManager[None]:
        """Exclusive across every worker that shares this coordinator."""
        ...

    async def get_session(self, session_id: str) -> bytes | None: ...

    async def put_session(self, session_id: str, record: bytes) -> None: ...

    async def delete_session(self, session_id: str) -> None: ...
