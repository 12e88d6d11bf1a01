"""Filesystem driver: atomic writes by temp file and rename, streaming in bounded chunks.

Writes run in worker threads in batches of a few megabytes, so the event loop keeps serving
other requests while a large blob is written, and the thread hop is paid once per batch
rather than once per network read. Reads go to a thread only when the data may have to come
from the disk (see `pagecache`).

Whole objects are written to a temp file under `_tmp/` and renamed into place. The writer
holds a lock on its temp file until then, so `sweep_temp` can remove what a crash left there
while other processes are writing (see `tempfiles`).

The garbage collector's calls (walking a tree, deleting in batches and pruning the folders
that leaves empty) are in `filesystem_maintenance`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import os
import shutil
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from anyio import to_thread

from registry import tempfiles
from registry.storage import filesystem_maintenance, pagecache
from registry.storage.base import Appended, Incoming, Leftovers, Listed, ObjectNotFound
from registry.storage.keys import check_key
from registry.storage.observing import observe_after

BATCH = 2 * 1024 * 1024
MAX_BATCHES = 4
READ_CHUNK = 4 * 1024 * 1024
MAX_IOVECS = 512  # well under IOV_MAX (1024 on Linux)
FOLDER_TRIES = 4  # attempts at creating a file whose folder a collector may be removing
REMOVERS = 2  # worker threads removing files at once (see `_remove`)

_Made = TypeVar("_Made")


class FilesystemDriver:
    name = "filesystem"

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = str(root.resolve())
        self._tmp = os.path.join(self.root, "_tmp")
        os.makedirs(self._tmp, exist_ok=True)

    def _path(self, key: str) -> str:
        """Where `key` lives; every method goes through here, so every key is checked."""
        return f"{self.root}/{check_key(key)}"

    async def read(self, key: str) -> bytes:
        # Small objects on the request path: plain os calls, no thread hop, no pathlib.
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        except IsADirectoryError:
            raise ObjectNotFound(key) from None
        finally:
            os.close(fd)

    async def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        with self._temp_file() as (fd, tmp):
            _pwrite_all(fd, data, 0)
            self._install(tmp, path)

    @contextlib.contextmanager
    def _temp_file(self) -> Iterator[tuple[int, str]]:
        """A locked temp file (descriptor and path) to fill and `_install`; removed when
        anything fails before that."""
        fd, tmp = tempfiles.create(self._tmp)
        try:
            yield fd, tmp
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            os.close(fd)  # after the rename: the temp file's lock says it is being written

    def _install(self, tmp: str, path: str) -> None:
        _making_folders(path, lambda: os.replace(tmp, path))

    async def size(self, key: str) -> int | None:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if not _is_file(st.st_mode) else st.st_size

    async def delete(self, key: str) -> bool:
        try:
            os.unlink(self._path(key))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        return True

    async def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        await to_thread.run_sync(lambda: shutil.rmtree(path, ignore_errors=True))

    async def modified(self, key: str) -> float | None:
        try:
            return os.stat(self._path(key)).st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None

    def sweep_temp(self) -> tempfiles.Swept:
        """Remove the temp files of writes that a crash interrupted; writes in progress, in
        this process or any other, keep theirs (see `tempfiles`)."""
        return tempfiles.sweep(self._tmp)

    async def list(self, prefix: str) -> list[str]:
        try:
            return os.listdir(self._path(prefix))
        except (FileNotFoundError, NotADirectoryError):
            return []

    async def stream(
        self, key: str, start: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Chunks the page cache holds are read on the loop, others in a worker thread.

        See `pagecache`: an inline read of cached data is a short memory copy and the
        fastest path; a read that may wait for the disk goes to a thread, which also asks the
        kernel to start reading the next chunk while this one is sent.
        """
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        try:
            remaining = length if length is not None else os.fstat(fd).st_size - start
            position = start
            while remaining > 0:
                size = min(READ_CHUNK, remaining)
                if pagecache.holds(fd, position, size):
                    chunk = os.pread(fd, size, position)
                else:
                    following = min(READ_CHUNK, remaining - size)
                    chunk = await to_thread.run_sync(_read_cold, fd, size, position, following)
                if not chunk:
                    break
                position += len(chunk)
                remaining -= len(chunk)
                yield chunk
        finally:
            os.close(fd)

    async def append(
        self, key: str, offset: int, incoming: Incoming, state: bytes | None = None
    ) -> Appended:
        path = self._path(key)
        fd = _making_folders(path, lambda: os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
        try:
            os.ftruncate(fd, offset)
            try:
                return Appended(await _pour(fd, offset, incoming))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, offset)
                raise
        finally:
            os.close(fd)

    async def url_for(self, key: str, expires: int) -> str | None:
        check_key(key)  # refused like everywhere else, though nothing is looked up
        return None  # the registry serves the file itself

    async def write_verified(self, key: str, incoming: Incoming, verify: Callable[[], None]) -> int:
        """A temp file, renamed into place once `verify` accepted it."""
        path = self._path(key)
        with self._temp_file() as (fd, tmp):
            size = await _pour(fd, 0, incoming)
            verify()
            self._install(tmp, path)
        return size

    async def complete(self, key: str, state: bytes | None, target: str) -> None:
        """The upload file is already a plain file: renaming it into place is atomic."""
        check_key(key)  # also when there is nothing to move
        if key != target:
            await self.move(key, target)

    async def abort(self, key: str, state: bytes | None) -> None:
        await self.delete(key)

    async def move(self, source: str, target: str) -> None:
        src, dst = self._path(source), self._path(target)
        try:
            self._install(src, dst)
        except FileNotFoundError:
            raise ObjectNotFound(source) from None

    # --- maintenance (garbage collection; see `filesystem_maintenance`)

    async def walk(self, prefix: str) -> AsyncIterator[builtins.list[Listed]]:
        """os.scandir, depth first, a page per worker-thread hop. The temp files of writes
        in progress (`_tmp/`) are no objects: a walk there finds nothing."""
        path = self._path(prefix)
        if path == self._tmp or path.startswith(self._tmp + "/"):
            return
        found = filesystem_maintenance.objects(path, prefix)
        try:
            while page := await to_thread.run_sync(filesystem_maintenance.page, found):
                yield page
        finally:
            found.close()

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Unlink each, then the folders left empty up to the top-level one (`blobs`,
        `repositories`), so the tree looks as a bucket's listing would. (`delete`, on the
        request path, leaves folders as they are.)"""
        await self._remove(keys, sized=False)

    async def delete_blobs(self, keys: Sequence[str]) -> int:
        """Like `delete_many`; the sizes of the files removed add up to what is returned."""
        return await self._remove(keys, sized=True)

    async def _remove(self, keys: Sequence[str], *, sized: bool) -> int:
        """Unlink in batches spread over REMOVERS worker threads, then prune the folders
        left empty, one depth at a time (a parent emptied by two batches goes too). Freeing
        a file is a disk round trip (its blocks are released, and discarded on some file
        systems), so one after the other a large sweep spends most of its time waiting."""
        for key in keys:
            self._path(key)  # every key checked before anything is removed
        size = min(filesystem_maintenance.BATCH, max(1, -(-len(keys) // REMOVERS)))
        unlinked = await _spread(
            [keys[i : i + size] for i in range(0, len(keys), size)],
            functools.partial(filesystem_maintenance.unlink, self.root, sized=sized),
        )
        pending = {f for _, found in unlinked for f in found if "/" in f}
        while pending:
            level = filesystem_maintenance.deepest(pending)
            size = max(1, -(-len(level) // REMOVERS))
            parents = await _spread(
                [level[i : i + size] for i in range(0, len(level), size)],
                functools.partial(filesystem_maintenance.remove_empty, self.root),
            )
            pending.update(parent for found in parents for parent in found)
        return sum(freed for freed, _ in unlinked)

    async def sweep_leftovers(
        self, live_uploads: Collection[str], before: float, *, dry_run: bool = False
    ) -> Leftovers:
        """Nothing to do: an upload is one file in its folder, which the purge of expired
        uploads removes, and a crash's temp files go with `sweep_temp`."""
        return Leftovers()

    def forget_cached(self) -> None:
        """Nothing is remembered about objects here."""


