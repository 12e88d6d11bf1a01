"""The S3 driver's upload machinery: the state a caller keeps between appends, the S3 calls
an upload makes (`Multipart`), and one append's pipeline of parts, tail and hashing. Split from
`s3.py`, which keeps the plain object operations; the driver calls in here for `append`,
`complete` and `abort`, and hands this module a `Multipart` it built, never itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypedDict

from botocore.exceptions import ClientError

from registry.numbers import whole_number
from registry.storage.base import ObjectNotFound, StorageUnavailable
from registry.storage.keys import check_key
from registry.storage.observing import observe_after
from registry.storage.s3_errors import GONE, error_code

if TYPE_CHECKING:  # the stubs are a test dependency
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.literals import ServerSideEncryptionType, StorageClassType
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

MAX_PARTS = 10_000  # S3's limit on parts per multipart upload
MIN_PART = 5 * 1024**2  # S3's minimum for every part but the last
MAX_PART = 5 * 1024**3  # and its maximum for any part
HASH_BATCH = 2 * 1024**2  # `observe` runs in a worker thread on batches of about this much
MAX_HASH_BATCHES = 4  # batches received but not yet observed, before receiving waits
MAX_STATE = 4 * 1024**2  # a state longer than this is garbage (10,000 parts take ~600 KB)
STATE_VERSION = 2  # 1: the parts were uploaded to the upload's own key (still read)


TAIL_INFIX = ".tail."  # an upload's staged tail is `<key>.tail.<start>-<size>`
DATA_PREFIX = "_blobdata/"  # where an upload's parts go and its completed object stays
# An alias's user metadata (see "data keys and aliases" in `S3Driver`, and `read_alias`).
META_DATA = "registry-data"  # the data key it stands for
META_SIZE = "registry-size"  # and the size of that object
_STATE_FIELDS = frozenset({"v", "upload_id", "parts", "tail", "drop"})


class ObjectOptions(TypedDict, total=False):
    """What every call that makes an object adds to its arguments (from the configuration)."""

    ServerSideEncryption: ServerSideEncryptionType
    SSEKMSKeyId: str
    StorageClass: StorageClassType  # only for the blob's own objects, never for scratch ones


@dataclass(frozen=True, slots=True)
class UploadState:
    """What the caller keeps of an S3 upload between appends: versioned JSON, never pickle.

        {"v": 2, "upload_id": str | null, "parts": [[number, etag, size], ...],
         "tail": size, "drop": [start, size] | null}

    `parts` are the whole parts uploaded so far, numbered 1, 2, ... (each at least MIN_PART);
    there is a multipart upload exactly when there are parts. `tail` is the size of the staged
    tail, which starts where the parts end. `drop` is an older tail that the next append
    deletes. An upload with no bytes has the state None.

    An upload puts its parts under its data key (`data_key`), where the completed object
    stays and the blob points to it. States written before uploads had data keys (`"v": 1`,
    `in_data` False) go on putting them under the upload's own key and complete by copying,
    as they did then.
    """

    upload_id: str | None = None
    parts: tuple[tuple[int, str, int], ...] = ()
    tail: int = 0
    drop: tuple[int, int] | None = None
    in_data: bool = True

    @property
    def tail_start(self) -> int:
        return sum(size for _, _, size in self.parts)

    @property
    def size(self) -> int:
        return self.tail_start + self.tail

    def completed(self) -> list[CompletedPartTypeDef]:
        """The parts as CompleteMultipartUpload names them."""
        return [{"PartNumber": number, "ETag": etag} for number, etag, _ in self.parts]

    def tail_key(self, full: str) -> str:
        return _tail_key(full, self.tail_start, self.tail)

    def encode(self) -> bytes | None:
        if self.upload_id is None and not self.tail:
            return None
        doc = {
            "v": STATE_VERSION if self.in_data else 1,
            "upload_id": self.upload_id,
            "parts": [list(part) for part in self.parts],
            "tail": self.tail,
            "drop": list(self.drop) if self.drop is not None else None,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, state: bytes | None) -> UploadState:
        """Parse and check a state; ValueError for anything `encode` would not have made."""
        if state is None:
            return cls()
        doc = _state_document(state)
        upload_id = doc["upload_id"]
        if upload_id is not None and not _is_name(upload_id):
            raise _bad_state("bad upload id")
        parts = _state_parts(doc["parts"])
        if (upload_id is None) != (not parts):
            raise _bad_state("a multipart upload id goes with parts, and only with them")
        tail = doc["tail"]
        if not _is_int(tail) or not 0 <= tail <= MAX_PART:
            raise _bad_state("bad tail size")
        drop = _state_drop(doc["drop"], sum(size for _, _, size in parts), tail)
        return cls(upload_id, parts, tail, drop, in_data=doc["v"] == STATE_VERSION)


def _state_document(state: object) -> dict[str, Any]:
    """The JSON object of a state, with the fields and a version `encode` writes."""
    if not isinstance(state, bytes) or len(state) > MAX_STATE:
        raise _bad_state("not bytes of a plausible length")
    try:
        doc = json.loads(state)
    except (ValueError, RecursionError):  # also UnicodeDecodeError
        raise _bad_state("not JSON") from None
    if not isinstance(doc, dict) or set(doc) != _STATE_FIELDS:
        raise _bad_state("not an object with the fields of versions 1 and 2")
    if not _is_int(doc["v"]) or doc["v"] not in (1, STATE_VERSION):
        raise _bad_state(f"version {doc['v']!r} is not 1 or {STATE_VERSION}")
    return doc


def _state_parts(raw: object) -> tuple[tuple[int, str, int], ...]:
    """A state's parts: numbered 1, 2, ..., each with an ETag and a size S3 takes."""
    if not isinstance(raw, list) or len(raw) >= MAX_PARTS:
        raise _bad_state("parts are not a list of fewer than 10,000")
    parts: list[tuple[int, str, int]] = []
    for index, part in enumerate(raw, start=1):
        if not (isinstance(part, list) and len(part) == 3):
            raise _bad_state("a part is not [number, etag, size]")
        number, etag, size = part
        if not _is_int(number) or number != index:
            raise _bad_state("parts are not numbered 1, 2, 3, ...")
        if not _is_name(etag):
            raise _bad_state(f"part {index} has a bad ETag")
        if not _is_int(size) or not MIN_PART <= size <= MAX_PART:
            raise _bad_state(f"part {index} has a size S3 would not take")
        parts.append((number, etag, size))
    return tuple(parts)


