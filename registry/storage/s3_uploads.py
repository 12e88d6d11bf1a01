"""The S3 driver's upload machinery: the state a caller keeps between appends, and one
append's pipeline of parts, tail and hashing. Split from `s3.py`, which keeps the plain object
operations; the driver calls in here for `append`, `complete` and `abort`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from registry.storage.observing import observe_after

if TYPE_CHECKING:
    from registry.storage.s3 import S3Driver

MAX_PARTS = 10_000  # S3's limit on parts per multipart upload
MIN_PART = 5 * 1024**2  # S3's minimum for every part but the last
MAX_PART = 5 * 1024**3  # and its maximum for any part
HASH_BATCH = 2 * 1024**2  # `observe` runs in a worker thread on batches of about this much
MAX_HASH_BATCHES = 4  # batches received but not yet observed, before receiving waits
MAX_STATE = 4 * 1024**2  # a state longer than this is garbage (10,000 parts take ~600 KB)
STATE_VERSION = 2  # 1: the parts were uploaded to the upload's own key (still read)


TAIL_INFIX = ".tail."  # an upload's staged tail is `<key>.tail.<start>-<size>`
DATA_PREFIX = "_blobdata/"  # where a version 2 upload's parts go and its object stays
_STATE_FIELDS = frozenset({"v", "upload_id", "parts", "tail", "drop"})


@dataclass(frozen=True, slots=True)
class UploadState:
    """What the caller keeps of an S3 upload between appends: versioned JSON, never pickle.

        {"v": 2, "upload_id": str | null, "parts": [[number, etag, size], ...],
         "tail": size, "drop": [start, size] | null}

    `parts` are the whole parts uploaded so far, numbered 1, 2, ... (each at least MIN_PART);
    there is a multipart upload exactly when there are parts. `tail` is the size of the staged
    tail, which starts where the parts end. `drop` is an older tail that the next append
    deletes. An upload with no bytes has the state None.

    Version 2 uploads its parts to the upload's data key (`data_key`), where the
    completed object stays and the blob points to it; version 1 (`in_data` False, written
    before that) uploaded them to the upload's own key, and completes by copying as it did.
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
        upload_id = doc["upload_id"]
        if upload_id is not None and not (
            isinstance(upload_id, str) and 0 < len(upload_id) <= 1024
        ):
            raise _bad_state("bad upload id")
        raw_parts = doc["parts"]
        if not isinstance(raw_parts, list) or len(raw_parts) >= MAX_PARTS:
            raise _bad_state("parts are not a list of fewer than 10,000")
        parts: list[tuple[int, str, int]] = []
        for index, part in enumerate(raw_parts, start=1):
            if not (isinstance(part, list) and len(part) == 3):
                raise _bad_state("a part is not [number, etag, size]")
            number, etag, size = part
            if not _is_int(number) or number != index:
                raise _bad_state("parts are not numbered 1, 2, 3, ...")
            if not (isinstance(etag, str) and 0 < len(etag) <= 1024):
                raise _bad_state(f"part {index} has a bad ETag")
            if not _is_int(size) or not MIN_PART <= size <= MAX_PART:
                raise _bad_state(f"part {index} has a size S3 would not take")
            parts.append((number, etag, size))
        if (upload_id is None) != (not parts):
            raise _bad_state("a multipart upload id goes with parts, and only with them")
        tail = doc["tail"]
        if not _is_int(tail) or not 0 <= tail <= MAX_PART:
            raise _bad_state("bad tail size")
        start = sum(size for _, _, size in parts)
        raw_drop, drop = doc["drop"], None
        if raw_drop is not None:
            if not (
                isinstance(raw_drop, list) and len(raw_drop) == 2 and all(map(_is_int, raw_drop))
            ):
                raise _bad_state("drop is not [start, size]")
            drop = (int(raw_drop[0]), int(raw_drop[1]))
            # An older tail: it starts no later and ends earlier than the current one.
            if not (0 <= drop[0] <= start and drop[1] > 0 and sum(drop) < start + tail):
                raise _bad_state("drop is not an older tail")
        return cls(upload_id, tuple(parts), tail, drop, in_data=doc["v"] == STATE_VERSION)


class Append:
    """One `S3Driver.append`: cuts the old tail and the new bytes into parts, uploads each
    while the next is received, feeds `observe` from worker threads (in order: each batch
    waits for the one before), and stages the new tail at the end."""

    def __init__(
        self,
        driver: S3Driver,
        s3: Any,
        key: str,
        old: UploadState,
        observe: Callable[[bytes], None] | None,
        *,
        final: bool = False,
    ) -> None:
        self._driver = driver
        self._final = final  # writing the object itself (`write_verified`), not a scratch upload
        self._s3 = s3
        self._key = key
        self._full = driver._key(key)
        # Where the multipart upload lives: the object itself for `write_verified`, else the
        # upload's data key (or, for a version 1 state, the upload's key). Tails stay at `key`.
        self._parts_key = key if final or not old.in_data else data_key(key)
        self._parts_full = driver._key(self._parts_key)
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
            self._dropping = asyncio.ensure_future(driver._delete_quietly(s3, name))

    async def add(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._head_size and self._head is None:  # the first new byte: read the tail back
            self._head = asyncio.ensure_future(
                self._driver._read_tail(
                    self._s3, self._key, self._old.tail_key(self._full), self._head_size
                )
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
        while self._head_size + self._pending_size >= self._driver._part_size(self._next):
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
            await self._driver._write_tail(self._s3, name, b"".join(self._pending))
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
                await self._driver._upload_part(
                    self._s3, self._parts_key, self._upload_id, self._next, rest
                )
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
                await self._driver._abort_upload(self._s3, self._parts_full, self._upload_id)

    async def _cut(self) -> None:
        """Take the next whole part off the buffer and start uploading it."""
        number = self._next
        if number >= MAX_PARTS:  # the last number is kept for the tail
            raise ValueError(f"upload {self._key!r} is too large for an S3 multipart upload")
        size = self._driver._part_size(number)
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
            self._upload_id = await self._driver._create_upload(
                self._s3, self._parts_key, final=self._final or self._old.in_data
            )
            self._created = True
        self._inflight = asyncio.ensure_future(
            self._driver._upload_part(self._s3, self._parts_key, self._upload_id, number, data)
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


def _tail_key(full: str, start: int, size: int) -> str:
    return f"{full}{TAIL_INFIX}{start}-{size}"


def _is_int(value: object) -> bool:
    return type(value) is int  # not bool


def _bad_state(why: str) -> ValueError:
    return ValueError(f"invalid S3 upload state: {why}")
