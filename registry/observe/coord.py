"""A coordinator that times and counts every call of the one it wraps.

Like `storage.py`, an explicit implementation of the `Coordinator` protocol around the real
one: lock waits go to `registry_lock_wait_seconds` (and `registry_lock_timeouts_total` when
the wait runs out), session calls to `registry_coordinator_action_seconds`, and
`CoordinatorUnavailable` (Redis away) to `registry_coordinator_errors_total`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager

from registry.coord.base import Coordinator, CoordinatorUnavailable, LockTimeout
from registry.observe.metrics import (
    COORDINATOR_ACTION,
    COORDINATOR_ERRORS,
    LOCK_TIMEOUTS,
    LOCK_WAIT,
)

SESSION_ACTIONS = ("get_session", "put_session", "delete_session")
ACTIONS = ("lock", *SESSION_ACTIONS)


class InstrumentedCoordinator:
    def __init__(self, inner: Coordinator) -> None:
        self.inner = inner
        self.name = inner.name
        # Every series exists from the start, so rates and alerts see 0 rather than nothing;
        # the children are looked up once, not on every call.
        self._lock_wait = LOCK_WAIT.labels(self.name)
        self._lock_timeouts = LOCK_TIMEOUTS.labels(self.name)
        self._errors = {a: COORDINATOR_ERRORS.labels(self.name, a) for a in ACTIONS}
        self._seconds = {a: COORDINATOR_ACTION.labels(self.name, a) for a in SESSION_ACTIONS}

    def __repr__(self) -> str:
        return f"InstrumentedCoordinator({self.inner!r})"

    @contextlib.contextmanager
    def _timed(self, action: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except CoordinatorUnavailable:
            self._errors[action].inc()
            raise
        finally:
            self._seconds[action].observe(time.perf_counter() - started)

    def lock(self, name: str, *, timeout: float = 30.0) -> AbstractAsyncContextManager[None]:
        return self._lock(name, timeout)

    @contextlib.asynccontextmanager
    async def _lock(self, name: str, timeout: float) -> AsyncIterator[None]:
        """Only the wait to take the lock is measured; errors of the work done under it are
        the work's own and are not counted here."""
        started = time.perf_counter()
        acquired = False
        try:
            async with self.inner.lock(name, timeout=timeout):
                acquired = True
                self._lock_wait.observe(time.perf_counter() - started)
                yield
        except LockTimeout:
            if not acquired:
                self._lock_wait.observe(time.perf_counter() - started)
                self._lock_timeouts.inc()
            raise
        except CoordinatorUnavailable:
            if not acquired:
                self._errors["lock"].inc()
            raise

    async def get_session(self, session_id: str) -> bytes | None:
        with self._timed("get_session"):
            return await self.inner.get_session(session_id)

    async def put_session(self, session_id: str, record: bytes) -> None:
        with self._timed("put_session"):
            await self.inner.put_session(session_id, record)

    async def delete_session(self, session_id: str) -> None:
        with self._timed("delete_session"):
            await self.inner.delete_session(session_id)
