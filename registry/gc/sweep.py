"""Sweep: delete what the mark did not keep, digest by digest under claims (docs/gc.md).

Nothing is deleted without a claim on its digest (`Vouches.claim`), which fails while a
write pins the digest or when it was vouched for within the grace window; a claim lasts
while this collection's leadership does, and the leadership is checked before every delete,
so a collector that lost it (a Redis failover, a long pause) stops before its next delete.

Order within a blob's deletion keeps every instant consistent: the index forgets each
repository link first (as unlinking does), then storage loses the links and the reverse
index, then the content (an S3 alias before its data object). A collector killed anywhere in
between leaves a blob that fewer repositories link, or content that nothing links, which the
next collection finishes. After deleting, the generation advances, and the claims are held
for two generation polls more (whether or not this collection still runs), so that no serving
process still remembers the old object by the time the digest can be written again.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Collection, Sequence
from typing import TextIO

from registry.config.gc_options import GcSettings
from registry.coord.base import Coordinator, Leadership, Vouches
from registry.gc import shards
from registry.gc.mark import Marked, revision_written
from registry.gc.report import Report
from registry.model import paths
from registry.model.index import Lookup
from registry.model.manifests import ManifestRef, subject_of
from registry.model.protection import GENERATION_POLL
from registry.model.purge import purge_expired_uploads
from registry.oci.digests import Digest
from registry.oci.errors import DigestInvalid
from registry.storage.base import Listed, StorageDriver, read_optional

BATCH = 500  # blobs claimed and deleted together
WALKERS = 8  # folders of `blobs/` listed at once
RELEASE_AFTER = 2 * GENERATION_POLL + 1.0  # seconds a claim outlives its deletion


class Sweeper:
    def __init__(
        self,
        storage: StorageDriver,
        coord: Coordinator,
        lookup: Lookup,
        vouches: Vouches,
        leadership: Leadership,
        *,
        cutoff: float,
        options: GcSettings,
        report: Report,
        out: TextIO = sys.stderr,
    ) -> None:
        self._storage = storage
        self._coord = coord
        self._lookup = lookup
        self._vouches = vouches
        self._leadership = leadership
        self._cutoff = cutoff
        self._options = options
        self._report = report
        self._out = out
        self._dry = options.dry_run
        self.touched: set[str] = set()  # repositories that lost something

    # --- claims

    async def _claim(self, digests: Sequence[str]) -> list[str]:
        """The digests this run may delete: claimed, or in a dry run those a claim would
        take (nothing is written then)."""
        if not digests:
            return []
        if self._dry:
            return await self._vouches.claimable(digests, self._cutoff)
        await self._leadership.confirm()
        return await self._vouches.claim(digests, self._cutoff, self._leadership.token)

    # --- manifests (only tagged content is kept)

    async def manifests(self, marked: Marked) -> None:
        for name, digests in marked.unkept.items():
            old = await self._older_revisions(name, digests)
            claimed = set(await self._claim(old))
            self._report.manifests.kept_recent += len(digests) - len(claimed)
            for digest in (d for d in old if d in claimed):
                if self._dry or await self._delete_revision(name, Digest.parse(digest)):
                    self._report.manifests.deleted += 1
                    self.touched.add(name)
                    if self._options.verbose:
                        self._report.item(self._out, "manifest", f"{name}@{digest}")
            if claimed and not self._dry:
                await self._vouches.release(sorted(claimed))

    async def _older_revisions(self, name: str, digests: list[str]) -> list[str]:
        """Revisions written before the cutoff (a younger one may be an index's child whose
        index is still on its way)."""
        written = await asyncio.gather(*(revision_written(self._storage, name, d) for d in digests))
        return [
            d for d, w in zip(digests, written, strict=True) if w is not None and w < self._cutoff
        ]

    async def _delete_revision(self, name: str, digest: Digest) -> bool:
        """Under the manifest's lock, as a delete by digest: not when a tag names it now."""
        async with self._lookup.manifest_guard(name, digest):
            for record in ((await self._lookup.tags(name)) or {}).values():
                if ManifestRef.decode(record).digest == digest:
                    return False
            await self._leadership.confirm()
            body = await read_optional(self._storage, paths.blob(digest))
            subject = None if body is None else subject_of(body)
            if subject is not None:
                await self._storage.delete(paths.referrer(name, subject, digest))
            return await self._storage.delete(paths.revision(name, digest))

    # --- blobs

    async def blobs(self, marked: Marked, processes: int = 1) -> None:
        """Every fan-out folder of `blobs/` (`blobs/<algorithm>/<hh>`), in this process or
        split over `processes` (see `shards`)."""
        prefixes = [
            f"blobs/{algorithm}/{fan}"
            for algorithm in await self._storage.list("blobs")
            for fan in await self._storage.list(f"blobs/{algorithm}")
        ]
        if processes < 2 or len(prefixes) < 2:
            await self._sweep_blobs(marked, prefixes)
            return
        self._out.flush()  # the `-v` stream: what is buffered would be written by every child
        counted = await shards.sweep_split(
            prefixes, processes, functools.partial(self._counted_sweep, marked)
        )
        for counts in counted[1:]:  # this process's own are in the report already
            self._report.blobs.deleted += counts.deleted
            self._report.blobs.bytes += counts.freed
            self._report.blobs.kept_recent += counts.kept_recent
            self._report.links += counts.links
            self.touched |= counts.touched

    async def _counted_sweep(self, marked: Marked, prefixes: Sequence[str]) -> shards.Counts:
        """`_sweep_blobs`, and what it added to the report."""
        before = self._counts()
        await self._sweep_blobs(marked, prefixes)
        after = self._counts()
        return shards.Counts(
            after.deleted - before.deleted,
            after.freed - before.freed,
            after.kept_recent - before.kept_recent,
            after.links - before.links,
            after.touched - before.touched,
        )

    def _counts(self) -> shards.Counts:
        blobs = self._report.blobs
        touched = frozenset(self.touched)
        return shards.Counts(
            blobs.deleted, blobs.bytes, blobs.kept_recent, self._report.links, touched
        )

    async def _sweep_blobs(self, marked: Marked, prefixes: Sequence[str]) -> None:
        """Walk the `prefixes`, one per walker, several at once (S3 lists 1,000 keys a
        request, one request after another per prefix), deleting candidates in batches as
        they fill."""
        batch: list[tuple[Digest, Listed]] = []
        gate = asyncio.Semaphore(WALKERS)

        async def walk(prefix: str) -> None:
            nonlocal batch
            async with gate:
                async for page in self._storage.walk(prefix):
                    batch += self._candidates(page, marked)
                    if len(batch) >= BATCH:
                        full, batch = batch, []
                        await self._blob_batch(full)

        await asyncio.gather(*(walk(prefix) for prefix in prefixes))
        await self._blob_batch(batch)

    def _candidates(self, page: Sequence[Listed], marked: Marked) -> list[tuple[Digest, Listed]]:
        """Blobs nothing marked and written before the cutoff; the others counted as kept."""
        found = []
        for entry in page:
            if _kept(entry.key, marked.keep):
                continue
            digest = _blob_digest(entry.key)
            if digest is None or str(digest) in marked.keep:
                continue
            if entry.modified >= self._cutoff:
                self._report.blobs.kept_recent += 1
                continue
            found.append((digest, entry))
        return found

    async def _blob_batch(self, batch: list[tuple[Digest, Listed]]) -> None:
        claimed = set(await self._claim([str(d) for d, _ in batch]))
        self._report.blobs.kept_recent += len(batch) - len(claimed)
        chosen = [(d, e) for d, e in batch if str(d) in claimed]
        if not chosen:
            return
        if self._dry:
            self._counted(chosen)
            self._report.links += len(await self._links_of([d for d, _ in chosen]))
            would_free = await self._sizes(chosen)  # awaited first: batches run at once
            self._report.blobs.bytes += would_free
            return
        await self._unlink_everywhere([d for d, _ in chosen])
        await self._leadership.confirm()
        # Awaited before the sum: `x += await ...` would read the total before the await,
        # and batches running at once would overwrite each other's bytes.
        freed = await self._storage.delete_blobs([entry.key for _, entry in chosen])
        self._report.blobs.bytes += freed
        self._counted(chosen)  # after the delete: a run that failed at it does not count them
        await self._vouches.advance()
        await self._vouches.release(sorted(claimed), hold=RELEASE_AFTER)

    def _counted(self, chosen: list[tuple[Digest, Listed]]) -> None:
        """Deleted (or, in a dry run, deletable) blobs into the report, and `-v` lines."""
        if self._options.verbose:
            for digest, _ in chosen:
                self._report.item(self._out, "blob", str(digest))
        self._report.blobs.deleted += len(chosen)

    async def _links_of(self, digests: list[Digest]) -> list[tuple[str, Digest]]:
        """(repository, digest) of every repository link, from the reverse index."""
        listed = await asyncio.gather(*(self._storage.list(paths.holders(d)) for d in digests))
        return [
            (paths.holder_name(entry), digest)
            for digest, entries in zip(digests, listed, strict=True)
            for entry in entries
        ]

    async def _unlink_everywhere(self, digests: list[Digest]) -> None:
        """Every repository link of the (claimed) digests: the index first, then storage."""
        links = await self._links_of(digests)
        for name, digest in links:
            async with self._lookup.link_guard(name, digest):
                await self._lookup.link_removed(name, digest)
            self.touched.add(name)
        await self._leadership.confirm()
        await self._storage.delete_many(
            [paths.layer_link(name, digest) for name, digest in links]
            + [paths.holder(digest, name) for name, digest in links]
        )
        self._report.links += len(links)

    async def _sizes(self, chosen: list[tuple[Digest, Listed]]) -> int:
        """A dry run's bytes: listed sizes, and the size an S3 alias (listed as 0) names."""
        sizes = await asyncio.gather(
            *(
                self._storage.size(entry.key) if entry.size == 0 else _known(entry.size)
                for _, entry in chosen
            )
        )
        return sum(size or 0 for size in sizes)

    # --- uploads, leftovers, repositories

    async def uploads(self) -> None:
        purged = await purge_expired_uploads(
            self._storage,
            self._coord,
            expiry=self._options.uploads_older_than,
            dry_run=self._dry,
        )
        self._report.upload_sessions += purged.sessions
        self._report.upload_orphans += purged.orphans
        self._report.upload_bytes += purged.bytes

    async def leftovers(self) -> None:
        """Store-level leftovers of uploads; the live uploads are asked for first (see
        `StorageDriver.sweep_leftovers`)."""
        live = [paths.upload_data(i) for i in await self._coord.session_ids()]
        await self._leadership.confirm()
        swept = await self._storage.sweep_leftovers(live, self._cutoff, dry_run=self._dry)
        self._report.unnamed_objects += swept.objects
        self._report.abandoned_multipart += swept.uploads
        self._report.leftover_bytes += swept.bytes

    async def repositories(self) -> None:
        """Repositories that lost their last link or revision: gone from storage already,
        dropped from the index unless a push came back meanwhile."""
        if self._dry:
            return
        for name in sorted(self.touched):
            if not await self._lookup.stored_exists(name) and await self._lookup.forget_empty(name):
                self._report.empty_repositories += 1


async def _known(size: int) -> int:
    return size


def _kept(key: str, keep: Collection[str]) -> bool:
    """Whether a `blobs/<algorithm>/<hh>/<hex>` key names a kept digest, without parsing it
    (most of a store is kept; what is not is parsed and checked by `_blob_digest`)."""
    _, _, rest = key.partition("/")
    algorithm, _, rest = rest.partition("/")
    return f"{algorithm}:{rest.rpartition('/')[2]}" in keep


def _blob_digest(key: str) -> Digest | None:
    """The digest of a `blobs/<algorithm>/<hh>/<hex>` key; None for anything else."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "blobs":
        return None
    try:
        digest = Digest.parse(f"{parts[1]}:{parts[3]}")
    except DigestInvalid:
        return None
    return digest if paths.blob(digest) == key else None