def _state_drop(raw: object, start: int, tail: int) -> tuple[int, int] | None:
    """A state's `drop`: None, or an older tail, which starts no later and ends earlier than
    the current one (at `start`, `tail` bytes)."""
    if raw is None:
        return None
    if not (isinstance(raw, list) and len(raw) == 2 and all(map(_is_int, raw))):
        raise _bad_state("drop is not [start, size]")
    drop = (int(raw[0]), int(raw[1]))
    if not (0 <= drop[0] <= start and drop[1] > 0 and sum(drop) < start + tail):
        raise _bad_state("drop is not an older tail")
    return drop


@dataclass(frozen=True, slots=True)
class Multipart:
    """The S3 calls of an upload, bound to one client and bucket: what `Append` and the
    driver's `complete` and `abort` use. The driver builds one with its client, its key
    mapping and deadlines and its object options, so the upload machinery needs nothing else
    of it.

    `key` arguments are the caller's keys (checked and prefixed by `full`); `name` and
    `full` arguments are full object keys already.
    """

    s3: S3Client
    bucket: str
    # `S3Driver._call`: one S3 call under its deadline, its errors translated.
    call: Callable[..., AbstractAsyncContextManager[None]]
    full: Callable[[str], str]
    put_options: ObjectOptions  # the blob's own objects: encryption and storage class
    scratch_options: ObjectOptions  # parts and tails: encryption, default storage class
    first_part: int  # the size of an upload's first parts (see `part_size`)
    part_step: int  # parts in a row of the same size

    def part_size(self, number: int) -> int:
        """The size of whole part `number`: parts grow, so 10,000 of them hold ~430 GiB."""
        return self.first_part * (1 + (number - 1) // self.part_step)

    async def create(self, key: str, *, final: bool = False) -> str:
        """A new multipart upload on `key`; `final` when it becomes the blob itself."""
        options = self.put_options if final else self.scratch_options
        async with self.call("CreateMultipartUpload"):
            created = await self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.full(key), **options
            )
        return str(created["UploadId"])

    async def upload_part(
        self, key: str, upload_id: str, number: int, data: bytes
    ) -> tuple[int, str, int]:
        """Part `number` of the upload: (number, ETag, size), as `UploadState.parts` keeps it."""
        # The client's bytes, sent on: given time for their size (see `S3Driver._deadline`).
        async with self.call("UploadPart", key, GONE, moving=len(data)):
            answer = await self.s3.upload_part(
                Bucket=self.bucket,
                Key=self.full(key),
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
            )
        return number, str(answer["ETag"]), len(data)

    async def abort(self, full: str, upload_id: str) -> None:
        """Abort one multipart upload; one that is gone already is no error."""
        try:
            async with self.call("AbortMultipartUpload"):
                await self.s3.abort_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id
                )
        except ClientError as exc:
            if error_code(exc) not in ("NoSuchUpload", "404"):
                raise

    async def read_tail(self, key: str, name: str, size: int) -> bytes:
        """The staged tail `name`; ObjectNotFound(key) when it is not all there."""
        async with self.call("GetObject", key, GONE, moving=size):
            response = await self.s3.get_object(Bucket=self.bucket, Key=name)
            async with response["Body"] as body:
                data = bytes(await body.read())
        if len(data) != size:
            raise ObjectNotFound(key)
        return data

    async def write_tail(self, name: str, data: bytes) -> None:
        async with self.call("PutObject", moving=len(data)):
            await self.s3.put_object(
                Bucket=self.bucket, Key=name, Body=data, **self.scratch_options
            )

    async def delete_quietly(self, name: str) -> None:
        """Best effort: whatever stays is removed with the upload anyway."""
        with contextlib.suppress(StorageUnavailable, ClientError):
            async with self.call("DeleteObject"):
                await self.s3.delete_object(Bucket=self.bucket, Key=name)


