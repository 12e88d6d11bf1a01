"""Temp files that tell whether their writer still lives, so leftovers of a crash can be swept
while other processes keep writing.

A writer creates its temp file and takes an exclusive flock(2) on it at once, and keeps that
lock until the file is renamed into place or removed (closing the descriptor, or the process
dying, drops it). A sweep removes a temp file only if it can take that lock itself: then no
process is writing it any more, whatever happened to the writer.

Why a lock rather than the writer's pid in the name, or the file's age:
- a pid says nothing across containers that share the data directory (each has its own pid
  numbering) and can be reused by an unrelated process; the kernel drops a lock exactly when
  its holder goes, and locks are seen by every process that opens the file;
- an age alone would have to exceed the slowest legitimate write (a multi-gigabyte blob on a
  slow link), and a write whose client stalls does not touch its file at all.
The lock is taken a few microseconds after the file is created, so a sweep also leaves files
younger than `MIN_AGE` alone: it cannot slip in between.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from dataclasses import dataclass

MIN_AGE = 15 * 60.0


@dataclass(frozen=True, slots=True)
class Swept:
    files: int = 0
    bytes: int = 0

    def __add__(self, other: Swept) -> Swept:
        return Swept(self.files + other.files, self.bytes + other.bytes)


def create(directory: str, mode: int = 0o644) -> tuple[int, str]:
    """A new temp file in `directory`, open for writing and locked: (descriptor, path).

    Keep the descriptor open until the file was renamed into place or removed.
    """
    path = os.path.join(directory, uuid.uuid4().hex)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        # Never waits: the file is new, and a sweep leaves files this young alone.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    return fd, path


def sweep(directory: str, *, min_age: float = MIN_AGE, now: float | None = None) -> Swept:
    """Remove the temp files of `directory` that no writer holds any more."""
    now = time.time() if now is None else now
    removed = Swept()
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        size = _dead_size(entry, now - min_age)
        if size is not None:
            removed += Swept(1, size)
    return removed


def _dead_size(entry: os.DirEntry[str], before: float) -> int | None:
    """Remove the entry if it is an old file nobody holds; its size when it was removed."""
    try:
        st = entry.stat(follow_symlinks=False)
        if not entry.is_file(follow_symlinks=False) or st.st_mtime > before:
            return None
        fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None  # renamed into place or removed meanwhile
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a writer holds it
        # The writer may have renamed it into place before we opened it (then it is a blob
        # now, and the name is free): remove only the file we hold.
        if not same_file(fd, entry.path):
            return None
        os.unlink(entry.path)
        return st.st_size
    finally:
        os.close(fd)


def same_file(fd: int, path: str) -> bool:
    """Whether `path` still names the file open at `fd` (not unlinked, not replaced)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (st.st_dev, st.st_ino)
