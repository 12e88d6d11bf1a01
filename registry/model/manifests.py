"""Manifests, tags and the referrers index.

A manifest becomes visible only after every blob and child manifest it references was found in
the repository; its content is stored like a blob, then linked as a revision, then indexed as a
referrer, then tagged — so a reader never finds a tag whose manifest or content is missing.
Tag files and revision links carry the digest, media type and size, so answering `HEAD` by tag
costs one small read.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from registry.coord.base import Vouches
from registry.model import paths
from registry.model.blobs import Blobs, first_failing
from registry.model.cache import ContentCache
from registry.model.index import Lookup
from registry.model.protection import Pins
from registry.oci.digests import Digest, is_digest
from registry.oci.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestChildUnknown,
    ManifestUnknown,
    RegistryError,
)
from registry.oci.manifests import Manifest, parse_manifest
from registry.oci.names import validate_tag
from registry.storage.base import ObjectNotFound, StorageDriver, read_optional


@dataclass(frozen=True, slots=True)
class ManifestRef:
    digest: Digest
    media_type: str
    size: int

    def encode(self, checked: float | None = None) -> bytes:
        """The record of a revision or tag; a cached tag's also says when its upstream last
        confirmed it (`checked`), which a reader of the reference alone ignores."""
        doc: dict[str, object] = {
            "digest": str(self.digest),
            "mediaType": self.media_type,
            "size": self.size,
        }
        if checked is not None:
            doc["checked"] = checked
        return json.dumps(doc).encode()

    @classmethod
    def decode(cls, data: bytes) -> ManifestRef:
        return cls.from_doc(json.loads(data))

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ManifestRef:
        return cls(Digest.parse(doc["digest"]), doc["mediaType"], doc["size"])


@dataclass(frozen=True, slots=True)
class TagState:
    """A tag's manifest, and when a pull-through cache last had it confirmed by its upstream
    (None for a pushed tag)."""

    ref: ManifestRef
    checked: float | None


def _tag_state(record: bytes) -> TagState:
    """A tag record read once: its reference and, for a cached tag, its confirmation."""
    doc = json.loads(record)
    checked = doc.get("checked")
    confirmed = float(checked) if isinstance(checked, int | float) else None
    return TagState(ManifestRef.from_doc(doc), confirmed)


@dataclass(frozen=True, slots=True)
class Stored:
    ref: ManifestRef
    manifest: Manifest


class Manifests:
    def __init__(
        self, storage: StorageDriver, blobs: Blobs, lookup: Lookup, vouches: Vouches
    ) -> None:
        self._storage = storage
        self._blobs = blobs
        self._lookup = lookup
        self._vouches = vouches
        self._cache = ContentCache()

    async def resolve(self, name: str, reference: str) -> ManifestRef:
        """Tag or digest to the stored reference; MANIFEST_UNKNOWN when absent."""
        if is_digest(reference):
            revision = paths.revision(name, Digest.parse(reference))
            record = await read_optional(self._storage, revision)
        else:
            record = await self._lookup.tag(name, validate_tag(reference))
        if record is None:
            raise ManifestUnknown(detail={"reference": reference})
        return ManifestRef.decode(record)

    async def content(self, ref: ManifestRef) -> bytes:
        key = str(ref.digest)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            body = await self._storage.read(paths.blob(ref.digest))
        except ObjectNotFound:
            raise ManifestUnknown(detail={"digest": key}) from None
        self._cache.put(key, body)
        return body

    async def put(self, name: str, reference: str, body: bytes, content_type: str | None) -> Stored:
        tag = None if is_digest(reference) else validate_tag(reference)
        if tag is None:
            wanted = Digest.parse(reference)
            digest = Digest.of(body, wanted.algorithm)
            if digest != wanted:
                raise DigestInvalid(
                    f"manifest digest is {digest}, not {wanted}", detail={"digest": reference}
                )
        else:
            digest = Digest.of(body)
        manifest = await _parsed(body, content_type)
        # Pinned before they are checked, and the manifest itself before it is stored, so
        # that the garbage collector deletes none of them until the manifest is visible to
        # its next mark (docs/gc.md); one it is deleting counts as missing already.
        references = _references(manifest)
        if len(references) > PIN_AFTER_CHECK:
            # Pins cost a record each: a manifest naming thousands of blobs it may not have
            # is checked once before pinning, so a refusal costs no pins.
            await self._check_references(name, manifest)
        pins = Pins(self._vouches, references, stored=digest)
        await _refuse_claimed(await pins.take(), manifest)
        try:
            await self._check_references(name, manifest)
            ref = await self._keep(name, tag, body, digest, manifest, pins, None)
        finally:
            await pins.done()
        return Stored(ref, manifest)

    async def tag_state(self, name: str, tag: str) -> TagState | None:
        """The tag's manifest and confirmation time; None when there is no such tag."""
        record = await self._lookup.tag(name, validate_tag(tag))
        if record is None:
            return None
        return _tag_state(record)

    async def store_fetched(
        self,
        name: str,
        tag: str | None,
        body: bytes,
        media_type: str | None,
        digest: Digest,
        checked: float | None,
    ) -> ManifestRef:
        """A manifest a pull-through cache fetched (its digest verified by the caller),
        validated like a push but without requiring what it names to be here: a cache
        fetches an index's children and an image's layers only when a client asks for them.
        With `tag`, the tag moves to it, confirmed at `checked`."""
        manifest = await _parsed(body, media_type)
        pins = Pins(self._vouches, [], stored=digest)
        await pins.take()
        try:
            return await self._keep(name, tag, body, digest, manifest, pins, checked)
        finally:
            await pins.done()

    async def _keep(
        self,
        name: str,
        tag: str | None,
        body: bytes,
        digest: Digest,
        manifest: Manifest,
        pins: Pins,
        checked: float | None,
    ) -> ManifestRef:
        """The content stored (unless it is already), then linked while the pins hold."""
        ref = ManifestRef(digest, manifest.media_type, len(body))
        if await self._storage.size(paths.blob(digest)) != len(body):
            await self._storage.write(paths.blob(digest), body)
        pins.check()
        await self._link(name, ref, manifest, tag, checked)
        return ref

    async def confirm_tag(self, name: str, tag: str, ref: ManifestRef, checked: float) -> None:
        """The upstream still names `ref` by the tag: record when, unless the tag moved."""
        async with self._lookup.guard(name, tag):
            record = await self._lookup.tag(name, tag)
            if record is None or ManifestRef.decode(record) != ref:
                return
            confirmed = ref.encode(checked)
            await self._storage.write(paths.tag(name, tag), confirmed)
            await self._lookup.tag_set(name, tag, confirmed)

    async def _link(
        self,
        name: str,
        ref: ManifestRef,
        manifest: Manifest,
        tag: str | None,
        checked: float | None = None,
    ) -> None:
        """Revision, referrer entry and tag, under the manifest's lock: a delete of the same
        manifest runs wholly before (and the revision comes back) or after (and finds the
        tag, which it removes), never in between, where it would leave a tag naming a
        manifest that is gone."""
        async with self._lookup.manifest_guard(name, ref.digest):
            await self._storage.write(paths.revision(name, ref.digest), ref.encode())
            await self._lookup.repository_added(name)
            if manifest.subject is not None:
                await self._storage.write(
                    paths.referrer(name, manifest.subject.digest, ref.digest),
                    json.dumps(_referrer_descriptor(ref, manifest)).encode(),
                )
            if tag is not None:
                record = ref.encode(checked)
                async with self._lookup.guard(name, tag):
                    await self._storage.write(paths.tag(name, tag), record)
                    await self._lookup.tag_set(name, tag, record)

    async def _check_references(self, name: str, manifest: Manifest) -> None:
        """Every blob and child manifest named must be in the repository; the first missing
        one is named in the error. Checked in bounded batches (see `first_failing`)."""
        blob = await self._blobs.first_missing(
            name, (d.digest for d in manifest.blobs if d.distributable)
        )
        if blob is not None:
            raise ManifestBlobUnknown(
                f"blob {blob} is not in repository {name}", detail={"digest": str(blob)}
            )

        async def stored(batch: list[Digest]) -> list[bool]:
            revisions = (self._storage.size(paths.revision(name, d)) for d in batch)
            return [size is not None for size in await asyncio.gather(*revisions)]

        children = list(dict.fromkeys(d.digest for d in manifest.children))
        child = await first_failing(children, stored)
        if child is not None:
            raise ManifestChildUnknown(
                f"manifest {child} is not in repository {name}", detail={"digest": str(child)}
            )

    async def delete(self, name: str, reference: str) -> None:
        """By tag: the tag goes. By digest: the manifest, its tags and its referrer entry go,
        all under the manifest's lock (see `_link`)."""
        if not is_digest(reference):
            if not await self._delete_tag(name, validate_tag(reference)):
                raise ManifestUnknown(detail={"reference": reference})
            return
        digest = Digest.parse(reference)
        async with self._lookup.manifest_guard(name, digest):
            ref = await self.resolve(name, reference)
            for tag, record in ((await self._lookup.tags(name)) or {}).items():
                if ManifestRef.decode(record) == ref:
                    await self._delete_tag(name, tag, naming=ref)
            subject = subject_of(await self._storage.read(paths.blob(digest)))
            if subject is not None:
                await self._storage.delete(paths.referrer(name, subject, digest))
            if not await self._storage.delete(paths.revision(name, digest)):
                raise ManifestUnknown(detail={"reference": reference})

    async def _delete_tag(self, name: str, tag: str, *, naming: ManifestRef | None = None) -> bool:
        """The index forgets it first, so no request finds a tag that storage no longer has.

        With `naming`, only while the tag still names that manifest: a push may have moved
        the tag to another manifest since the caller read it, and that push must stand.
        """
        async with self._lookup.guard(name, tag):
            if naming is not None:
                record = await self._lookup.tag(name, tag)
                if record is None or ManifestRef.decode(record) != naming:
                    return False
            await self._lookup.tag_removed(name, tag)
            return await self._storage.delete(paths.tag(name, tag))

    async def referrers(
        self, name: str, subject: Digest, artifact_type: str | None
    ) -> list[dict[str, Any]]:
        prefix = paths.referrers(name, subject)
        entries = sorted(await self._storage.list(prefix))
        blobs = await asyncio.gather(
            *(read_optional(self._storage, f"{prefix}/{e}") for e in entries)
        )
        descriptors = [json.loads(b) for b in blobs if b is not None]
        if artifact_type is not None:
            descriptors = [d for d in descriptors if d.get("artifactType") == artifact_type]
        return descriptors


