"""Mark: every digest the store must keep, from every repository, nested ones included.

Roots are, per repository, every tag and (unless only tagged content is kept) every manifest
revision. From a kept manifest the mark reaches its blobs (config, layers, an artifact's
files), its children (an index's manifests, in the same repository) and, when only tagged
content is kept, its referrers (signatures, SBOMs): a referrer of a kept manifest is kept.
The mark is global by digest, like the blobs it protects: a blob that one repository's
manifest names is kept, whichever repositories link it.

Manifests are read once per digest, however many repositories hold them, and only their
references are remembered, so memory follows the number of live digests. A manifest that
does not parse (another tool's, an old schema) is not skipped: every digest it mentions is
kept, which may keep too much but never deletes what it needs.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from registry.model import paths
from registry.model.index import Lookup
from registry.model.manifests import ManifestRef
from registry.oci.digests import Digest
from registry.oci.errors import DigestInvalid, RegistryError
from registry.oci.manifests import parse_manifest
from registry.storage.base import ObjectNotFound, StorageDriver

REPOSITORIES_AT_ONCE = 8  # repositories marked concurrently
READS_AT_ONCE = 32  # manifest reads in flight per repository
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


@dataclass(frozen=True, slots=True)
class References:
    """What one manifest keeps: blobs, and manifests (children, or anything an unparsed
    manifest mentions) to follow in the same repository."""

    blobs: tuple[str, ...]
    manifests: tuple[str, ...]


@dataclass(slots=True)
class Marked:
    """The mark's result: digests to keep, and per repository the revisions nothing keeps
    (only when only tagged content is kept)."""

    keep: set[str] = field(default_factory=set)
    unkept: dict[str, list[str]] = field(default_factory=dict)
    repositories: list[str] = field(default_factory=list)
    manifests: int = 0  # distinct manifests read
    missing: int = 0  # revisions whose content is gone (kept as they are)


Progress = Callable[[int, int], None]  # (repositories done, manifests read so far)


class Marker:
    def __init__(
        self, storage: StorageDriver, lookup: Lookup, *, untagged: bool, progress: Progress
    ) -> None:
        self._storage = storage
        self._lookup = lookup
        self._untagged = untagged
        self._progress = progress
        self._references: dict[str, References | None] = {}  # by manifest digest
        self._reads = asyncio.Semaphore(READS_AT_ONCE * REPOSITORIES_AT_ONCE)

    async def mark(self) -> Marked:
        marked = Marked(repositories=await self._lookup.walk())
        gate = asyncio.Semaphore(REPOSITORIES_AT_ONCE)
        done = 0

        async def one(name: str) -> None:
            nonlocal done
            async with gate:
                await self._mark_repository(name, marked)
            done += 1
            self._progress(done, len(self._references))

        await asyncio.gather(*(one(name) for name in marked.repositories))
        marked.manifests = sum(1 for r in self._references.values() if r is not None)
        marked.missing = sum(1 for r in self._references.values() if r is None)
        return marked

    async def _mark_repository(self, name: str, marked: Marked) -> None:
        revisions = set(await _listed_digests(self._storage, paths.revisions(name)))
        tagged = await self._tag_targets(name)
        kept: set[str] = set()
        pending = set(tagged) if self._untagged else revisions | tagged
        while pending:
            kept |= pending
            found = await asyncio.gather(*(self._follow(name, d, marked) for d in pending))
            pending = {d for following in found for d in following} - kept
        marked.keep |= kept
        if self._untagged:
            unkept = sorted(revisions - kept)
            if unkept:
                marked.unkept[name] = unkept

    async def _tag_targets(self, name: str) -> set[str]:
        records = (await self._lookup.stored_tags(name)).values()
        targets = set()
        for record in records:
            try:
                targets.add(str(ManifestRef.decode(record).digest))
            except (ValueError, KeyError, TypeError):
                continue  # a tag file no registry wrote: nothing to keep through it
        return targets

    async def _follow(self, name: str, digest: str, marked: Marked) -> set[str]:
        """Keep the manifest's blobs; return the manifests it keeps in `name`."""
        references = await self._read(digest)
        if references is None:
            return set()
        marked.keep.update(references.blobs)
        following = set(references.manifests)
        if self._untagged:
            following |= set(await self._referrers(name, digest))
        return following

    async def _read(self, digest: str) -> References | None:
        """The manifest's references, read once per digest; None when its content is gone."""
        if digest in self._references:
            return self._references[digest]
        async with self._reads:
            try:
                body = await self._storage.read(paths.blob(Digest.parse(digest)))
            except (ObjectNotFound, DigestInvalid):
                body = None
        found = None if body is None else references_of(body)
        self._references[digest] = found
        return found

    async def _referrers(self, name: str, subject: str) -> list[str]:
        try:
            prefix = paths.referrers(name, Digest.parse(subject))
        except DigestInvalid:
            return []
        digests = []
        for entry in await self._storage.list(prefix):
            algorithm, _, hex_ = entry.partition("-")
            digests.append(f"{algorithm}:{hex_}")
        return digests


def references_of(body: bytes) -> References:
    """A stored manifest's references; for one that does not parse, every digest in it."""
    try:
        manifest = parse_manifest(body, None)
    except RegistryError:
        return _mentioned(body)
    blobs = tuple(str(d.digest) for d in manifest.blobs)
    children = tuple(str(d.digest) for d in manifest.children)
    return References(blobs, children)


def _mentioned(body: bytes) -> References:
    """Every digest-shaped string under a `digest` or `blobSum` key (schema 1, unknown
    types): kept as blobs and followed as manifests, whichever they are."""
    try:
        doc = json.loads(body)
    except ValueError:
        return References((), ())
    found = tuple(sorted(set(_digest_values(doc))))
    return References(found, found)


def _digest_values(doc: Any) -> Iterable[str]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("digest", "blobSum") and isinstance(value, str) and _DIGEST.fullmatch(value):
                yield value
            else:
                yield from _digest_values(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _digest_values(item)


async def _listed_digests(storage: StorageDriver, prefix: str) -> list[str]:
    """`<algorithm>:<hex>` of the entries under `<prefix>/<algorithm>/<hex>`."""
    algorithms = await storage.list(prefix)
    listed = await asyncio.gather(*(storage.list(f"{prefix}/{a}") for a in algorithms))
    return [f"{a}:{hex_}" for a, names in zip(algorithms, listed, strict=True) for hex_ in names]


async def revision_written(storage: StorageDriver, name: str, digest: str) -> float | None:
    """When the repository's revision link of `digest` was written (None: gone)."""
    return await storage.modified(paths.revision(name, Digest.parse(digest)))


__all__ = ["Marked", "Marker", "References", "references_of"]
