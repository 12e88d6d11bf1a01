"""Filesystem driver: atomic writes by temp file and rename, streaming in bounded chunks.

Blocking file I/O runs in worker threads in batches of about a megabyte, so the event loop
keeps serving other requests while a large blob is written or read, and the thread hop is paid
once per megabyte rather than once per network read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from anyio import to_thread

from registry.storage.base import ObjectNotFound

CHUNK = 1024 * 1024


class FilesystemDriver:
    name = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / "_tmp"
        self._tmp.mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\x00" in key:
            raise ValueError(f"unsafe storage key {key!r}")
        return self.root.joinpath(*parts)

    async def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(key) from None

    async def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._tmp / uuid.uuid4().hex
        with open(tmp, "wb") as fh:
            fh.write(data)
        self._install(tmp, path)

    def _install(self, tmp: Path, path: Path) -> None:
        try:
            os.replace(tmp, path)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)

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

    async def list(self, prefix: str) -> list[str]:
        try:
            return os.listdir(self._path(prefix))
        except (FileNotFoundError, NotADirectoryError):
            return []

    async def stream(
        self, key: str, start: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        try:
            remaining = length if length is not None else os.fstat(fd).st_size - start
            position = start
            while remaining > 0:
                chunk = await to_thread.run_sync(os.pread, fd, min(CHUNK, remaining), position)
                if not chunk:
                    break
                position += len(chunk)
                remaining -= len(chunk)
                yield chunk
        finally:
            os.close(fd)

    async def append(self, key: str, offset: int, chunks: AsyncIterable[bytes]) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, offset)
            position = offset
            pending = bytearray()
            try:
                async for chunk in chunks:
                    pending += chunk
                    if len(pending) >= CHUNK:
                        data = bytes(pending)
                        pending.clear()
                        position += await to_thread.run_sync(_pwrite_all, fd, data, position)
                if pending:
                    position += await to_thread.run_sync(_pwrite_all, fd, bytes(pending), position)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, offset)
                raise
            return position
        finally:
            os.close(fd)

    async def move(self, source: str, target: str) -> None:
        src, dst = self._path(source), self._path(target)
        try:
            self._install(src, dst)
        except FileNotFoundError:
            raise ObjectNotFound(source) from None


def _pwrite_all(fd: int, data: bytes, position: int) -> int:
    view = memoryview(data)
    written = 0
    while written < len(view):
        written += os.pwrite(fd, view[written:], position + written)
    return written


def _is_file(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)
