"""The storage driver contract shared by the filesystem and object-store backends.

Keys are `/`-separated relative paths built by `registry.model.paths` from validated names and
digests. Small objects (links, tags, manifests) are read and written whole; blobs stream.
Every write is atomic: a reader sees the old object or the new one, never a partial one.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol


class ObjectNotFound(KeyError):
    """The key does not exist."""


class StorageUnavailable(Exception):
    """The store cannot be used right now (unreachable, timing out, failing, or refusing the
    configured credentials or bucket). Retryable for a client: the registry answers 503."""


@dataclass(frozen=True, slots=True)
class Appended:
    size: int
    state: bytes | None = None


@dataclass(frozen=True, slots=True)
class Incoming:
    """Bytes on their way into the store (`append`, `write_verified`), and who sees them.

    `observe` sees every byte, in order (the model hashes there), possibly in a worker thread.
    """

    chunks: AsyncIterable[bytes]
    observe: Callable[[bytes], None] | None = None


@dataclass(frozen=True, slots=True)
class Listed:
    """An object found by `walk`: its key (relative, like every key), size and last write."""

    key: str
    size: int
    modified: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class Leftovers:
    """What `sweep_leftovers` removed (or, in a dry run, would remove)."""

    objects: int = 0  # completed data objects that no blob names
    uploads: int = 0  # store-level upload state (S3 multipart uploads) of no live upload
    bytes: int = 0


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

    async def modified(self, key: str) -> float | None:
        """When the object was last written (seconds since the epoch), or None when absent.
        For maintenance (purges, garbage collection), not for the request path."""
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

    async def url_for(self, key: str, expires: int) -> str | None:
        """A URL the client can GET the object from directly for `expires` seconds (a
        presigned S3 URL), or None when the registry must serve the bytes itself."""
        ...

    async def append(
        self, key: str, offset: int, incoming: Incoming, state: bytes | None = None
    ) -> Appended:
        """Add the incoming chunks to the upload at `key`, which holds `offset` bytes, and
        return its new size and driver state.

        `state` is what the previous append returned (None for the first): opaque bytes the
        caller keeps in its session record, so the next chunk may reach another worker (the
        filesystem needs none; S3 keeps its multipart upload id, parts and staged tail there).
        Anything past `offset` from an earlier failed append is discarded. If the chunks
        raise, the upload stays as it was at `offset` with `state`.
        """
        ...

    async def write_verified(self, key: str, incoming: Incoming, verify: Callable[[], None]) -> int:
        """Stream the incoming chunks into the object `key` and return its size; `verify`
        runs after the last byte, before anything is visible.

        For a blob whose digest is known before its bytes arrive (a monolithic upload): the
        bytes go to their final place in one pass, with no scratch copy to move afterwards.
        If the chunks or `verify` raise, `key` is left as it was and nothing is kept.
        """
        ...

    async def complete(self, key: str, state: bytes | None, target: str) -> None:
        """Make the upload's bytes the object `target` (which may be `key` itself: then the
        upload becomes a readable object in place), atomically and without a client-side copy.
        """
        ...

    async def abort(self, key: str, state: bytes | None) -> None:
        """Discard an upload and whatever the store holds for it."""
        ...

    async def move(self, source: str, target: str) -> None:
        """Make `source`'s bytes visible at `target` atomically; `source` disappears."""
        ...

    # --- maintenance (garbage collection): never on a request path

    def walk(self, prefix: str) -> AsyncIterator[builtins.list[Listed]]:
        """Every object under `prefix`, at any depth, in pages (of up to 1,000), in no
        particular order: the listing is streamed, never held whole. An alias (S3) is listed
        as itself (size 0): `delete_blobs` knows what it stands for."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove small objects (links, records); absent ones are fine. Batched (S3:
        DeleteObjects, 1,000 keys a request, batches concurrently)."""
        ...

    async def delete_blobs(self, keys: Sequence[str]) -> int:
        """Remove blob objects with whatever stands behind them (S3: an alias's data object);
        absent ones are fine. Returns the bytes freed."""
        ...

    async def sweep_leftovers(
        self, live_uploads: Collection[str], before: float, *, dry_run: bool = False
    ) -> Leftovers:
        """Remove what failed or abandoned uploads left at the store level that nothing names
        and that is older than `before`: S3's completed data objects that no alias names (a
        crash between CompleteMultipartUpload and the alias), and multipart uploads that
        belong to no live upload. `live_uploads` are the upload data keys
        (`paths.upload_data`) of the uploads live when the caller asked, which must be
        before this call: whatever their commits make stays. `before` must be no later than
        that snapshot (in practice hours earlier, which also covers a store's clock running
        apart from this host's): what uploads started after it make is then too young to
        go. In a dry run nothing is removed and the counts are the same. The filesystem has
        none."""
        ...

    def forget_cached(self) -> None:
        """Drop what this process remembers about objects (S3: aliases): the collector
        deleted some."""
        ...


async def read_optional(storage: StorageDriver, key: str) -> bytes | None:
    """A small object's content, or None when it is absent (rather than ObjectNotFound)."""
    try:
        return await storage.read(key)
    except ObjectNotFound:
        return None
