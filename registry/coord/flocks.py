"""Exclusive flock(2) on a file that its holder may remove or replace, for the local
coordinator's locks and vouch records.

flock locks belong to an open file description, so they exclude other processes of the host
and other coroutines of this process alike. A holder may remove its file (a released lock, a
forgotten record) or rename a new one over it (a rewritten record) while still holding the
lock; a waiter may thus get the lock of a file that the path no longer names. Having locked,
it checks that the path still names the file it holds, and starts over otherwise, so at most
one process holds the lock of the file the path leads to.

The lock is tried without blocking and retried with `backoff`, so the event loop never waits
in the kernel.
"""

from __future__ import annotations

import fcntl
import os
import time

from registry import tempfiles
from registry.coord import backoff
from registry.coord.base import LockTimeout


async def acquire(path: str, timeout: float, name: str) -> int:
    """Lock the file at `path`, creating it (empty) if there is none; returns the descriptor
    that holds the lock. LockTimeout(name) when `timeout` ran out first."""
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
        os.close(fd)  # removed or replaced while we waited: open the path afresh


async def _flock(fd: int, deadline: float, name: str) -> None:
    async def attempt() -> bool:
        return try_lock(fd, fcntl.LOCK_EX)

    if not await backoff.retry(attempt, deadline - time.monotonic()):
        raise LockTimeout(name)


def try_lock(fd: int, operation: int) -> bool:
    """flock `operation` (LOCK_EX or LOCK_SH) without blocking: whether it was granted."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
