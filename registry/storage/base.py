"""The storage driver contract shared by the filesystem and object-store backends.

Keys are `/`-separated relative paths built by `registry.model.paths` from validated names and
digests. Small objects (links, tags, manifests) are read and written whole; blobs stream.
Every write is atomic: a reader sees the old object or the new one, never a partial one.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Protocol


class ObjectNotFound(KeyError):
    """The key does not exist."""


class StorageUnavailable(Exception):
    """The store cannot be used right now (unreachable, timing out, failing, or refusing the
    configured credentials or bucket). Retryable for a client: the registry answers 503."""


class StorageDriver(Protocol):
    name: str

    async def read(self, key: str) -> bytes:
        """Whole content of a small object; ObjectNotFound when absent."""
        ...

    async def write(self, key: str, data: bytes) -> None:
        """Create or replace atomically."""
        ...

    async def size(self, key: str) -> int | None:
        """Size in bytes, or None when absent."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove one object; False when it was absent."""
        ...

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every object under a prefix (an upload's scratch space)."""
        ...

    async def list(self, prefix: str) -> list[str]:
        """Names of the direct children under a prefix (objects and sub-prefixes), unsorted."""
        ...

    def stream(self, key: str, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Yield a byte range of an object in bounded chunks."""
        ...

    async def append(
        self,
        key: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        observe: Callable[[bytes], None] | None = None,
    ) -> int:
        """Write `chunks` into the object at `offset`, discarding anything past it first.

        `observe` sees every byte written, in order (the model hashes there), possibly in a
        worker thread. Returns the new size. If the iterable raises, the object is cut back to
        `offset`, so a failed chunk leaves the upload exactly as it was.
        """
        ...

    async def move(self, source: str, target: str) -> None:
        """Make `source`'s bytes visible at `target` atomically; `source` disappears."""
        ...
