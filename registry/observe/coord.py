"""A coordinator that times and counts every call of the one it wraps.

Like `storage.py`, an explicit implementation of the `Coordinator` protocol around the real
one: lock waits go to `registry_lock_wait_seconds` (and `registry_lock_timeouts_total` when
the wait runs out), session calls to `registry_coordinator_action_seconds`, and
`CoordinatorUnavailable` (Redis away) to `registry_coordinator_errors_total`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from registry.coord.base import (
    Coordinator,
    CoordinatorUnavailable,
    Index,
    Leadership,
    LockTimeout,
    Vouches,
)
from registry.observe.metrics import (
    COORDINATOR_ACTION,
    COORDINATOR_ERRORS,
    LOCK_TIMEOUTS,
    LOCK_WAIT,
    timed_call,
)

SESSION_ACTIONS = ("get_session", "put_session", "delete_session")
INDEX_ACTIONS = ("index_read", "index_write", "index_rebuild")
# Vouches, pins and the collector's generation (request path), and the collector's own calls.
VOUCH_ACTIONS = ("vouch", "collect")
ACTIONS = ("lock", *SESSION_ACTIONS, *INDEX_ACTIONS, *VOUCH_ACTIONS)
T = TypeVar("T")


class InstrumentedCoordinator:
    def __init__(self, inner: Coordinator) -> None:
        self.inner = inner
        self.name = inner.name
        # Every series exists from the start, so rates and alerts see 0 rather than nothing;
        # the children are looked up once, not on every call.
        self._lock_wait = LOCK_WAIT.labels(self.name)
        self._lock_timeouts = LOCK_TIMEOUTS.labels(self.name)
        self._errors = {a: COORDINATOR_ERRORS.labels(self.name, a) for a in ACTIONS}
        self._seconds = {
            a: COORDINATOR_ACTION.labels(self.name, a)
            for a in (*SESSION_ACTIONS, *INDEX_ACTIONS, *VOUCH_ACTIONS)
        }

    def __repr__(self) -> str:
        return f"InstrumentedCoordinator({self.inner!r})"

    def _timed(self, action: str) -> contextlib.AbstractContextManager[None]:
        return timed_call(self._seconds[action], self._errors[action], CoordinatorUnavailable)

    async def _as(self, action: str, call: Awaitable[T]) -> T:
        """The inner coordinator's call, timed and counted as `action`."""
        with self._timed(action):
            return await call

    def index(self, store: str) -> Index | None:
        inner = self.inner.index(store)
        return None if inner is None else InstrumentedIndex(inner, self._timed)

    def lock(self, name: str, *, timeout: float = 30.0) -> AbstractAsyncContextManager[None]:
        return self._lock(name, timeout)

    @contextlib.asynccontextmanager
    async def _lock(self, name: str, timeout: float) -> AsyncIterator[None]:
        """Only the wait to take the lock is measured; errors of the work done under it are
        the work's own and are not counted here. A try (`timeout` 0) that finds the lock
        taken is an answer, not a timeout: it is not counted (the pull-through cache tries
        a blob's fetch lock to learn whether another process is fetching it)."""
        started = time.perf_counter()
        acquired = False
        try:
            async with self.inner.lock(name, timeout=timeout):
                acquired = True
                self._lock_wait.observe(time.perf_counter() - started)
                yield
        except LockTimeout:
            if not acquired and timeout > 0:
                self._lock_wait.observe(time.perf_counter() - started)
                self._lock_timeouts.inc()
            raise
        except CoordinatorUnavailable:
            if not acquired:
                self._errors["lock"].inc()
            raise

    async def get_session(self, session_id: str) -> bytes | None:
        return await self._as("get_session", self.inner.get_session(session_id))

    async def put_session(self, session_id: str, record: bytes) -> None:
        return await self._as("put_session", self.inner.put_session(session_id, record))

    async def delete_session(self, session_id: str) -> None:
        return await self._as("delete_session", self.inner.delete_session(session_id))

    async def expired_sessions(self) -> list[str]:
        return await self.inner.expired_sessions()  # the purge's, off the request path

    async def session_ids(self) -> list[str]:
        return await self.inner.session_ids()  # the collector's, off the request path

    def vouches(self, store: str) -> Vouches:
        return InstrumentedVouches(self.inner.vouches(store), self._timed)

    def leadership(
        self, name: str, who: str, *, wait: float = 0.0
    ) -> AbstractAsyncContextManager[Leadership]:
        return self.inner.leadership(name, who, wait=wait)


