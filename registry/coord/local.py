"""Local coordination for the embedded default: flock(2) locks and session files.

Each lock name has a file of its own (the name's hash), so two names never wait for each
other: an upload whose client stalls holds only its own lock. The holder removes the file when
it releases the lock, while still holding it, so lock files do not pile up (see `flocks` for
how a waiter copes with that).

Vouch records are files under `vouches/` (see `local_vouches`); a leadership is a flock on
a file under `leaders/` that is never removed (see `local_leader`).

A session file's modification time is its last put: once `session_ttl` (the same default as
Redis's expiry) has passed, the session is unknown, and `expired_sessions` lists it for the
purge. Session files are written to a temp file and renamed into place (see
`registry.tempfiles` for how a crash's temp files are swept).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from registry import tempfiles
from registry.coord import flocks, local_leader
from registry.coord.base import DEFAULT_SESSION_TTL, Index, Leadership, Vouches
from registry.coord.local_vouches import LocalVouches


class LocalCoordinator:
    name = "local"

    def __init__(self, root: Path, *, session_ttl: float = DEFAULT_SESSION_TTL) -> None:
        if session_ttl <= 0:
            raise ValueError("session_ttl must be positive")
        self._locks = root / "locks"
        self._sessions = root / "sessions"
        self._tmp = root / "tmp"
        self._vouches = root / "vouches"
        self._leaders = root / "leaders"
        self._session_ttl = session_ttl
        self._stores: dict[str, LocalVouches] = {}
        for path in (self._locks, self._sessions, self._tmp, self._vouches, self._leaders):
            path.mkdir(parents=True, exist_ok=True)

    def index(self, store: str) -> Index | None:
        return None  # walking the data directory is cheap enough

    def vouches(self, store: str) -> Vouches:
        """Under a hash of the store's name (see `local_vouches`); one object per store, so
        it knows the horizon exists after its first look."""
        found = self._stores.get(store)
        if found is None:
            folder = self._vouches / hashlib.sha256(store.encode()).hexdigest()[:16]
            found = self._stores[store] = LocalVouches(folder, self._leaders, self._tmp)
        return found

    def leadership(
        self, name: str, who: str, *, wait: float = 0.0
    ) -> AbstractAsyncContextManager[Leadership]:
        return local_leader.lead(self._leaders, name, who, wait)

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, timeout: float = 30.0) -> AsyncIterator[None]:
        path = str(self._locks / hashlib.sha256(name.encode()).hexdigest())
        fd = await flocks.acquire(path, timeout, name)
        try:
            yield
        finally:
            # Removed while held: a waiter that then gets the old file's lock sees that the
            # path no longer names it and opens the path again.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.close(fd)

    def _session_path(self, session_id: str) -> Path:
        if not session_id.isalnum():
            raise ValueError("session ids are alphanumeric")
        return self._sessions / session_id

    async def get_session(self, session_id: str) -> bytes | None:
        try:
            with open(self._session_path(session_id), "rb") as file:
                if self._expired(os.fstat(file.fileno()).st_mtime, time.time()):
                    return None
                return file.read()
        except FileNotFoundError:
            return None

    async def put_session(self, session_id: str, record: bytes) -> None:
        fd, tmp = tempfiles.create(str(self._tmp), 0o600)
        try:
            with open(fd, "wb", closefd=False) as file:
                file.write(record)
            os.replace(tmp, self._session_path(session_id))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            os.close(fd)  # after the rename: a sweep never takes a file being written

    async def delete_session(self, session_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._session_path(session_id))

    async def session_ids(self) -> list[str]:
        return [name for name, expired in self._sessions_by_expiry() if not expired]

    async def expired_sessions(self) -> list[str]:
        return [name for name, expired in self._sessions_by_expiry() if expired]

    def _sessions_by_expiry(self) -> list[tuple[str, bool]]:
        """Every session file's name, and whether that session has expired."""
        now = time.time()
        found = []
        for entry in os.scandir(self._sessions):
            with contextlib.suppress(FileNotFoundError):
                found.append((entry.name, self._expired(entry.stat().st_mtime, now)))
        return found

    def _expired(self, put: float, now: float) -> bool:
        return now - put >= self._session_ttl

    def sweep_temp(self) -> tempfiles.Swept:
        """Remove temp session files that a crashed writer left (see `tempfiles`)."""
        return tempfiles.sweep(str(self._tmp))
