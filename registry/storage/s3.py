"""S3 driver: the same keys as the filesystem driver, stored as objects in one bucket.

The aiobotocore clients (one pooled per driver, one more that presigns for a public endpoint)
are made, shared and released by `S3Clients` (`s3_client`); this module is what objects,
listings and uploads mean in the bucket. Small objects
are read and written whole; PutObject is atomic, so a reader sees the old object or the new one.
Blobs stream with ranged GetObject in bounded chunks. `move` is a server-side copy (multipart
UploadPartCopy above CopyObject's 5 GiB limit) followed by deleting the source.

Failures of the service itself (unreachable, timed out, 5xx after the client's retries,
credentials or bucket that no longer work) surface as `StorageUnavailable`, which the registry
answers with 503 (see `s3_errors`). Messages name the endpoint, bucket and operation, never a
credential. Every call has a deadline (`request_timeout`, more for calls that move bytes: see
`S3Driver._deadline`), so a store that is slow rather than down answers 503 within seconds too,
instead of after botocore's read timeout on every attempt.

Chunked uploads are S3 multipart uploads whose state the caller keeps between requests (so
consecutive chunks may reach different workers): see "chunked uploads" in `S3Driver` and
`UploadState` for the layout. A blob they made is an alias of the object at the upload's data
key: see "data keys and aliases".

The garbage collector's calls (walking, deleting in batches, sweeping what failed uploads
left) are in `s3_maintenance`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Sequence
from typing import TYPE_CHECKING, TypedDict, TypeVar, cast

import anyio
from aiobotocore.response import StreamingBody
from botocore.exceptions import (
    ClientError,
)
from cachetools import LRUCache

from registry.storage.base import (
    Appended,
    Incoming,
    Leftovers,
    Listed,
    ObjectNotFound,
    StorageUnavailable,
)
from registry.storage.keys import check_key
from registry.storage.s3_client import S3Clients
from registry.storage.s3_errors import GONE, NOT_FOUND, S3Errors, error_code
from registry.storage.s3_maintenance import Maintenance, paged
from registry.storage.s3_uploads import (
    MAX_PARTS,
    META_DATA,
    META_SIZE,
    MIN_PART,
    TAIL_INFIX,
    Append,
    Multipart,
    ObjectOptions,
    UploadState,
    data_key,
    read_alias,
)

if TYPE_CHECKING:  # the stubs are a test dependency
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.literals import ServerSideEncryptionType, StorageClassType
    from types_aiobotocore_s3.type_defs import (
        CompletedPartTypeDef,
        CopySourceTypeDef,
        GetObjectOutputTypeDef,
        HeadObjectOutputTypeDef,
    )

    from registry.storage.s3_options import S3Settings

STREAM_CHUNK = 1024 * 1024  # the largest chunk `stream` yields
READ_AHEAD = 4  # chunks a pull reads ahead of the client
COPY_LIMIT = 5 * 1024**3  # CopyObject copies at most 5 GiB; larger objects go part by part
COPY_PART = 512 * 1024**2  # part size of a multipart copy (S3: 5 MiB .. 5 GiB)
COPY_CONCURRENCY = 8  # UploadPartCopy requests in flight per move
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
ALIASES = 65_536  # keys whose alias (or plainness) a driver remembers
# Deadlines of calls that move bytes or assemble parts (see `S3Driver._deadline`).
TRANSFER_FLOOR = 1024 * 1024  # bytes a second (8 Mbit/s) a transfer is given time for
COMPLETE_PER_PART = 0.05  # seconds a CompleteMultipartUpload is given per part

# Chunked uploads (see `S3Driver.append`).
PART_SIZE = 8 * 1024**2  # an upload's first parts; they grow every PART_SIZE_STEP parts
PART_SIZE_STEP = 1000  # part n is PART_SIZE * (1 + (n - 1) // PART_SIZE_STEP): ~430 GiB in all


class S3Driver:
    name = "s3"

    def __init__(self, settings: S3Settings, *, session_token: str | None = None) -> None:
        """The driver for the `storage.s3` section (whose ranges its model checks); nothing
        reaches S3 before the first call. `session_token` goes with temporary static keys."""
        if not settings.bucket:
            raise ValueError("an S3 bucket name is required")
        if (settings.access_key is None) != (settings.secret_key is None):
            raise ValueError("give both an S3 access key and a secret key, or neither")
        if settings.sse_kms_key_id is not None and settings.sse != "aws:kms":
            raise ValueError('an SSE KMS key id needs sse="aws:kms"')
        self.bucket = settings.bucket
        self.prefix = _normalize_prefix(settings.prefix)
        self.endpoint_url = settings.endpoint_url
        self._errors = S3Errors(
            settings.bucket, settings.endpoint_url, (settings.secret_key, session_token)
        )
        self.request_timeout = settings.request_timeout
        self.clients = S3Clients(settings, self._call, session_token=session_token)
        self._put_options: ObjectOptions = {}
        if settings.sse is not None:  # passed on as configured: S3 refuses a value it does not know
            self._put_options["ServerSideEncryption"] = cast(
                "ServerSideEncryptionType", settings.sse
            )
        if settings.sse_kms_key_id is not None:
            self._put_options["SSEKMSKeyId"] = settings.sse_kms_key_id
        # Scratch objects (parts, tails) are encrypted alike but keep the default storage
        # class: infrequent-access classes bill short-lived objects for weeks.
        self._scratch_options = self._put_options.copy()
        if settings.storage_class is not None:
            self._put_options["StorageClass"] = cast("StorageClassType", settings.storage_class)
        # Tunable by tests, to exercise the multipart copy without 5 GiB objects.
        self.copy_limit = COPY_LIMIT
        self.copy_part_size = COPY_PART
        # Tunable by tests, to exercise multipart uploads with little data (at least MIN_PART).
        self.part_size = PART_SIZE
        self.part_size_step = PART_SIZE_STEP
        # Keys this process has seen, and the data key each stands for (itself for plain
        # data); least recently used out first. Used from the event loop only.
        self._aliases: LRUCache[str, str] = LRUCache(ALIASES)

    def __repr__(self) -> str:
        return f"S3Driver(bucket={self.bucket!r}, prefix={self.prefix!r}, at {self._errors.where})"

    # --- the clients (see `S3Clients`) and readiness

    async def close(self) -> None:
        """Release the clients and their connections; the next call makes new ones."""
        await self.clients.close()

    async def check(self) -> None:
        """Raise StorageUnavailable unless the bucket answers with these credentials."""
        async with self._call("HeadBucket"):
            s3 = await self.clients.get()
            await s3.head_bucket(Bucket=self.bucket)

    async def url_for(self, key: str, expires: int) -> str | None:
        """A presigned GET URL for the object (for an alias, the object it stands for), valid
        `expires` seconds. Signing is local: at most a HeadObject, for a key this process has
        not seen yet, so a missing object is the caller's to rule out first."""
        target = self._aliases.get(key)
        if target is None:
            target = (await self._head(key))[1] or key
            self._aliases[key] = target  # plain data too: the next redirect asks nothing
        full = self._key(target)
        signer = await self.clients.signer()
        async with self._call("presign"):  # local, but credentials may need refreshing
            url = await signer.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": full}, ExpiresIn=expires
            )
        return str(url)

    # --- deadlines

    def _call(
        self,
        operation: str,
        key: str | None = None,
        missing: frozenset[str] = NOT_FOUND,
        *,
        moving: int = 0,
        parts: int = 0,
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """One S3 call (or one page of a listing, one read of a body): its errors translated
        (see `S3Errors`), under the deadline `_deadline(moving, parts)`."""
        return self._errors.bounded(operation, self._deadline(moving, parts), key, missing)

    def _deadline(self, moving: int = 0, parts: int = 0) -> float:
        """Seconds a call may take: `request_timeout`, plus time for the work it carries.

        The deadline is there to notice a store that stalls, not to time transfers. A call
        that carries bytes over the registry's link to S3 (an upload's part, a staged tail,
        a blob pushed whole) or has S3 copy them (`moving`) takes longer the larger it is,
        so it also gets the time those bytes take at TRANSFER_FLOOR, 1 MiB/s: by default
        an 8 MiB part may take 18 s. A link slower than that could not keep up with a push
        anyway. S3 answers a CompleteMultipartUpload only once it has put the `parts`
        together, which AWS says can take minutes for the largest uploads: COMPLETE_PER_PART
        a part, so tens of parts add a second or two and 10,000 add some eight minutes.
        """
        return self.request_timeout + moving / TRANSFER_FLOOR + parts * COMPLETE_PER_PART

    # --- data keys and aliases
    #
    # S3 cannot rename, and a chunked upload's digest is known only at its end, after its
    # parts went to S3. So its multipart upload is made on a data key of its own, where the
    # completed object stays; the blob's key then holds an alias: an empty object whose user
    # metadata names the data key and its size. Committing a blob of any size is then a
    # CompleteMultipartUpload and one small PutObject, never a copy of the bytes. Reads follow
    # an alias (`size` from its metadata, `stream`/`read`/`url_for` from the data key), and
    # remember it: an alias never changes while its blob exists, and any data key a blob's
    # alias named holds that blob's bytes until garbage collection deletes the blob. The
    # collector advances its generation in the coordinator after deleting, and every process
    # forgets what it remembers (`forget_cached`) when it sees that, before the digest can be
    # written again (see `registry.model.protection`). A remembered alias whose data vanished
    # meanwhile is read again. Monolithic uploads and small chunked ones still write the
    # blob's key itself.

    async def _head(self, key: str) -> tuple[int, str | None]:
        """(size, the data key if `key` is an alias); ObjectNotFound when absent."""
        s3 = await self.clients.get()
        async with self._call("HeadObject", key):
            head = await s3.head_object(Bucket=self.bucket, Key=self._key(key))
        target = self._alias_of(key, head)
        if target is not None:
            return int(head["Metadata"][META_SIZE]), target
        return int(head["ContentLength"]), None

    def _alias_of(
        self, key: str, response: HeadObjectOutputTypeDef | GetObjectOutputTypeDef
    ) -> str | None:
        """The data key an object's metadata names (remembered), or None for plain data."""
        try:
            alias = read_alias(response.get("Metadata") or {})
        except ValueError as exc:  # not written by this registry: refuse to follow it
            raise StorageUnavailable(f"S3 object {key!r} is a broken alias: {exc}") from None
        if alias is None:
            if self._aliases.get(key, key) != key:
                del self._aliases[key]  # plain data now, whatever it stood for before
            return None
        self._aliases[key] = alias[0]
        return alias[0]

    async def _write_alias(self, s3: S3Client, target: str, data_key: str, size: int) -> None:
        """The blob `target` as an alias of `data_key`: PutObject, atomic like any other."""
        async with self._call("PutObject"):
            await s3.put_object(
                Bucket=self.bucket,
                Key=self._key(target),
                Body=b"",
                Metadata={META_DATA: data_key, META_SIZE: str(size)},
                **self._put_options,
            )
        self._aliases[target] = data_key

    # --- keys

    def _key(self, key: str) -> str:
        """The full object key of `key`; every method goes through here, so every key is
        checked (see `keys`)."""
        return self.prefix + check_key(key)

    # --- the StorageDriver protocol

    async def read(self, key: str) -> bytes:
        response, data = await self._read_whole(key, key)
        target = self._alias_of(key, response)
        return data if target is None else (await self._read_whole(key, target))[1]

    async def _read_whole(self, key: str, target: str) -> tuple[GetObjectOutputTypeDef, bytes]:
        """GetObject of `target` (`key` or the data key it stands for), body included."""
        s3 = await self.clients.get()
        async with self._call("GetObject", key):  # small objects: the body within the deadline
            response = await s3.get_object(Bucket=self.bucket, Key=self._key(target))
            async with response["Body"] as body:
                return response, bytes(await body.read())

    async def write(self, key: str, data: bytes) -> None:
        full = self._key(key)
        s3 = await self.clients.get()
        async with self._call("PutObject", moving=len(data)):
            await s3.put_object(Bucket=self.bucket, Key=full, Body=data, **self._put_options)

    async def size(self, key: str) -> int | None:
        """The object's size; an alias answers with the size of the object it stands for."""
        try:
            return (await self._head(key))[0]
        except ObjectNotFound:
            return None

    async def modified(self, key: str) -> float | None:
        """When the object itself (an alias, not what it stands for) was last written."""
        try:
            with self._errors("HeadObject", key):
                s3 = await self.clients.get()
                head = await s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except ObjectNotFound:
            return None
        return float(head["LastModified"].timestamp())

    async def delete(self, key: str) -> bool:
        # DeleteObject succeeds for absent keys, so whether there was one is asked first.
        if await self.size(key) is None:
            return False
        s3 = await self.clients.get()
        async with self._call("DeleteObject"):
            await s3.delete_object(Bucket=self.bucket, Key=self._key(key))
        return True

    async def delete_prefix(self, prefix: str) -> None:
        start = self._key(prefix) + "/"
        await self._delete_starting(await self.clients.get(), start, prefix)

    async def _delete_starting(self, s3: S3Client, start: str, what: str) -> None:
        """Delete every object whose full key starts with `start`."""
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start, PaginationConfig={"PageSize": DELETE_BATCH}
        )
        maintenance = self._maintenance(s3)
        async for page in self._pages("DeleteObjects", pages):
            keys = [item["Key"] for item in page.get("Contents", ())]
            for first in range(0, len(keys), DELETE_BATCH):
                batch = keys[first : first + DELETE_BATCH]
                await maintenance.delete_batch(batch, f" under {what!r}")

    def _pages(self, operation: str, pages: AsyncIterable[_Page]) -> AsyncIterator[_Page]:
        """The pages of a paginated listing, each fetched under a deadline of its own (a
        listing's length depends on the bucket, one page's does not)."""
        return paged(lambda: self._call(operation), pages)

    async def list(self, prefix: str) -> list[str]:
        start = self._key(prefix) + "/"
        names: list[str] = []
        s3 = await self.clients.get()
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start, Delimiter="/"
        )
        async for page in self._pages("ListObjectsV2", pages):
            for item in page.get("Contents", ()):
                names.append(item["Key"][len(start) :])
            for common in page.get("CommonPrefixes", ()):
                names.append(common["Prefix"][len(start) : -1])
        # "" would be a directory marker ("a/" itself) or a key with "//": not a child.
        return [name for name in names if name]

    async def stream(
        self, key: str, start: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Ranged GetObject (of the data key, for an alias); chunks of at most STREAM_CHUNK,
        read as the consumer asks."""
        self._key(key)
        if start < 0 or (length is not None and length < 0):
            raise ValueError(f"bad range start={start} length={length}")
        if length == 0:
            if await self.size(key) is None:
                raise ObjectNotFound(key)
            return
        ranged: _Range = {}
        if start > 0 or length is not None:
            end = "" if length is None else str(start + length - 1)
            ranged["Range"] = f"bytes={start}-{end}"
        response = await self._get_resolved(key, ranged)
        if response is None:
            return  # starts at or past the end (the object exists): no bytes
        body = response["Body"]
        try:
            if ranged and not str(response.get("ContentRange", "")).startswith(f"bytes {start}-"):
                raise StorageUnavailable(
                    f"S3 GetObject at {self._errors.where} ignored the Range header of {key!r}"
                )
            # Read ahead while the consumer sends: S3 keeps streaming into a few chunks of
            # buffer instead of waiting for the client's socket at every chunk.
            ahead: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(READ_AHEAD)
            reader = asyncio.ensure_future(self._read_body(body, key, ahead))
            try:
                while (chunk := await ahead.get()) is not None:
                    if isinstance(chunk, BaseException):
                        raise chunk
                    yield chunk
            finally:
                reader.cancel()
                await asyncio.wait([reader])
        finally:
            body.close()  # also when the consumer stops early: drop the connection

    async def _get_resolved(self, key: str, ranged: _Range) -> GetObjectOutputTypeDef | None:
        """GetObject of `key`, or of its data key when it is an alias; None for a range that
        starts past the end. One request for plain objects and for aliases seen before."""
        target = self._aliases.get(key)
        if target is not None and target != key:
            try:
                return await self._get(key, target, ranged)
            except ObjectNotFound:  # the alias changed since: read it again
                self._aliases.pop(key, None)
        response = await self._get(key, key, ranged)
        if response is None:  # an alias is empty, so any range past 0 lands here
            target = (await self._head(key))[1]
        else:
            target = self._alias_of(key, response)
            if target is not None:
                response["Body"].close()
        return response if target is None else await self._get(key, target, ranged)

    async def _get(self, key: str, target: str, ranged: _Range) -> GetObjectOutputTypeDef | None:
        s3 = await self.clients.get()
        async with self._call("GetObject", key):  # the headers; each read of the body has its own
            try:
                response = await s3.get_object(Bucket=self.bucket, Key=self._key(target), **ranged)
            except ClientError as exc:
                if error_code(exc) == "InvalidRange":
                    return None
                raise
        return response

    async def _read_body(
        self, body: StreamingBody, key: str, out: asyncio.Queue[bytes | BaseException | None]
    ) -> None:
        """Chunks of STREAM_CHUNK from the body into `out`, then None (or the error)."""
        try:
            pieces: list[bytes] = []
            have = 0
            while True:
                # A deadline per read, not per body: a blob takes as long as the client
                # reads, but a store that stops sending mid-body ends the stream.
                async with self._call("GetObject", key):
                    piece = await body.read(STREAM_CHUNK - have)
                if not piece:
                    break
                pieces.append(piece)
                have += len(piece)
                if have >= STREAM_CHUNK:
                    chunk, pieces, have = b"".join(pieces), [], 0
                    await out.put(chunk)
            if pieces:
                await out.put(b"".join(pieces))
            await out.put(None)
        except Exception as exc:  # handed to the consumer, which raises it
            await out.put(exc)

    # --- chunked uploads
    #
    # An upload at `key` (its scratch key) is an S3 multipart upload on `key` plus a staged
    # tail. Whole parts go to S3 as they fill; the bytes after the last whole part, the tail
    # (shorter than a part), are staged as the object `<key>.tail.<start>-<size>`, which holds
    # exactly the upload's bytes [start, start + size). The caller keeps the state (see
    # `UploadState`) between requests, so the next append may run in another process.
    #
    # Nothing an append writes can spoil the state it started from, so a failed append, or
    # one whose new state the caller could not save, is retried from the old state:
    # - parts are numbered by the state: a retry uploads the same numbers again, which
    #   replaces them, and CompleteMultipartUpload names exactly the state's parts;
    # - a tail's name says which bytes it holds, and every append that writes one has new
    #   bytes, so it never writes the name of the tail its own state refers to. The old
    #   tail stays until the next append (the new state names it in `drop`), and
    #   whatever failed appends left behind goes with `complete`, `abort`, or the upload's
    #   `delete_prefix`;
    # - a multipart upload created by an append that then failed is aborted on the way out,
    #   and `complete` and `abort` also abort any other one they find on `key`.

    def _multipart(self, s3: S3Client) -> Multipart:
        """The calls of an upload (see `s3_uploads`), with this driver's options."""
        return Multipart(
            s3,
            self.bucket,
            self._call,
            self._key,
            self._put_options,
            self._scratch_options,
            self.part_size,
            self.part_size_step,
        )

    async def append(
        self, key: str, offset: int, incoming: Incoming, state: bytes | None = None
    ) -> Appended:
        """Add the incoming chunks to the upload at `key` (see "chunked uploads" above).

        The old tail is read back once the first new byte arrives and goes in front of the
        new bytes. Each whole part uploads while the next one is received (at most one part
        in flight, so memory stays within about two parts), and `observe` sees every new byte
        once, in order, in a worker thread. The new tail is staged last. If `chunks` (or S3)
        fails, part uploads in flight are cancelled, a multipart upload this call created is
        aborted, and the error propagates: the old `state` still describes the upload.
        `offset` must be the size `state` describes (ValueError otherwise).
        """
        self._key(key)
        old = UploadState.decode(state)
        if offset != old.size:
            raise ValueError(f"upload {key!r} holds {old.size} bytes by its state, not {offset}")
        if self.part_size < MIN_PART or self.part_size_step < 1:
            raise ValueError(f"S3 upload parts must be at least {MIN_PART} bytes")
        s3 = await self.clients.get()
        run = Append(self._multipart(s3), key, old, incoming.observe)
        try:
            async for chunk in incoming.chunks:
                await run.add(chunk)
            new = await run.finish()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await run.abandon()
            raise
        return Appended(new.size, new.encode())

    async def write_verified(self, key: str, incoming: Incoming, verify: Callable[[], None]) -> int:
        """Straight to `key`: a body shorter than one part is one PutObject after `verify`;
        a longer one is a multipart upload on `key` itself, its parts sent while the next is
        received, and CompleteMultipartUpload (after `verify`) is when the object appears.

        So a monolithic push costs no copy, and bytes that fail `verify` are never visible:
        the multipart upload is aborted instead.
        """
        full = self._key(key)
        s3 = await self.clients.get()
        run = Append(self._multipart(s3), key, UploadState(), incoming.observe, final=True)
        try:
            async for chunk in incoming.chunks:
                await run.add(chunk)
            state, data = await run.finish_whole()
            verify()
            if data is not None:
                async with self._call("PutObject", moving=len(data)):
                    await s3.put_object(
                        Bucket=self.bucket, Key=full, Body=data, **self._put_options
                    )
                return len(data)
            parts = state.completed()
            assert state.upload_id is not None  # there are parts, so there is an upload
            async with self._call("CompleteMultipartUpload", parts=len(parts)):
                await s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=state.upload_id,
                    MultipartUpload={"Parts": parts},
                )
            return state.size
        except BaseException:
            with anyio.CancelScope(shield=True):
                await run.abandon()
            raise

    async def complete(self, key: str, state: bytes | None, target: str) -> None:
        """Make the upload's bytes the object `target`, server-side, without copying them.

        With parts: the tail becomes the last part (UploadPartCopy), CompleteMultipartUpload
        makes the object at the upload's data key, and `target` becomes its alias (see "Data
        keys"). A state written before uploads had data keys completes at `key` and `move`s to
        `target` instead.
        Without parts: the tail object (under one part, so small) is copied to `target`
        directly; with no bytes at all, `target` becomes an empty object (or, when `key` holds
        an object already because an earlier `complete` made it there and the caller then
        dropped the state, that one moves). `target` appears only in that last, atomic step.

        Repeating a `complete` that got part of the way (or all of it) with the same state is
        fine; ObjectNotFound when the upload's data is gone. Leftovers (tails, stray
        multipart uploads, `key` when it is not the target) are removed on a best-effort basis.
        """
        full, dst = self._key(key), self._key(target)
        st = UploadState.decode(state)
        parts_key = data_key(key) if st.in_data else key
        s3 = await self.clients.get()
        moved = False  # `move` deleted `key` already
        if st.parts:
            done = await self._complete_parts(s3, key, parts_key, st)
            if done and st.in_data:
                await self._write_alias(s3, target, parts_key, st.size)
            elif done and dst != full:
                await self.move(key, target)
                moved = True
        elif st.tail:
            try:
                async with self._call("CopyObject", key, GONE, moving=st.tail):
                    await s3.copy_object(
                        Bucket=self.bucket,
                        Key=dst,
                        CopySource={"Bucket": self.bucket, "Key": st.tail_key(full)},
                        **self._put_options,
                    )
                done = True
            except ObjectNotFound:
                done = False
        else:
            done = True
            if await self.size(key) is not None:
                if dst != full:
                    await self.move(key, target)
                    moved = True
            else:
                await self.write(target, b"")
        if not done:
            await self._recover(key, target, st)
        with contextlib.suppress(StorageUnavailable, ObjectNotFound, ClientError):
            await self._clean_up(s3, key, (parts_key,), remove_key=dst != full and not moved)

    async def abort(self, key: str, state: bytes | None) -> None:
        """Abort the multipart upload(s) of `key` and delete its tails and `key` itself.

        Found by listing (on the data key and on `key`, for both state versions), so this also
        cleans up after appends whose state was never saved, and a state that cannot be
        parsed is no reason to keep anything. A completed object at the data key is deleted
        only when `key` itself is its alias (the digest fallback made it so): once a blob's
        alias may name it, only garbage collection can tell whether it is still needed.
        Idempotent.
        """
        self._key(key)  # checked before anything is done
        try:
            upload_id = UploadState.decode(state).upload_id
        except ValueError:
            upload_id = None
        s3 = await self.clients.get()
        multipart = self._multipart(s3)
        parts_keys = (data_key(key), key)
        if upload_id is not None:  # where it is not, aborting it is a NoSuchUpload, ignored
            for parts_key in parts_keys:
                await multipart.abort(self._key(parts_key), upload_id)
        with contextlib.suppress(ObjectNotFound):
            target = (await self._head(key))[1]
            if target == data_key(key):
                await multipart.delete_quietly(self._key(target))
        await self._clean_up(s3, key, parts_keys, remove_key=True)

    async def _complete_parts(
        self, s3: S3Client, key: str, parts_key: str, st: UploadState
    ) -> bool:
        """The tail as the last part, then CompleteMultipartUpload onto `parts_key`; False
        when the multipart upload or the tail is gone."""
        full, parts_full = self._key(key), self._key(parts_key)
        parts = st.completed()
        assert st.upload_id is not None  # `decode` checked: parts go with an upload id
        try:
            if st.tail:
                number = len(parts) + 1
                async with self._call("UploadPartCopy", key, GONE, moving=st.tail):
                    answer = await s3.upload_part_copy(
                        Bucket=self.bucket,
                        Key=parts_full,
                        UploadId=st.upload_id,
                        PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": st.tail_key(full)},
                    )
                parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
            async with self._call("CompleteMultipartUpload", key, GONE, parts=len(parts)):
                await s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=parts_full,
                    UploadId=st.upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except ObjectNotFound:
            return False
        return True

    async def _recover(self, key: str, target: str, st: UploadState) -> None:
        """The upload's multipart upload or tail is gone: an earlier `complete` got further
        (at the data key or `key`, or all the way to `target`), or the upload is lost."""
        size = st.size
        if st.parts and st.in_data:
            if await self.size(target) == size:
                return
            data = data_key(key)
            if await self.size(data) == size:
                await self._write_alias(await self.clients.get(), target, data, size)
                return
            raise ObjectNotFound(key)
        if await self.size(key) == size:
            if target != key:
                await self.move(key, target)
            return
        if target != key and await self.size(target) == size:
            return
        raise ObjectNotFound(key)

    async def _clean_up(
        self, s3: S3Client, key: str, parts_keys: tuple[str, ...], *, remove_key: bool
    ) -> None:
        """Delete the upload's tails, abort stray multipart uploads on `parts_keys`, and
        delete `key`."""
        full = self._key(key)
        await self._delete_starting(s3, full + TAIL_INFIX, key + TAIL_INFIX)
        multipart = self._multipart(s3)
        for parts_key in parts_keys:
            parts_full = self._key(parts_key)
            for stray in await self._upload_ids(s3, parts_full):
                await multipart.abort(parts_full, stray)
        if remove_key:
            async with self._call("DeleteObject"):
                await s3.delete_object(Bucket=self.bucket, Key=full)

    async def _upload_ids(self, s3: S3Client, full: str) -> set[str]:
        """The multipart uploads in progress on exactly `full`."""
        found: set[str] = set()
        pages = s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=full)
        async for page in self._pages("ListMultipartUploads", pages):
            for upload in page.get("Uploads", ()):
                if upload.get("Key") == full:
                    found.add(str(upload["UploadId"]))
        return found

    async def move(self, source: str, target: str) -> None:
        src, dst = self._key(source), self._key(target)
        s3 = await self.clients.get()
        async with self._call("HeadObject", source):
            head = await s3.head_object(Bucket=self.bucket, Key=src)
        if src == dst:
            return
        size, etag = int(head["ContentLength"]), str(head["ETag"])
        copy_source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": src}
        if size <= self.copy_limit:
            async with self._call("CopyObject", source, moving=size):
                await s3.copy_object(
                    Bucket=self.bucket, Key=dst, CopySource=copy_source, **self._put_options
                )
        else:
            with self._errors("CopyObject", source):  # each call has its deadline in there
                await self._copy_parts(s3, copy_source, dst, size, etag)
        async with self._call("DeleteObject"):
            await s3.delete_object(Bucket=self.bucket, Key=src)

    async def _copy_parts(
        self, s3: S3Client, copy_source: CopySourceTypeDef, dst: str, size: int, etag: str
    ) -> None:
        """Multipart UploadPartCopy; the target appears whole at CompleteMultipartUpload."""
        part_size = max(self.copy_part_size, math.ceil(size / MAX_PARTS))
        async with self._call("CreateMultipartUpload"):
            created = await s3.create_multipart_upload(
                Bucket=self.bucket, Key=dst, **self._put_options
            )
        upload_id = str(created["UploadId"])
        slots = asyncio.Semaphore(COPY_CONCURRENCY)

        async def copy_part(number: int, first: int) -> CompletedPartTypeDef:
            last = min(first + part_size, size) - 1
            async with slots, self._call("UploadPartCopy", moving=last + 1 - first):
                answer = await s3.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dst,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=copy_source,
                    CopySourceRange=f"bytes={first}-{last}",
                    CopySourceIfMatch=etag,  # every part from the same version of the source
                )
            return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

        tasks = [
            asyncio.ensure_future(copy_part(number, first))
            for number, first in enumerate(range(0, size, part_size), start=1)
        ]
        try:
            parts = await asyncio.gather(*tasks)
            async with self._call("CompleteMultipartUpload", parts=len(parts)):
                await s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=dst,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                async with self._call("AbortMultipartUpload"):
                    await s3.abort_multipart_upload(Bucket=self.bucket, Key=dst, UploadId=upload_id)
            raise

    # --- maintenance (garbage collection; see `s3_maintenance`)

    def _maintenance(self, s3: S3Client) -> Maintenance:
        return Maintenance(self._multipart(s3), self.prefix, self._errors.where)

    async def walk(self, prefix: str) -> AsyncIterator[builtins.list[Listed]]:
        """ListObjectsV2 pages of 1,000, each under its own deadline; aliases as themselves."""
        maintenance = self._maintenance(await self.clients.get())
        async with contextlib.aclosing(maintenance.walk(prefix)) as pages:
            async for page in pages:
                yield page

    async def delete_many(self, keys: Sequence[str]) -> None:
        await self._maintenance(await self.clients.get()).delete_many(keys)

    async def delete_blobs(self, keys: Sequence[str]) -> int:
        """Aliases first, then their data objects (see `Maintenance.delete_blobs`); the keys
        are forgotten as aliases, also when the deletion fails part of the way."""
        try:
            return await self._maintenance(await self.clients.get()).delete_blobs(keys)
        finally:
            for key in keys:
                self._aliases.pop(key, None)

    async def sweep_leftovers(
        self, live_uploads: Collection[str], before: float, *, dry_run: bool = False
    ) -> Leftovers:
        """Data objects no alias names and stray multipart uploads (see `Maintenance.sweep`,
        which says why `live_uploads` must be known before this call)."""
        maintenance = self._maintenance(await self.clients.get())
        return await maintenance.sweep(live_uploads, before, dry_run=dry_run)

    def forget_cached(self) -> None:
        """Forget every alias this process remembers: the collector deleted some blobs."""
        self._aliases.clear()


_Page = TypeVar("_Page")  # one page of a listing


class _Range(TypedDict, total=False):
    """GetObject's `Range` argument, when a stream asks for part of an object."""

    Range: str


def _normalize_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if not prefix:
        return ""
    try:
        check_key(prefix)
    except ValueError:
        raise ValueError(f"unsafe S3 key prefix {prefix!r}") from None
    return prefix + "/"