# Above this many distinct references, a manifest's are checked before they are pinned too.
PIN_AFTER_CHECK = 1000

# Parsing and validating a manifest near the 4 MiB cap takes a few hundred milliseconds; a
# thread keeps the event loop answering other requests meanwhile. Small manifests (nearly all)
# are parsed in place, where the hop to a thread would cost more than the parse.
PARSE_IN_THREAD_BYTES = 256 * 1024


async def _parsed(body: bytes, content_type: str | None) -> Manifest:
    if len(body) < PARSE_IN_THREAD_BYTES:
        return parse_manifest(body, content_type)
    return await asyncio.to_thread(parse_manifest, body, content_type)


def _references(manifest: Manifest) -> list[Digest]:
    """What a manifest needs to be in its repository: its blobs and child manifests, each
    once."""
    blobs = (d.digest for d in manifest.blobs if d.distributable)
    return list(dict.fromkeys([*blobs, *(d.digest for d in manifest.children)]))


async def _refuse_claimed(claimed: Digest | None, manifest: Manifest) -> None:
    """A reference the garbage collector is deleting fails the PUT as a missing one would."""
    if claimed is None:
        return
    if any(d.digest == claimed for d in manifest.children):
        raise ManifestChildUnknown(
            f"manifest {claimed} is being garbage collected", detail={"digest": str(claimed)}
        )
    raise ManifestBlobUnknown(
        f"blob {claimed} is being garbage collected", detail={"digest": str(claimed)}
    )


def _referrer_descriptor(ref: ManifestRef, manifest: Manifest) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "mediaType": ref.media_type,
        "digest": str(ref.digest),
        "size": ref.size,
    }
    if manifest.referrer_artifact_type:
        descriptor["artifactType"] = manifest.referrer_artifact_type
    if manifest.annotations:
        descriptor["annotations"] = manifest.annotations
    return descriptor


def subject_of(body: bytes) -> Digest | None:
    """The subject of a stored manifest (it passed validation when it was put)."""
    try:
        subject = parse_manifest(body, None).subject
    except RegistryError:
        return None
    return subject.digest if subject is not None else None
