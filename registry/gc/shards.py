"""The blob sweep of a filesystem store, split over processes.

On the filesystem, deleting a blob is a handful of small file operations (its claim record,
its links, its content, their folders), each cheap but each a system call and a hand-off of
Python's GIL between the event loop and the threads that remove files: one process is bound
by one core. So after the mark, the collector forks: each process sweeps every Nth fan-out
folder of `blobs/` (`blobs/<algorithm>/<hh>`) with an event loop of its own, then reports its
counts through a pipe, and the parent adds them up.

Forking is safe here because everything a sweep touches is plain files: the filesystem
driver, and the local coordinator's index, vouch records and leadership, which are files
under flock(2) and hold no connection, thread or lock across a turn of the loop. The
leadership's lock belongs to the descriptor that every process shares, and claims carry its
token, so every process's claims are the collection's own. It is not done with S3 or Redis
(`sweepers`), whose clients hold connections and background tasks that a fork would share.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import warnings
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from registry.coord.base import CoordinatorUnavailable, LeadershipLost
from registry.storage.base import StorageUnavailable

MAX_AUTO = 4  # processes chosen when the options leave it to the machine
_KNOWN_FAILURES: dict[str, type[Exception]] = {
    cls.__name__: cls for cls in (LeadershipLost, StorageUnavailable, CoordinatorUnavailable)
}


def sweepers(requested: int, scaled: bool) -> int:
    """How many processes sweep: one with S3 or Redis (`scaled`), else `requested`, or with 0
    one more than the CPUs, up to MAX_AUTO (part of each deletion is the disk's wait, which
    the extra process fills: 1.63 s against 1.68 s on 2 CPUs, bench/gcbench.py)."""
    if scaled:
        return 1
    return requested or min((os.cpu_count() or 1) + 1, MAX_AUTO)


@dataclass
class Counts:
    """What one process's sweep adds to the report."""

    deleted: int = 0
    freed: int = 0  # bytes
    kept_recent: int = 0
    links: int = 0
    touched: frozenset[str] = frozenset()

    def to_json(self) -> bytes:
        fields = {**self.__dict__, "touched": sorted(self.touched)}
        return json.dumps(fields).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Counts:
        fields = json.loads(data)
        return cls(**{**fields, "touched": frozenset(fields["touched"])})


Sweep = Callable[[Sequence[str]], Coroutine[Any, Any, Counts]]


async def sweep_split(prefixes: Sequence[str], processes: int, sweep: Sweep) -> list[Counts]:
    """`sweep` of every `processes`th prefix in each process, this one included; the counts
    of each. A process that failed makes this raise its error (as the parent saw it) once
    every process has ended, so none is left running."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # or a child would write what the parent buffered, again
    children = [_fork(prefixes[k::processes], sweep) for k in range(1, processes)]
    try:
        own = await sweep(prefixes[0::processes])
    finally:
        ended = await asyncio.gather(*(asyncio.to_thread(_join, *child) for child in children))
    failures = [e for e in ended if isinstance(e, Exception)]
    if failures:
        raise failures[0]
    return [own, *(e for e in ended if isinstance(e, Counts))]


def _fork(prefixes: Sequence[str], sweep: Sweep) -> tuple[int, int]:
    """A child sweeping `prefixes` on a loop of its own; its pid and the pipe it answers on."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12 warns when a process with threads forks: a lock another thread held
        # stays locked in the child. The child here takes none: it starts a new event loop
        # (its own worker threads) and touches files only; the parent's idle worker threads
        # hold no lock the child needs.
        warnings.filterwarnings("ignore", r".*multi-threaded.*fork", DeprecationWarning)
        pid = os.fork()
    if pid:
        os.close(write)
        return pid, read
    os.close(read)
    try:
        os.write(write, _child_answer(sweep, prefixes))
    finally:
        os._exit(0)  # nothing of the parent's (atexit handlers, buffers) runs twice


def _child_answer(sweep: Sweep, prefixes: Sequence[str]) -> bytes:
    """The child's counts, or the error that stopped it, for the parent to report."""
    try:
        # The parent's loop was running in this thread when it forked; a new one starts here.
        asyncio.events._set_running_loop(None)
        return asyncio.run(sweep(prefixes)).to_json()
    except BaseException as exc:
        return json.dumps({"error": type(exc).__name__, "message": str(exc)}).encode()


def _join(pid: int, read: int) -> Counts | Exception:
    """The child's counts, or its error, once it ended."""
    chunks = []
    try:
        while chunk := os.read(read, 65536):
            chunks.append(chunk)
    finally:
        os.close(read)
        _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    try:
        answer = json.loads(data)
    except ValueError:
        code = os.waitstatus_to_exitcode(status)  # negative: the signal that ended it
        return RuntimeError(f"a sweeping process ended without an answer (exit {code})")
    if "error" in answer:
        failure = _KNOWN_FAILURES.get(answer["error"], RuntimeError)
        return failure(f"a sweeping process failed: {answer['error']}: {answer['message']}")
    return Counts.from_json(data)