class InstrumentedVouches:
    """Vouches, pins and generation looks as `vouch` (they are on the request path); the
    collector's claims, releases and prunes as `collect`."""

    def __init__(
        self, inner: Vouches, timed: Callable[[str], contextlib.AbstractContextManager[None]]
    ) -> None:
        self.inner = inner
        self._timed = timed

    async def _as(self, action: str, call: Awaitable[T]) -> T:
        with self._timed(action):
            return await call

    async def now(self) -> float:
        return await self._as("collect", self.inner.now())

    async def vouch(self, digests: Sequence[str]) -> list[bool]:
        return await self._as("vouch", self.inner.vouch(digests))

    async def pin(self, digests: Sequence[str], seconds: float) -> list[bool]:
        return await self._as("vouch", self.inner.pin(digests, seconds))

    async def unpin(self, digests: Sequence[str]) -> None:
        return await self._as("vouch", self.inner.unpin(digests))

    async def claim(self, digests: Sequence[str], cutoff: float, token: str) -> list[str]:
        return await self._as("collect", self.inner.claim(digests, cutoff, token))

    async def claimable(self, digests: Sequence[str], cutoff: float) -> list[str]:
        return await self._as("collect", self.inner.claimable(digests, cutoff))

    async def release(self, digests: Sequence[str], hold: float = 0.0) -> None:
        return await self._as("collect", self.inner.release(digests, hold))

    async def prune(self, before: float) -> int:
        return await self._as("collect", self.inner.prune(before))

    async def horizon(self) -> float:
        return await self._as("collect", self.inner.horizon())

    async def generation(self) -> int:
        return await self._as("vouch", self.inner.generation())

    async def advance(self) -> int:
        return await self._as("collect", self.inner.advance())


class InstrumentedIndex:
    """The index's calls, as three actions: reads on the request path, writes of a push or
    delete, and the steps of a rebuild."""

    def __init__(
        self, inner: Index, timed: Callable[[str], contextlib.AbstractContextManager[None]]
    ) -> None:
        self.inner = inner
        self._timed = timed

    async def _as(self, action: str, call: Awaitable[T]) -> T:
        """The inner index's call, timed and counted as `action`."""
        with self._timed(action):
            return await call

    async def ready(self) -> bool:
        return await self._as("index_read", self.inner.ready())

    async def tag(self, name: str, tag: str) -> bytes | None:
        return await self._as("index_read", self.inner.tag(name, tag))

    async def tags(self, name: str) -> dict[str, bytes] | None:
        return await self._as("index_read", self.inner.tags(name))

    async def repositories(self, after: str | None, count: int) -> list[str]:
        return await self._as("index_read", self.inner.repositories(after, count))

    async def linked(self, name: str, digest: str) -> bool:
        return await self._as("index_read", self.inner.linked(name, digest))

    async def linked_many(self, name: str, digests: Sequence[str]) -> list[bool]:
        return await self._as("index_read", self.inner.linked_many(name, digests))

    async def set_tag(self, name: str, tag: str, record: bytes) -> None:
        return await self._as("index_write", self.inner.set_tag(name, tag, record))

    async def delete_tag(self, name: str, tag: str) -> None:
        return await self._as("index_write", self.inner.delete_tag(name, tag))

    async def add_repository(self, name: str) -> None:
        return await self._as("index_write", self.inner.add_repository(name))

    async def add_link(self, name: str, digest: str) -> None:
        return await self._as("index_write", self.inner.add_link(name, digest))

    async def delete_link(self, name: str, digest: str) -> None:
        return await self._as("index_write", self.inner.delete_link(name, digest))

    async def replace_repository(
        self, name: str, tags: dict[str, bytes], links: frozenset[str]
    ) -> None:
        return await self._as("index_rebuild", self.inner.replace_repository(name, tags, links))

    async def take_dirty(self) -> list[str]:
        return await self._as("index_rebuild", self.inner.take_dirty())

    async def mark_ready(self) -> bool:
        return await self._as("index_rebuild", self.inner.mark_ready())

    async def invalidate(self) -> None:
        return await self._as("index_write", self.inner.invalidate())

    async def drop_repository(self, name: str) -> bool:
        return await self._as("index_write", self.inner.drop_repository(name))
