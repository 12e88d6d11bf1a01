"""Local coordination for the embedded default: flock(2) locks and session files.

flock locks belong to an open file description, so they exclude other processes of the host
and other coroutines of this process alike. Lock names hash onto a fixed set of lock files:
deleting a lock file while another process waits on it would break exclusion, and a fixed set
never grows. Two names sharing a stripe only wait for each other, which is rare and harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from registry.coord.base import Index, LockTimeout

STRIPES = 4096


class LocalCoordinator:
    name = "local"

    def __init__(self, root: Path) -> None:
        self._locks = root / "locks"
        self._sessions = root / "sessions"
        self._tmp = root / "tmp"
        for path in (self._locks, self._sessions, self._tmp):
            path.mkdir(parents=True, exist_ok=True)

    def index(self, store: str) -> Index | None:
        return None  # walking the data directory is cheap enough

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, timeout: float = 30.0) -> AsyncIterator[None]:
        stripe = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % STRIPES
        fd = os.open(self._locks / f"{stripe:04x}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await _acquire(fd, timeout, name)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _session_path(self, session_id: str) -> Path:
        if not session_id.isalnum():
            raise ValueError("session ids are alphanumeric")
        return self._sessions / session_id

    async def get_session(self, session_id: str) -> bytes | None:
        try:
            return self._session_path(session_id).read_bytes()
        except FileNotFoundError:
            return None

    async def put_session(self, session_id: str, record: bytes) -> None:
        tmp = self._tmp / uuid.uuid4().hex
        tmp.write_bytes(record)
        os.replace(tmp, self._session_path(session_id))

    async def delete_session(self, session_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._session_path(session_id))


async def _acquire(fd: int, timeout: float, name: str) -> None:
    """Try without blocking the loop; back off from 1 ms to 50 ms between tries."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeout(name) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
