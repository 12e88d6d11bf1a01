"""Blobs: content stored once by digest, made visible in a repository by a link."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable

from registry.model import paths
from registry.model.index import Lookup
from registry.oci.digests import Digest
from registry.oci.errors import BlobUnknown
from registry.storage.base import StorageDriver

SIZES_KEPT = 100_000  # about 15 MB of a worker's memory at most


class Blobs:
    def __init__(self, storage: StorageDriver, lookup: Lookup) -> None:
        self._storage = storage
        self._lookup = lookup
        # Sizes by digest: content under a digest never changes, so a remembered size is
        # right for as long as the blob exists, and a blob is only ever deleted after every
        # link to it. A pull then costs one existence check (the link, from the index where
        # there is one) and the read.
        self._sizes: OrderedDict[Digest, int] = OrderedDict()

    async def size(self, name: str, digest: Digest) -> int:
        """Size of a blob linked in `name`; BLOB_UNKNOWN when it is not."""
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
        self._sizes.move_to_end(digest)
        if len(self._sizes) > SIZES_KEPT:
            self._sizes.popitem(last=False)

    async def linked(self, name: str, digest: Digest) -> bool:
        try:
            await self.size(name, digest)
        except BlobUnknown:
            return False
        return True

    def stream(self, digest: Digest, start: int, length: int) -> AsyncIterator[bytes]:
        return self._storage.stream(paths.blob(digest), start, length)

    async def direct_url(self, digest: Digest, expires: int) -> str | None:
        """Where a client may fetch the blob itself (see `StorageDriver.url_for`)."""
        return await self._storage.url_for(paths.blob(digest), expires)

    async def link(self, name: str, digest: Digest) -> None:
        async with self._lookup.link_guard(name, digest):
            await self._storage.write(paths.holder(digest, name), b"")
            await self._storage.write(paths.layer_link(name, digest), str(digest).encode())
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
        """Link a blob another repository holds; without `source`, any readable holder works."""
        if source is not None:
            candidates = [source]
        else:
            entries = await self._storage.list(paths.holders(digest))
            candidates = sorted(paths.holder_name(e) for e in entries)
        for candidate in candidates:
            if candidate != name and not await may_read(candidate):
                continue
            if await self.linked(candidate, digest):
                await self.link(name, digest)
                return True
        return False