class Append:
    """One `S3Driver.append`: cuts the old tail and the new bytes into parts, uploads each
    while the next is received, feeds `observe` from worker threads (in order: each batch
    waits for the one before), and stages the new tail at the end."""

    def __init__(
        self,
        multipart: Multipart,
        key: str,
        old: UploadState,
        observe: Callable[[bytes], None] | None,
        *,
        final: bool = False,
    ) -> None:
        self._calls = multipart
        self._final = final  # writing the object itself (`write_verified`), not a scratch upload
        self._key = key
        self._full = multipart.full(key)
        # Where the multipart upload lives: the object itself for `write_verified`, else the
        # upload's data key (or the upload's key, for a state written before uploads had data
        # keys). Tails stay at `key`.
        self._parts_key = key if final or not old.in_data else data_key(key)
        self._parts_full = multipart.full(self._parts_key)
        self._old = old
        self._observe = observe
        self._parts = list(old.parts)
        self._upload_id = old.upload_id
        self._created = False  # the multipart upload is this append's: abort it on failure
        self._next = len(old.parts) + 1  # the number of the next part to cut
        self._start = old.tail_start  # where the buffered bytes (old tail, then new) begin
        self._head: asyncio.Future[bytes] | None = None  # the old tail, being read back
        self._head_size = old.tail  # its size, until it is moved into `_pending`
        self._pending: deque[bytes | memoryview] = deque()
        self._pending_size = 0
        self._new = 0  # new bytes received
        self._inflight: asyncio.Future[tuple[int, str, int]] | None = None
        self._batch: list[bytes] = []
        self._batch_size = 0
        self._hashing: deque[asyncio.Future[None]] = deque()
        self._last_hash: asyncio.Future[None] | None = None
        self._dropping: asyncio.Future[None] | None = None
        if old.drop is not None:  # no state that can still be used names it any more
            name = _tail_key(self._full, *old.drop)
            self._dropping = asyncio.ensure_future(multipart.delete_quietly(name))

    async def add(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._head_size and self._head is None:  # the first new byte: read the tail back
            self._head = asyncio.ensure_future(
                self._calls.read_tail(self._key, self._old.tail_key(self._full), self._head_size)
            )
        self._new += len(chunk)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._observe is not None:
            self._batch.append(chunk)
            self._batch_size += len(chunk)
            if self._batch_size >= HASH_BATCH:
                await self._hash_batch()
        if self._inflight is not None and self._inflight.done():
            await self._collect()  # a failed part upload stops the receiving early
        while self._head_size + self._pending_size >= self._calls.part_size(self._next):
            await self._cut()

    async def finish(self) -> UploadState:
        if not self._new:
            # Nothing changed; the tail `drop` named is being deleted.
            if self._dropping is not None:
                await self._dropping
            return replace(self._old, drop=None)
        await self._hash_batch()
        if self._inflight is not None:
            await self._collect()
        tail = self._head_size + self._pending_size
        if tail:
            if self._head is not None:
                self._pending.appendleft(await self._head)
                self._head = None
            name = _tail_key(self._full, self._start, tail)
            await self._calls.write_tail(name, b"".join(self._pending))
        while self._hashing:
            await self._hashing.popleft()
        if self._dropping is not None:
            await self._dropping
        # The old tail is what the old state names: it stays until the next append, in case
        # the caller cannot save the new state and retries from the old one.
        drop = (self._old.tail_start, self._old.tail) if self._old.tail else None
        return UploadState(
            self._upload_id, tuple(self._parts), tail, drop, in_data=self._old.in_data
        )

    async def finish_whole(self) -> tuple[UploadState, bytes | None]:
        """For `write_verified`, which starts from an empty state and stages no tail.

        The bytes after the last whole part become the final part (S3 takes a last part of
        any size), and the state names every part; or, when the body was shorter than one
        part, no multipart upload was created and the bytes come back for one PutObject.
        Every byte has been observed when this returns.
        """
        await self._hash_batch()
        if self._inflight is not None:
            await self._collect()
        rest = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if self._upload_id is not None and rest:
            self._parts.append(
                await self._calls.upload_part(self._parts_key, self._upload_id, self._next, rest)
            )
        while self._hashing:
            await self._hashing.popleft()
        if self._upload_id is None:
            return UploadState(), rest
        return UploadState(self._upload_id, tuple(self._parts)), None

    async def abandon(self) -> None:
        """After a failure: cancel what is in flight, let observing threads finish, abort a
        multipart upload this append created. The caller's old state stays valid."""
        for task in (self._head, self._inflight):
            if task is not None:
                task.cancel()
        tasks: list[asyncio.Future[Any]] = [
            task
            for task in (self._head, self._inflight, self._dropping, self._last_hash)
            if task is not None
        ]
        tasks.extend(self._hashing)
        if tasks:
            await asyncio.wait(tasks)
            for task in tasks:
                if not task.cancelled():
                    task.exception()  # retrieved: the error that matters is propagating
        if self._created and self._upload_id is not None:
            with contextlib.suppress(Exception):
                await self._calls.abort(self._parts_full, self._upload_id)

    async def _cut(self) -> None:
        """Take the next whole part off the buffer and start uploading it."""
        number = self._next
        if number >= MAX_PARTS:  # the last number is kept for the tail
            raise ValueError(f"upload {self._key!r} is too large for an S3 multipart upload")
        size = self._calls.part_size(number)
        if self._head is not None:
            self._pending.appendleft(await self._head)
            self._pending_size += self._head_size
            self._head, self._head_size = None, 0
        take: list[bytes | memoryview] = []
        need = size
        while need:
            piece = self._pending[0]
            if len(piece) <= need:
                take.append(self._pending.popleft())
                need -= len(piece)
            else:
                view = memoryview(piece)
                take.append(view[:need])
                self._pending[0] = view[need:]
                need = 0
        self._pending_size -= size
        data = b"".join(take)
        del take
        if self._inflight is not None:
            await self._collect()  # one part in flight at a time: memory stays bounded
        if self._upload_id is None:
            self._upload_id = await self._calls.create(
                self._parts_key, final=self._final or self._old.in_data
            )
            self._created = True
        self._inflight = asyncio.ensure_future(
            self._calls.upload_part(self._parts_key, self._upload_id, number, data)
        )
        self._next += 1
        self._start += size

    async def _collect(self) -> None:
        inflight, self._inflight = self._inflight, None
        assert inflight is not None
        self._parts.append(await inflight)

    async def _hash_batch(self) -> None:
        batch, self._batch, self._batch_size = self._batch, [], 0
        if not batch:
            return
        while len(self._hashing) >= MAX_HASH_BATCHES:
            await self._hashing.popleft()
        assert self._observe is not None  # batches are only collected for an observer
        self._last_hash = asyncio.ensure_future(
            observe_after(self._last_hash, self._observe, batch)
        )
        self._hashing.append(self._last_hash)


def data_key(key: str) -> str:
    """The data key of the upload at `key`: outside the upload's prefix, which the caller
    deletes when the upload ends, and derived from `key` so that every process finds it (to
    abort what a failed append left there, say)."""
    return DATA_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:40]


def read_alias(metadata: Mapping[str, str]) -> tuple[str, int] | None:
    """The data key and size an alias's user metadata names; None for plain data (no
    META_DATA). ValueError for metadata this registry would not have written (a target outside
    `_blobdata/`, an unsafe key, no valid size): such an object is never followed."""
    target = metadata.get(META_DATA)
    if target is None:
        return None
    if not (isinstance(target, str) and target.startswith(DATA_PREFIX)):
        raise ValueError(f"{target!r} is not a data key")
    check_key(target)
    size = whole_number(str(metadata.get(META_SIZE, "")))
    if size is None:
        raise ValueError("no valid size")
    return target, size


def _tail_key(full: str, start: int, size: int) -> str:
    return f"{full}{TAIL_INFIX}{start}-{size}"


def _is_int(value: object) -> bool:
    return type(value) is int  # not bool


def _is_name(value: object) -> bool:
    """An upload id or ETag as S3 gives them: a string, not empty, of a sane length."""
    return isinstance(value, str) and 0 < len(value) <= 1024


def _bad_state(why: str) -> ValueError:
    return ValueError(f"invalid S3 upload state: {why}")