def _making_folders(path: str, make: Callable[[], _Made]) -> _Made:
    """`make()`, which creates `path` (a rename into place, an open that creates), after
    making `path`'s folders when it fails for want of them.

    The collector removes folders that became empty (`delete_many`), so it may remove one
    between the makedirs here and `make`: then the folders are made again. It removes each
    folder once per pass, so a few tries are plenty.
    """
    for _ in range(FOLDER_TRIES - 1):
        try:
            return make()
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):  # a folder removed half way: again
                os.makedirs(os.path.dirname(path), exist_ok=True)
    return make()


async def _pour(fd: int, offset: int, incoming: Incoming) -> int:
    """Write the incoming chunks into `fd` from `offset` on and return the end position; if
    anything fails, the threads still writing finish before the error propagates."""
    writer = _PipelinedWriter(fd, offset, incoming.observe)
    try:
        async for chunk in incoming.chunks:
            await writer.add(chunk)
        return await writer.close()
    except BaseException:
        await writer.abandon()
        raise


class _PipelinedWriter:
    """Writes the body in batches from worker threads while the event loop keeps receiving.

    Each batch (a list of received chunks, so no byte is copied in Python) is written with
    pwritev at its own offset by one thread and hashed by another; hashing is chained so the
    hash sees batches in order, while writes may complete in any order. A few batches may be
    in flight at once, which keeps both cores busy (receive, hash and page-cache copy are each
    close to a core's worth of work) and bounds memory to MAX_BATCHES * BATCH per upload.
    """

    def __init__(self, fd: int, offset: int, observe: Callable[[bytes], None] | None) -> None:
        self._fd = fd
        self._position = offset
        self._observe = observe
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._batches: deque[list[asyncio.Future[None]]] = deque()
        self._hash_tail: asyncio.Future[None] | None = None

    async def add(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= BATCH or len(self._pending) >= MAX_IOVECS:
            await self._submit()

    async def _submit(self) -> None:
        batch, size = self._pending, self._pending_size
        self._pending, self._pending_size = [], 0
        while len(self._batches) >= MAX_BATCHES:
            for task in self._batches.popleft():
                await task
        tasks: list[asyncio.Future[None]] = [
            asyncio.ensure_future(self._write(batch, self._position))
        ]
        if self._observe is not None:
            self._hash_tail = asyncio.ensure_future(
                observe_after(self._hash_tail, self._observe, batch)
            )
            tasks.append(self._hash_tail)
        self._batches.append(tasks)
        self._position += size

    async def _write(self, batch: list[bytes], position: int) -> None:
        await to_thread.run_sync(_pwritev_all, self._fd, batch, position)

    async def close(self) -> int:
        if self._pending:
            await self._submit()
        while self._batches:
            for task in self._batches.popleft():
                await task
        return self._position

    async def abandon(self) -> None:
        """Let every thread still using the file finish before the caller cuts it back."""
        tasks = [task for batch in self._batches for task in batch]
        self._batches.clear()
        if tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait(tasks)


def _read_cold(fd: int, size: int, position: int, following: int) -> bytes:
    """Read a chunk that may not be cached, and have the kernel fetch the next one meanwhile."""
    chunk = os.pread(fd, size, position)
    if following > 0 and len(chunk) == size and hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, position + size, following, os.POSIX_FADV_WILLNEED)
    return chunk


def _pwritev_all(fd: int, batch: list[bytes], position: int) -> None:
    total = sum(len(chunk) for chunk in batch)
    written = os.pwritev(fd, batch, position)
    if written < total:  # a short write (rare): finish the rest piece by piece
        _pwrite_all(fd, b"".join(batch)[written:], position + written)


def _pwrite_all(fd: int, data: bytes, position: int) -> int:
    view = memoryview(data)
    written = 0
    while written < len(view):
        written += os.pwrite(fd, view[written:], position + written)
    return written


def _is_file(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


async def _spread(
    batches: list[Sequence[str]], work: Callable[[Sequence[str]], _Made]
) -> list[_Made]:
    """`work` of each batch, in worker threads at once."""
    return list(await asyncio.gather(*(to_thread.run_sync(work, b) for b in batches)))
