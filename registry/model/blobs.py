"""Blobs: content stored once by digest, made visible in a repository by a link."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cachetools import LRUCache

from registry.coord.base import Vouches
from registry.model import paths
from registry.model.index import Lookup
from registry.model.protection import Generation, Pins
from registry.oci.digests import Digest
from registry.oci.errors import BlobUnknown
from registry.storage.base import ObjectNotFound, StorageDriver

SIZES_KEPT = 100_000  # about 15 MB of a worker's memory at most
# Existence checks one manifest has in flight at once (one index round trip, or this many
# storage requests): enough to hide latency, few enough to leave the store and the event loop
# to other requests between batches.
CHECK_BATCH = 64

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Redirect:
    """Fetch the blob from `url` (a presigned store URL) instead of through the registry."""

    url: str


class Blobs:
    def __init__(
        self,
        storage: StorageDriver,
        lookup: Lookup,
        vouches: Vouches,
        generation: Generation,
        redirect_seconds: int | None = None,
    ) -> None:
        """`redirect_seconds`: send pulls to the store itself with URLs valid that long, where
        the store can give them (see `StorageDriver.url_for`); None serves every byte here.
        `vouches` and `generation`: the garbage collector's side (see `protection`)."""
        self._storage = storage
        self._lookup = lookup
        self._vouches = vouches
        self._generation = generation
        self._redirect_seconds = redirect_seconds
        # Sizes by digest: content under a digest never changes, so a remembered size is
        # right for as long as the blob exists, and a blob is only ever deleted after every
        # link to it. A pull then costs one existence check (the link, from the index where
        # there is one) and the read. Least recently used out first; event loop only.
        self._sizes: LRUCache[Digest, int] = LRUCache(SIZES_KEPT)
        generation.on_change(self._sizes.clear)

    async def size(self, name: str, digest: Digest) -> int:
        """Size of a blob linked in `name`; BLOB_UNKNOWN when it is not."""
        await self._generation.check()
        known = self._sizes.get(digest)
        if known is not None:
            if not await self._lookup.linked(name, digest):
                raise BlobUnknown(detail={"digest": str(digest)})
            return known
        linked, size = await asyncio.gather(
            self._lookup.linked(name, digest), self._storage.size(paths.blob(digest))
        )
        if not linked or size is None:
            raise BlobUnknown(detail={"digest": str(digest)})
        self.remember(digest, size)
        return size

    def remember(self, digest: Digest, size: int) -> None:
        self._sizes[digest] = size

    async def vouch(self, name: str, digest: Digest) -> int:
        """A `HEAD`'s answer: the blob's size, vouched for, so that the garbage collector
        keeps it for a grace window; BLOB_UNKNOWN when it is not linked, or when the
        collector is deleting it (then it is as good as gone)."""
        size = await self.size(name, digest)
        if not (await self._vouches.vouch([str(digest)]))[0]:
            raise BlobUnknown(detail={"digest": str(digest)})
        return size

    async def linked(self, name: str, digest: Digest) -> bool:
        try:
            await self.size(name, digest)
        except BlobUnknown:
            return False
        return True

    async def first_missing(self, name: str, digests: Iterable[Digest]) -> Digest | None:
        """The first of `digests` that `name` does not hold (no link, or no content), None
        when it holds them all: what a manifest PUT checks. Each digest is checked once."""
        await self._generation.check()
        return await first_failing(list(dict.fromkeys(digests)), lambda b: self._held(name, b))

    async def _held(self, name: str, batch: list[Digest]) -> list[bool]:
        """`linked` for a batch: links in one go, then the content of those whose size this
        process does not know yet."""
        links = await self._lookup.linked_many(name, batch)
        unsized = [d for d, ok in zip(batch, links, strict=True) if ok and d not in self._sizes]
        sizes = await asyncio.gather(*(self._storage.size(paths.blob(d)) for d in unsized))
        absent = set()
        for digest, size in zip(unsized, sizes, strict=True):
            if size is None:
                absent.add(digest)
            else:
                self.remember(digest, size)
        return [ok and d not in absent for d, ok in zip(batch, links, strict=True)]

    async def read(
        self, digest: Digest, start: int, length: int
    ) -> Redirect | AsyncIterator[bytes]:
        """How a GET of a linked blob (whose size was checked) gets `length` bytes from
        `start`: a redirect to the store, or the bytes.

        The first chunk is read before this returns: with the link and the size known from
        the index and memory, this is the first time a pull asks the store, and a store that
        is away must give a 503 and a missing object a 404, not a 200 cut short.
        """
        key = paths.blob(digest)
        await self._generation.check()
        with _content_of(digest):
            if self._redirect_seconds is not None:
                url = await self._storage.url_for(key, self._redirect_seconds)
                if url is not None:
                    return Redirect(url)
            chunks = self._storage.stream(key, start, length)
            first = await anext(chunks, b"")
        return _prefetched(first, chunks)

    async def stored(self, digest: Digest) -> bool:
        """Whether the content is in the store, whichever repositories link it."""
        return await self._storage.size(paths.blob(digest)) is not None

    async def link(self, name: str, digest: Digest) -> None:
        async with self._lookup.link_guard(name, digest):
            await self._storage.write(paths.holder(digest, name), b"")
            # Empty, like the holder: only its existence is read. (Stores written before held
            # the digest as text, which reads the same.) An empty file has no data block, so
            # it costs no disk space beyond its inode, and a collector frees it at no cost.
            await self._storage.write(paths.layer_link(name, digest), b"")
            await self._lookup.link_added(name, digest)  # the repository exists from now on

    async def unlink(self, name: str, digest: Digest) -> None:
        """The index forgets the link first, so no request finds a link storage no longer has."""
        async with self._lookup.link_guard(name, digest):
            await self._lookup.link_removed(name, digest)
            if not await self._storage.delete(paths.layer_link(name, digest)):
                raise BlobUnknown(detail={"digest": str(digest)})
        await self._storage.delete(paths.holder(digest, name))

    async def mount(
        self,
        name: str,
        digest: Digest,
        source: str | None,
        may_read: Callable[[str], Awaitable[bool]],
    ) -> bool:
        """Link a blob another repository holds; without `source`, any readable holder works.

        Pinned first, so the garbage collector cannot delete it between the check and the
        link; a blob it is deleting is not mounted (the client uploads it instead)."""
        pins = Pins(self._vouches, [digest])
        if await pins.take() is not None:
            return False
        try:
            return await self._mount_pinned(name, digest, source, may_read, pins)
        finally:
            await pins.done()

    async def _mount_pinned(
        self,
        name: str,
        digest: Digest,
        source: str | None,
        may_read: Callable[[str], Awaitable[bool]],
        pins: Pins,
    ) -> bool:
        if source is not None:
            candidates = [source]
        else:
            entries = await self._storage.list(paths.holders(digest))
            candidates = sorted(paths.holder_name(e) for e in entries)
        for candidate in candidates:
            if candidate != name and not await may_read(candidate):
                continue
            if await self.linked(candidate, digest):
                pins.check()
                await self.link(name, digest)
                return True
        return False


@contextlib.contextmanager
def _content_of(digest: Digest) -> Iterator[None]:
    """A blob that is linked but whose content is gone from the store (deleted behind the
    registry's back) is as unknown to a client as one never pushed."""
    try:
        yield
    except ObjectNotFound:
        raise BlobUnknown(detail={"digest": str(digest)}) from None


async def _prefetched(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:  # a client that went away: release the file or the S3 connection now
        close = getattr(rest, "aclose", None)
        if close is not None:
            await close()


async def first_failing(
    items: Sequence[T], check: Callable[[list[T]], Awaitable[list[bool]]]
) -> T | None:
    """The first of `items` for which `check` says False, checking CHECK_BATCH at a time and
    stopping after the batch that has one.

    A manifest may name tens of thousands of blobs. All checks at once would flood the store
    and, where a check never waits (a file's stat), hold the event loop for seconds: no other
    request of this worker would be answered meanwhile. Between batches the loop serves others.
    """
    for start in range(0, len(items), CHECK_BATCH):
        batch = list(items[start : start + CHECK_BATCH])
        for item, ok in zip(batch, await check(batch), strict=True):
            if not ok:
                return item
        await asyncio.sleep(0)  # the batch may not have waited at all: let others run
    return None
