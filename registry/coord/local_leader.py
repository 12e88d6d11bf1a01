"""Leaderships of the local coordinator: an exclusive flock(2) on a file per name.

The kernel drops the lock the moment its holder dies, so there is no lease to renew and a
dead leader's claims are void at once. Having locked, the leader writes its holder record
(`leases.holder_record`) into the file, for the message of the one that finds it busy and for
`held`, which tells whether a claim's token still leads: the file names that token, and a
shared lock on it cannot be had (someone holds it exclusively).

Leader files are never removed, so the path always names the file a leader holds, unless
someone removed it by hand: `check` looks for exactly that.
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
from registry.coord import flocks, leases
from registry.coord.base import Holder, LeaderBusy, LeadershipLost, LockTimeout

# A check of a claim (`held`) holds a shared lock on the leader file for a few microseconds;
# an attempt to lead that met one then tries again within this long, even without a wait.
MIN_WAIT = 0.05
RECORD_MAX = 64 * 1024


class LocalLeadership:
    def __init__(self, token: str, fd: int, path: str) -> None:
        self.token = token
        self._fd = fd
        self._path = path

    def check(self) -> None:
        if not tempfiles.same_file(self._fd, self._path):
            raise LeadershipLost(f"the leader file {self._path} was removed or replaced")

    async def confirm(self) -> None:
        """The kernel holds the lock for as long as this process lives: the file is the
        coordinator, so `check` asks it already."""
        self.check()


def leader_path(leaders: Path, name: str) -> str:
    return str(leaders / hashlib.sha256(name.encode()).hexdigest())


@contextlib.asynccontextmanager
async def lead(leaders: Path, name: str, who: str, wait: float) -> AsyncIterator[LocalLeadership]:
    """Lead `name` for as long as the block runs (see the module); LeaderBusy otherwise."""
    path = leader_path(leaders, name)
    try:
        fd = await flocks.acquire(path, max(wait, MIN_WAIT), name)
    except LockTimeout:
        raise LeaderBusy(name, _holder(path)) from None
    try:
        token = leases.new_token(name)
        record = leases.holder_record(token, who, time.time()).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        yield LocalLeadership(token, fd, path)
    finally:
        os.close(fd)  # drops the lock; the file stays (see the module)


def held(leaders: Path, token: str) -> bool:
    """Whether the leadership that issued `token` is still held, by a live process."""
    name = leases.token_name(token)
    if name is None:
        return False
    try:
        fd = os.open(leader_path(leaders, name), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        # Free: its holder is gone (closing the descriptor drops our shared lock). Taken: by
        # the holder of the token the file names (a new leader writes its own at once).
        if flocks.try_lock(fd, fcntl.LOCK_SH):
            return False
        found = leases.parse_holder(os.pread(fd, RECORD_MAX, 0))
        return found is not None and found[0] == token
    finally:
        os.close(fd)


def _holder(path: str) -> Holder | None:
    try:
        with open(path, "rb") as file:
            found = leases.parse_holder(file.read(RECORD_MAX))
    except FileNotFoundError:
        return None
    return None if found is None else found[1]
