"""The S3 driver's maintenance calls, for garbage collection and never on a request path:
`walk`, `delete_many`, `delete_blobs` and `sweep_leftovers` of `StorageDriver`.

Split from `s3.py` like `s3_uploads`: the driver builds a `Maintenance` from its `Multipart`
calls (client, bucket, key mapping, deadlines), its key prefix and where it connects, and
hands this module nothing else of itself. Every listing page, HeadObject and DeleteObjects
runs under a deadline of its own. Work goes a page or 1,000 keys at a time, with a bounded
number of requests in flight, so neither memory nor the load on the store grows with the
bucket.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from registry.storage.base import Leftovers, Listed, ObjectNotFound, StorageUnavailable
from registry.storage.keys import check_key
from registry.storage.s3_errors import GONE
from registry.storage.s3_uploads import DATA_PREFIX, META_DATA, Multipart, data_key, read_alias

if TYPE_CHECKING:  # the stubs are a test dependency
    from types_aiobotocore_s3.type_defs import MultipartUploadTypeDef, ObjectTypeDef

PAGE = 1000  # objects a listing page holds, and keys a DeleteObjects takes (S3's maximum)
DELETE_CONCURRENCY = 4  # DeleteObjects requests in flight
HEAD_CONCURRENCY = 32  # HeadObject (and ListParts) requests in flight
# The model's folders (`registry.model.paths`, which the storage layer does not import; a test
# keeps them equal): where committed blobs and their aliases are, and where an upload's own
# key is (states written before data keys put their multipart uploads there).
BLOBS = "blobs"
UPLOADS = "_uploads/"

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


async def paged(
    bounded: Callable[[], AbstractAsyncContextManager[None]], pages: AsyncIterable[_Item]
) -> AsyncIterator[_Item]:
    """The pages of a paginated listing, each fetched under `bounded()` (the driver's deadline
    and error translation): a listing's length depends on the bucket, one page's does not."""
    iterator = aiter(pages)
    while True:
        async with bounded():
            page = await anext(iterator, None)
        if page is None:
            return
        yield page


async def each(
    items: Sequence[_Item], limit: int, work: Callable[[_Item], Awaitable[_Result]]
) -> list[_Result]:
    """`work` on every item, at most `limit` at once; the results in the items' order. The
    first failure cancels the rest and propagates as itself (no exception group)."""
    slots = asyncio.Semaphore(limit)

    async def one(item: _Item) -> _Result:
        async with slots:
            return await work(item)

    tasks = [asyncio.ensure_future(one(item)) for item in items]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@dataclass(frozen=True, slots=True)
class Maintenance:
    """The maintenance calls of one driver, bound to its client (see the module)."""

    calls: Multipart  # the driver's client, bucket, keys and deadlines; and `abort`
    prefix: str  # the driver's key prefix: "" or ending in "/"
    where: str  # the endpoint, for messages

    async def walk(self, prefix: str) -> AsyncGenerator[list[Listed], None]:
        """ListObjectsV2 without a delimiter, 1,000 objects a page, each page under its own
        deadline; empty pages are not yielded, so an absent prefix yields nothing."""
        start = self.calls.full(prefix) + "/"
        pages = self.calls.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.calls.bucket, Prefix=start, PaginationConfig={"PageSize": PAGE}
        )
        async for page in paged(lambda: self.calls.call("ListObjectsV2"), pages):
            found = [self._listed(item) for item in page.get("Contents", ())]
            if listed := [item for item in found if item is not None]:
                yield listed

    def _listed(self, item: ObjectTypeDef) -> Listed | None:
        """An object as `walk` gives it; None for a name no key of this registry can have (a
        folder marker `a/`, `a//b`): no other call could name it either."""
        key = item["Key"]
        if not key.startswith(self.prefix):
            return None
        try:
            key = check_key(key[len(self.prefix) :])
        except ValueError:
            return None
        return Listed(key, int(item["Size"]), item["LastModified"].timestamp())

    async def delete_many(self, keys: Sequence[str]) -> None:
        """DeleteObjects, 1,000 keys a request, a few requests at once. Every key is checked
        before the first request, so a bad one deletes nothing."""
        full = [self.calls.full(key) for key in keys]
        batches = [full[first : first + PAGE] for first in range(0, len(full), PAGE)]
        await each(batches, DELETE_CONCURRENCY, self.delete_batch)

    async def delete_batch(self, full: Sequence[str], what: str = "") -> None:
        """One DeleteObjects of up to 1,000 full keys (absent ones are fine);
        StorageUnavailable when S3 reports any it could not delete. `what` ends the message."""
        if not full:
            return
        async with self.calls.call("DeleteObjects"):
            answer = await self.calls.s3.delete_objects(
                Bucket=self.calls.bucket,
                Delete={"Objects": [{"Key": key} for key in full], "Quiet": True},
            )
        if errors := answer.get("Errors"):
            first = errors[0]
            raise StorageUnavailable(
                f"S3 DeleteObjects on bucket {self.calls.bucket!r} at {self.where} could not "
                f"delete {len(errors)} of {len(full)} object(s){what}: {first.get('Code')} "
                f"({first.get('Message', 'no message')})"
            )

    async def delete_blobs(self, keys: Sequence[str]) -> int:
        """HeadObject every key (a few dozen at once) for its size and, for an alias, its data
        key; then DeleteObjects of the blob keys, and only then of the data keys. A crash in
        between leaves a data object no alias names, which `sweep` removes; the other order
        could leave an alias that names nothing, which reads would answer with 404 for a blob
        the registry still lists. 1,000 keys at a time. Returns the bytes freed: an alias
        counts the size of its data object."""
        for key in keys:
            self.calls.full(key)  # every key checked before anything is deleted
        freed = 0
        for first in range(0, len(keys), PAGE):
            chunk = keys[first : first + PAGE]
            heads = await each(chunk, HEAD_CONCURRENCY, self._blob)
            found = [head for head in heads if head is not None]
            await self.delete_many([key for key, _, _ in found])
            await self.delete_many(list(dict.fromkeys(data for _, _, data in found if data)))
            freed += sum(size for _, size, _ in found)
        return freed

    async def _blob(self, key: str) -> tuple[str, int, str | None] | None:
        """(key, size, data key or None) of a blob; None when it is absent. A broken alias
        (see `read_alias`) is deleted without following what it names, and counts 0 bytes."""
        try:
            async with self.calls.call("HeadObject", key):
                head = await self.calls.s3.head_object(
                    Bucket=self.calls.bucket, Key=self.calls.full(key)
                )
        except ObjectNotFound:
            return None
        try:
            alias = read_alias(head.get("Metadata") or {})
        except ValueError:
            return key, 0, None
        if alias is None:
            return key, int(head["ContentLength"]), None
        return key, alias[1], alias[0]

    async def sweep(self, live: Collection[str], before: float, *, dry_run: bool) -> Leftovers:
        """See `StorageDriver.sweep_leftovers`; the steps, in this order:

        1. the data keys that aliases name: every empty object under `blobs/` is asked for
           its metadata (HeadObject, a few dozen at once);
        2. every object under `_blobdata/` last written before `before` that no alias names
           and that is not the data key of a live upload goes (a page at a time);
        3. every multipart upload under `_blobdata/` and `_uploads/` initiated before
           `before` that is not on a live upload's data key, its key, or in its folder, is
           aborted. Its bytes are the sizes of its parts (ListParts: one request for up to
           1,000 parts, and stray uploads are few).

        Why the caller's snapshot of live uploads must be taken before this call: an upload
        live at the snapshot is kept by name. One that finished before the snapshot wrote its
        blob's alias before its session ended, so the alias scan, which starts later, sees
        it. One that started after the snapshot made its data object and multipart upload
        after it too, so with `before` no later than the snapshot, they are not old enough.
        A snapshot taken after the scan could miss an upload that committed in between:
        neither live nor seen, its blob's data would go.
        """
        kept = await self._named() | {data_key(key) for key in live}
        objects = size = 0
        async for page in self.walk(DATA_PREFIX.rstrip("/")):
            orphans = [item for item in page if item.modified < before and item.key not in kept]
            if orphans and not dry_run:
                await self.delete_many([item.key for item in orphans])
            objects += len(orphans)
            size += sum(item.size for item in orphans)
        uploads, parts = await self._sweep_uploads(live, before, dry_run=dry_run)
        return Leftovers(objects=objects, uploads=uploads, bytes=size + parts)

    async def _named(self) -> set[str]:
        """The data keys named by the aliases under `blobs/`. A broken alias keeps whatever it
        names too: the sweep removes only what nothing names."""
        named: set[str] = set()
        async for page in self.walk(BLOBS):
            empty = [item.key for item in page if item.size == 0]
            named.update(name for name in await each(empty, HEAD_CONCURRENCY, self._names) if name)
        return named

    async def _names(self, key: str) -> str | None:
        """What the object `key` is an alias of (its META_DATA, unchecked), if anything."""
        try:
            async with self.calls.call("HeadObject", key):
                head = await self.calls.s3.head_object(
                    Bucket=self.calls.bucket, Key=self.calls.full(key)
                )
        except ObjectNotFound:
            return None  # deleted since it was listed
        return (head.get("Metadata") or {}).get(META_DATA)

    async def _sweep_uploads(
        self, live: Collection[str], before: float, *, dry_run: bool
    ) -> tuple[int, int]:
        """Abort the stray multipart uploads (step 3 of `sweep`): (how many, their bytes)."""
        keep = _LiveUploads(self.calls.full, live)
        count = size = 0
        for area in (DATA_PREFIX, UPLOADS):
            start = self.prefix + area
            pages = self.calls.s3.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.calls.bucket, Prefix=start
            )
            async for page in paged(lambda: self.calls.call("ListMultipartUploads"), pages):
                stale = [
                    (str(upload["Key"]), str(upload["UploadId"]))
                    for upload in page.get("Uploads", ())
                    if _abandoned(upload, start, before, keep)
                ]
                size += sum(await each(stale, HEAD_CONCURRENCY, self._parts_size))
                if not dry_run:
                    await each(stale, HEAD_CONCURRENCY, self._abort)
                count += len(stale)
        return count, size

    async def _parts_size(self, upload: tuple[str, str]) -> int:
        """The bytes of a multipart upload's parts; 0 when it is gone meanwhile."""
        full, upload_id = upload
        pages = self.calls.s3.get_paginator("list_parts").paginate(
            Bucket=self.calls.bucket, Key=full, UploadId=upload_id
        )
        total = 0
        try:
            async for page in paged(lambda: self.calls.call("ListParts", full, GONE), pages):
                total += sum(int(part.get("Size", 0)) for part in page.get("Parts", ()))
        except ObjectNotFound:
            return 0
        return total

    async def _abort(self, upload: tuple[str, str]) -> None:
        await self.calls.abort(*upload)


class _LiveUploads:
    """The full keys of multipart uploads that belong to live uploads: on an upload's data
    key, on its own key (older states), or anywhere in its folder `_uploads/<id>/`."""

    def __init__(self, full: Callable[[str], str], live: Collection[str]) -> None:
        self.keys = {full(key) for key in live} | {full(data_key(key)) for key in live}
        folders = {key.rpartition("/")[0] for key in live if key.startswith(UPLOADS)}
        self.folders = tuple(full(folder) + "/" for folder in folders if folder + "/" != UPLOADS)

    def __contains__(self, full: str) -> bool:
        return full in self.keys or full.startswith(self.folders)


def _abandoned(
    upload: MultipartUploadTypeDef, start: str, before: float, live: _LiveUploads
) -> bool:
    """Whether a listed multipart upload is under `start`, initiated before `before`, and of
    no live upload."""
    key, initiated = upload.get("Key"), upload.get("Initiated")
    if key is None or initiated is None or "UploadId" not in upload:
        return False
    return key.startswith(start) and initiated.timestamp() < before and key not in live
