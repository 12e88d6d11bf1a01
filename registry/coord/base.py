"""The coordinator contract: what every worker must agree on, and nothing else.

The local implementation keeps this under the data directory (one host, many processes); the
distributed one keeps it in Redis. Records are opaque bytes so the model owns their format.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

# An upload session nobody touched for this long is over: Redis expires its record, the local
# coordinator reads it as unknown, and the purge (start-up, garbage collection) removes it.
DEFAULT_SESSION_TTL = 7 * 24 * 3600.0


class LockTimeout(Exception):
    """The lock was still held by someone else when the wait ran out."""


class CoordinatorUnavailable(Exception):
    """The coordinator (Redis) cannot be used right now: unreachable, timed out, read-only,
    wrong credentials. Retryable from the client's point of view: the registry answers 503."""


class IndexNotReady(Exception):
    """The index was never built, or was lost (a Redis without persistence restarted): it
    cannot answer, and the caller reads storage instead until a rebuild has finished."""


class Index(Protocol):
    """Tags, blob links and the list of repositories, where every worker reads them in one
    round trip.

    Storage stays the record; the index is what requests read, so `HEAD` by tag, tag lists
    and the catalog never list or read the object store. It is written after storage (a
    record nobody can see yet is harmless) and, for deletes, before it (a deleted tag is never
    served). While it is not ready, every change also marks its repository dirty, so that a
    rebuild running at the same time reads that repository again before declaring it ready.
    Tag records are opaque bytes; the model owns their format.
    """

    async def ready(self) -> bool: ...

    async def tag(self, name: str, tag: str) -> bytes | None:
        """The tag's record, None when the tag does not exist; IndexNotReady."""
        ...

    async def tags(self, name: str) -> dict[str, bytes] | None:
        """Every tag of a repository, None when the repository does not exist; IndexNotReady."""
        ...

    async def repositories(self, after: str | None, count: int) -> list[str]:
        """Up to `count` repository names after `after`, in byte order; IndexNotReady."""
        ...

    async def linked(self, name: str, digest: str) -> bool:
        """Whether the repository links the blob `digest`; IndexNotReady."""
        ...

    async def linked_many(self, name: str, digests: Sequence[str]) -> list[bool]:
        """`linked` for each of `digests`, in order, in one round trip; IndexNotReady."""
        ...

    async def set_tag(self, name: str, tag: str, record: bytes) -> None: ...

    async def delete_tag(self, name: str, tag: str) -> None: ...

    async def add_repository(self, name: str) -> None: ...

    async def add_link(self, name: str, digest: str) -> None:
        """The blob is linked in the repository (which exists from then on)."""
        ...

    async def delete_link(self, name: str, digest: str) -> None: ...

    async def replace_repository(
        self, name: str, tags: dict[str, bytes], links: frozenset[str]
    ) -> None:
        """Rebuild: the repository with exactly these tags and blob links."""
        ...

    async def take_dirty(self) -> list[str]:
        """Rebuild: the repositories changed since the last call, emptying the set."""
        ...

    async def mark_ready(self) -> bool:
        """Rebuild: ready, unless a repository became dirty since `take_dirty` (then False)."""
        ...

    async def invalidate(self) -> None:
        """Not ready any more: the next request starts a rebuild."""
        ...


class Coordinator(Protocol):
    name: str

    def index(self, store: str) -> Index | None:
        """The index of the store named `store` (registries that share a Redis but not a
        bucket keep apart); None where listing storage is cheap (the embedded default)."""
        ...

    def lock(self, name: str, *, timeout: float = 30.0) -> AbstractAsyncContextManager[None]:
        """Exclusive across every worker that shares this coordinator."""
        ...

    async def get_session(self, session_id: str) -> bytes | None: ...

    async def put_session(self, session_id: str, record: bytes) -> None: ...

    async def delete_session(self, session_id: str) -> None: ...

    async def expired_sessions(self) -> list[str]:
        """Ids of sessions that expired (unknown to `get_session`) but whose records are still
        kept, for a purge to remove with their data. Redis drops expired records itself, so
        it has none; the local coordinator keeps files until they are deleted."""
        ...
