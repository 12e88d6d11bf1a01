"""Local coordination for the embedded default: flock(2) locks and session files.

flock locks belong to an open file description, so they exclude other processes of the host
and other coroutines of this process alike. Each lock name has a file of its own (the name's
hash), so two names never wait for each other: an upload whose client stalls holds only its
own lock. The holder removes the file when it releases the lock, while still holding it, so
lock files do not pile up. A waiter may thus get the lock of a file that was removed (or
replaced by a newer one) meanwhile; having locked, it checks that the path still names the
file it holds, and starts over otherwise, so at most one process holds the lock of the file
the name leads to.

A session file's modification time is its last put: once `session_ttl` (the same default as
Redis's expiry) has passed, the session is unknown, and `expired_sessions` lists it for the
purge. Session files are written to a temp file and renamed into place (see
`registry.tempfiles` for how a crash's temp files are swept).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from registry import tempfiles
from registry.coord import backoff
from registry.coord.base import DEFAULT_SESSION_TTL, Index, LockTimeout


class LocalCoordinator:
    name = "local"

    def __init__(self, root: Path, *, session_ttl: float = DEFAULT_SESSION_TTL) -> None:
        if session_ttl <= 0:
            raise ValueError("session_ttl must be positive")
        self._locks = root / "locks"
        self._sessions = root / "sessions"
        self._tmp = root / "tmp"
        self._session_ttl = session_ttl
        for path in (self._locks, self._sessions, self._tmp):
            path.mkdir(parents=True, exist_ok=True)

    def index(self, store: str) -> Index | None:
        return None  # walking the data directory is cheap enough

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, timeout: float = 30.0) -> AsyncIterator[None]:
        path = str(self._locks / hashlib.sha256(name.encode()).hexdigest())
        fd = await _acquire(path, timeout, name)
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

    async def expired_sessions(self) -> list[str]:
        now = time.time()
        expired = []
        for entry in os.scandir(self._sessions):
            with contextlib.suppress(FileNotFoundError):
                if self._expired(entry.stat().st_mtime, now):
                    expired.append(entry.name)
        return expired

    def _expired(self, put: float, now: float) -> bool:
        return now - put >= self._session_ttl

    def sweep_temp(self) -> tempfiles.Swept:
        """Remove temp session files that a crashed writer left (see `tempfiles`)."""
        return tempfiles.sweep(str(self._tmp))


async def _acquire(path: str, timeout: float, name: str) -> int:
    """Lock the file at `path`, creating it; returns the descriptor that holds the lock."""
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await _flock(fd, deadline, name)
        except BaseException:
            os.close(fd)
            raise
        if tempfiles.same_file(fd, path):
            return fd
        os.close(fd)  # the holder removed this file as it released it: open the path afresh


async def _flock(fd: int, deadline: float, name: str) -> None:
    """Try without blocking the loop, backing off between tries (see `backoff`)."""

    async def attempt() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    if not await backoff.retry(attempt, deadline - time.monotonic()):
        raise LockTimeout(name)
