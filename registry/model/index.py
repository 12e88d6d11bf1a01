"""Where the model looks up tags, blob links and repositories: the coordinator's index, or
storage.

With Redis, requests read tags, links and the repository list from its index (one round trip,
no object-store request); storage keeps the record and the index follows it. When the index is
not ready (a fresh Redis, or one that lost its data), requests read storage, which is always
correct, and the first of them starts a rebuild in the background: one worker at a time (a
lock), walking storage once, then reading again every repository that changed meanwhile,
until a pass finds none (see `Index`). While Redis is unreachable, reads go to storage too,
so pulls by tag survive a Redis outage; changes answer 503. The embedded default has no
index and always walks its data directory, which is cheap there.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from cachetools import LRUCache

from registry.coord.base import (
    Coordinator,
    CoordinatorUnavailable,
    Index,
    IndexNotReady,
    LockTimeout,
)
from registry.model import paths
from registry.model.protection import Generation
from registry.oci.digests import Digest
from registry.storage.base import StorageDriver, StorageUnavailable, read_optional

log = logging.getLogger(__name__)

T = TypeVar("T")


class Miss(enum.Enum):
    """The index could not answer."""

    MISS = enum.auto()


MISS = Miss.MISS

_MARKERS = ("_manifests", "_layers")
KNOWN_LIMIT = 10_000  # repositories this process remembers having added to the index
# A tag's, link's or manifest's change is a few small writes; longer means trouble. (Redis
# cuts any wait shorter, at one lock lease.)
CHANGE_LOCK_WAIT = 30.0
REBUILD_LOCK_WAIT = 0.5  # another worker holding the rebuild lock is rebuilding already
REBUILD_PAUSE = 5.0  # seconds between attempts of one process, after one that did not finish


class Lookup:
    def __init__(
        self, storage: StorageDriver, coord: Coordinator, store: str, generation: Generation
    ) -> None:
        self._storage = storage
        self._generation = generation
        self._coord = coord
        self._index = coord.index(store)
        self._rebuild_lock = f"index-rebuild:{store}"
        # Added already: a blob push to a known repository costs no Redis round trip. Safe
        # to remember, because an index that loses it is not ready and gets rebuilt from
        # storage, where the repository is. Least recently used out first; event loop only.
        # The garbage collector drops emptied repositories from the index: forget them then.
        self._known: LRUCache[str, bool] = LRUCache(KNOWN_LIMIT)
        generation.on_change(self._known.clear)
        self._rebuild: asyncio.Task[None] | None = None
        self._next_rebuild = 0.0  # monotonic time before which no new attempt starts

    # --- reads

    async def _indexed(self, read: Callable[[Index], Awaitable[T]]) -> T | Miss:
        """`read` from the index; MISS when there is none, it is not ready (then a rebuild
        starts) or Redis is away: the caller reads storage instead."""
        if self._index is None:
            return MISS
        try:
            return await read(self._index)
        except IndexNotReady:
            self._start_rebuild()
        except CoordinatorUnavailable:
            pass  # storage answers reads while Redis is away
        return MISS

    async def tag(self, name: str, tag: str) -> bytes | None:
        found = await self._indexed(lambda index: index.tag(name, tag))
        if found is not MISS:
            return found
        return await read_optional(self._storage, paths.tag(name, tag))

    async def tags(self, name: str) -> dict[str, bytes] | None:
        """Every tag with its record; None when the repository does not exist."""
        found = await self._indexed(lambda index: index.tags(name))
        if found is not MISS:
            return found
        if not await self.stored_exists(name):
            return None
        return await self.stored_tags(name)

    async def tag_names(self, name: str) -> list[str] | None:
        """Tag names only: from storage this is one listing, no reads."""
        found = await self._indexed(lambda index: index.tags(name))
        if found is not MISS:
            return None if found is None else list(found)
        names = await self._storage.list(paths.tags(name))
        if not names and not await self.stored_exists(name):
            return None
        return names

    async def linked(self, name: str, digest: Digest) -> bool:
        """Whether `name` links the blob: the check in front of every blob `HEAD` and `GET`."""
        found = await self._indexed(lambda index: index.linked(name, str(digest)))
        if found is not MISS:
            return found
        return await self._storage.size(paths.layer_link(name, digest)) is not None

    async def linked_many(self, name: str, digests: Sequence[Digest]) -> list[bool]:
        """`linked` for each of `digests`: one index round trip, or else one storage check
        each, all at once (the caller keeps the batch small)."""
        texts = [str(d) for d in digests]
        found = await self._indexed(lambda index: index.linked_many(name, texts))
        if found is not MISS:
            return found
        links = (self._storage.size(paths.layer_link(name, d)) for d in digests)
        return [size is not None for size in await asyncio.gather(*links)]

    async def repositories(self, after: str | None, count: int) -> list[str] | None:
        """A page of names from the index; None when it cannot answer (walk storage)."""
        found = await self._indexed(lambda index: index.repositories(after, count))
        return None if found is MISS else found

    async def walk(self) -> list[str]:
        """Every repository in storage, nested ones included."""
        found: list[str] = []
        await self._walk("", found)
        return found

    # --- changes (storage first for additions, index first for removals)

    def guard(self, name: str, tag: str) -> AbstractAsyncContextManager[None]:
        """Held around a tag's change in storage and in the index, so that two pushes of one
        tag reach both in the same order and the index agrees with storage afterwards. Taken
        with storage alone too: a delete by digest re-reads a tag under it and removes the tag
        only if it still names the deleted manifest, which a push moving the tag at the same
        moment must not slip between."""
        return self._coord.lock(f"tag:{name}:{tag}", timeout=CHANGE_LOCK_WAIT)

    def manifest_guard(self, name: str, digest: Digest) -> AbstractAsyncContextManager[None]:
        """Held by a manifest's push across its revision and tag writes and by its delete
        across the whole delete, so the two never interleave. Unlike `guard` it is taken with
        storage alone too: there the race is between storage writes themselves. Always
        taken before a tag's lock, never while holding one, so the two cannot deadlock."""
        return self._coord.lock(f"manifest:{name}:{digest}", timeout=CHANGE_LOCK_WAIT)

    def link_guard(self, name: str, digest: Digest) -> AbstractAsyncContextManager[None]:
        """Held around a blob link's change in storage and in the index, so both change in
        the same order; with storage alone there is nothing to keep in step with it."""
        if self._index is None:
            return contextlib.nullcontext()
        return self._coord.lock(f"link:{name}:{digest}", timeout=CHANGE_LOCK_WAIT)

    async def link_added(self, name: str, digest: Digest) -> None:
        if self._index is not None:
            await self._index.add_link(name, str(digest))
            self._remember(name)

    async def link_removed(self, name: str, digest: Digest) -> None:
        if self._index is not None:
            await self._index.delete_link(name, str(digest))

    async def tag_set(self, name: str, tag: str, record: bytes) -> None:
        if self._index is not None:
            await self._index.set_tag(name, tag, record)
            self._remember(name)

    async def tag_removed(self, name: str, tag: str) -> None:
        if self._index is not None:
            await self._index.delete_tag(name, tag)

    async def repository_added(self, name: str) -> None:
        if self._index is None:
            return
        await self._generation.check()
        if name not in self._known:
            await self._index.add_repository(name)
            self._remember(name)

    async def forget_empty(self, name: str) -> bool:
        """The garbage collector emptied the repository in storage: the index forgets it too,
        unless a push linked or tagged something there meanwhile. True when it is gone."""
        self._known.pop(name, None)
        if self._index is None:
            return True
        return await self._index.drop_repository(name)

    def _remember(self, name: str) -> None:
        self._known[name] = True

    # --- rebuild

    def _start_rebuild(self) -> None:
        """At most one attempt per process at a time, and after one that could not run
        (another worker was rebuilding, or a backend was away) none for REBUILD_PAUSE."""
        now = time.monotonic()
        if (self._rebuild is None or self._rebuild.done()) and now >= self._next_rebuild:
            self._rebuild = asyncio.create_task(self._rebuild_quietly())

    async def _rebuild_quietly(self) -> None:
        done = False
        try:
            done = await self.rebuild()
        except (CoordinatorUnavailable, StorageUnavailable) as exc:
            log.warning("index rebuild stopped, a later request retries it: %s", exc)
        except Exception:
            log.exception("index rebuild failed, a later request retries it")
        if not done:
            self._next_rebuild = time.monotonic() + REBUILD_PAUSE

    async def rebuild(self) -> bool:
        """Fill the index from storage; False when another worker is doing it."""
        index = self._index
        if index is None:
            return False
        try:
            async with self._coord.lock(self._rebuild_lock, timeout=REBUILD_LOCK_WAIT):
                if await index.ready():
                    return True
                log.info("rebuilding the index of tags, links and repositories from storage")
                pending = await self.walk()
                while True:
                    for name in pending:
                        tags, links = await asyncio.gather(
                            self.stored_tags(name), self._stored_links(name)
                        )
                        await index.replace_repository(name, tags, links)
                    pending = await index.take_dirty()
                    if not pending and await index.mark_ready():
                        log.info("the index of tags, links and repositories is ready")
                        return True
        except LockTimeout:
            return False

    # --- storage

    async def stored_exists(self, name: str) -> bool:
        """Whether storage holds anything of the repository (links, manifests, tags)."""
        children = await self._storage.list(paths.repository(name))
        return any(marker in children for marker in _MARKERS)

    async def stored_tags(self, name: str) -> dict[str, bytes]:
        """Every tag with its record, from storage (the record), never from the index."""
        names = await self._storage.list(paths.tags(name))
        reads = (read_optional(self._storage, paths.tag(name, t)) for t in names)
        records = await asyncio.gather(*reads)
        return {t: r for t, r in zip(names, records, strict=True) if r is not None}

    async def _stored_links(self, name: str) -> frozenset[str]:
        """`<alg>:<hex>` of every blob the repository links: one listing per algorithm."""
        layers = paths.layers(name)
        algorithms = await self._storage.list(layers)
        listed = await asyncio.gather(*(self._storage.list(f"{layers}/{a}") for a in algorithms))
        return frozenset(
            f"{a}:{hex_}" for a, names in zip(algorithms, listed, strict=True) for hex_ in names
        )

    async def _walk(self, name: str, found: list[str]) -> None:
        prefix = paths.repository(name) if name else paths.REPOSITORIES
        children = await self._storage.list(prefix)
        if name and any(marker in children for marker in _MARKERS):
            found.append(name)
        for child in children:
            if not child.startswith("_"):
                await self._walk(f"{name}/{child}" if name else child, found)
