"""S3Driver chunked uploads (`append`, `complete`, `abort`) against moto's HTTP server.

Parts are lowered to S3's 5 MiB minimum to keep the data small. Every append uses a fresh
driver and only the state the previous one returned, as another worker would. `raw_s3` looks
at the bucket behind the drivers' backs: objects, staged tails, multipart uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from registry.storage.base import Appended, Incoming, ObjectNotFound, StorageUnavailable
from registry.storage.s3 import S3Driver
from registry.storage.s3_options import S3Settings
from registry.storage.s3_uploads import META_DATA, META_SIZE, MIN_PART, data_key
from tests.backends.s3 import MotoServer

pytestmark = pytest.mark.anyio

MakeDriver = Callable[..., S3Driver]
MiB = 1024 * 1024
PART = MIN_PART  # 5 MiB
PREFIX = "registry"
KEY = "_uploads/0123456789abcdef0123456789abcdef/data"
TARGET = "blobs/sha256/ab/abcdef"
DATA = data_key(KEY)  # where the parts go and the completed object stays


@pytest.fixture
def fresh(make_s3_driver: MakeDriver) -> Callable[[], S3Driver]:
    """A new driver (its own client) with 5 MiB parts, as a different worker would have."""

    def factory() -> S3Driver:
        driver = make_s3_driver(prefix=PREFIX)
        driver.part_size = PART
        return driver

    return factory


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Observed:
    """An `observe` callback that keeps what it saw."""

    def __init__(self) -> None:
        self.seen = bytearray()
        self.calls = 0

    def __call__(self, chunk: bytes) -> None:
        self.seen += chunk
        self.calls += 1


async def _append(
    driver: S3Driver,
    offset: int,
    data: bytes,
    state: bytes | None,
    piece: int = 256 * 1024,
) -> Appended:
    observed = Observed()
    appended = await driver.append(KEY, offset, Incoming(_pieces(data, piece), observed), state)
    # `observe` saw exactly the new bytes, once and in order (not the re-read tail).
    assert hashlib.sha256(observed.seen).digest() == hashlib.sha256(data).digest()
    assert len(observed.seen) == len(data)
    return appended


async def _objects(raw_s3: Any, bucket: str) -> dict[str, int]:
    found: dict[str, int] = {}
    async for page in raw_s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update({item["Key"]: item["Size"] for item in page.get("Contents", ())})
    return found


async def _uploads(raw_s3: Any, bucket: str) -> list[str]:
    answer = await raw_s3.list_multipart_uploads(Bucket=bucket)
    return [upload["Key"] for upload in answer.get("Uploads", [])]


def _tails(objects: dict[str, int]) -> dict[str, int]:
    return {key: size for key, size in objects.items() if ".tail." in key}


async def _append_all(
    fresh: Callable[[], S3Driver],
    calls: Sequence[tuple[bytes, int]],
    raw_s3: Any,
    bucket: str,
    state: bytes | None = None,
    offset: int = 0,
) -> tuple[int, bytes | None]:
    """Each (data, piece size) is one append by a fresh driver; checks the state after each."""
    for data, piece in calls:
        driver = fresh()
        appended = await _append(driver, offset, data, state, piece)
        await driver.close()
        offset += len(data)
        assert appended.size == offset
        state = appended.state
        assert state is not None
        doc = json.loads(state)
        assert doc["v"] == 2
        # Whole 5 MiB parts, numbered from 1; the rest is the staged tail.
        assert [part[0] for part in doc["parts"]] == list(range(1, offset // PART + 1))
        assert all(part[2] == PART for part in doc["parts"])
        assert doc["tail"] == offset % PART
        tails = _tails(await _objects(raw_s3, bucket))
        if doc["tail"]:
            assert doc["tail"] in tails.values()
        assert len(tails) <= 2  # the current tail, and the one before until the next append
    return offset, state


async def test_appends_across_workers_then_complete_elsewhere(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    rng = random.Random(11)
    calls = [
        (rng.randbytes(1), 1),  # one byte
        (rng.randbytes(3 * MiB), 100_000),  # a tail that grows, no part yet
        (rng.randbytes(PART), 1 << 20),  # one part's worth: the first part, a tail again
        (rng.randbytes(PART + 1), 333_333),  # a part and a byte
        (rng.randbytes(12 * MiB), 777_777),  # two parts in odd pieces
        (b"", 1),  # nothing: the state stays as it was
        (rng.randbytes(7), 3),
    ]
    data = b"".join(chunk for chunk, _ in calls)
    size, state = await _append_all(fresh, calls, raw_s3, s3_bucket)
    assert size == len(data)
    assert await _uploads(raw_s3, s3_bucket) == [f"{PREFIX}/{DATA}"]

    driver = fresh()
    await driver.complete(KEY, state, TARGET)
    assert await driver.read(TARGET) == data
    assert await fresh().read(TARGET) == data
    assert await fresh().size(TARGET) == len(data)
    # The target is an alias of the completed object, which was not copied. The scratch
    # key, every tail and the multipart upload are gone.
    assert await _objects(raw_s3, s3_bucket) == {
        f"{PREFIX}/{TARGET}": 0,
        f"{PREFIX}/{DATA}": len(data),
    }
    head = await raw_s3.head_object(Bucket=s3_bucket, Key=f"{PREFIX}/{TARGET}")
    assert head["Metadata"] == {META_DATA: DATA, META_SIZE: str(len(data))}
    assert await _uploads(raw_s3, s3_bucket) == []


async def test_a_small_upload_never_makes_a_multipart_upload(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    rng = random.Random(12)
    calls = [(rng.randbytes(1), 1), (rng.randbytes(1000), 7), (rng.randbytes(2 * MiB), 65536)]
    data = b"".join(chunk for chunk, _ in calls)
    _, state = await _append_all(fresh, calls, raw_s3, s3_bucket)
    assert await _uploads(raw_s3, s3_bucket) == []

    await fresh().complete(KEY, state, TARGET)
    assert await fresh().read(TARGET) == data
    assert await _objects(raw_s3, s3_bucket) == {f"{PREFIX}/{TARGET}": len(data)}


async def test_an_empty_upload_completes_as_an_empty_object(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    appended = await _append(fresh(), 0, b"", None)
    assert appended == Appended(0, None)
    await fresh().complete(KEY, appended.state, TARGET)
    assert await fresh().read(TARGET) == b""
    assert await _objects(raw_s3, s3_bucket) == {f"{PREFIX}/{TARGET}": 0}


@pytest.mark.parametrize("size", [7 * MiB + 5, 2 * MiB + 1], ids=["parts", "tail-only"])
async def test_complete_in_place_then_to_the_target(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str, size: int
) -> None:
    # As the model does for a digest it has no saved state for: complete where the upload
    # is, read it back, then complete (without the state, or again with it) to the blob.
    data = random.Random(13).randbytes(size)
    _, state = await _append_all(fresh, [(data, 500_000)], raw_s3, s3_bucket)

    # With parts, `key` becomes an alias of the data key; a tail alone is copied to `key`.
    data_object = {f"{PREFIX}/{DATA}": size} if size >= PART else {}
    await fresh().complete(KEY, state, KEY)
    assert b"".join([chunk async for chunk in fresh().stream(KEY)]) == data
    in_place = 0 if data_object else size
    assert await _objects(raw_s3, s3_bucket) == {f"{PREFIX}/{KEY}": in_place} | data_object
    assert await _uploads(raw_s3, s3_bucket) == []
    await fresh().complete(KEY, state, KEY)  # again: nothing changes
    assert await fresh().read(KEY) == data

    await fresh().complete(KEY, None, TARGET)
    assert await fresh().read(TARGET) == data
    assert await _objects(raw_s3, s3_bucket) == {f"{PREFIX}/{TARGET}": in_place} | data_object


async def test_complete_again_with_the_same_state(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    data = random.Random(14).randbytes(6 * MiB)
    _, state = await _append_all(fresh, [(data, 1 << 20)], raw_s3, s3_bucket)
    await fresh().complete(KEY, state, KEY)
    # The multipart upload is gone, the data key holds the object: the target becomes its
    # alias, and `key` (an alias too) goes.
    await fresh().complete(KEY, state, TARGET)
    assert await fresh().read(TARGET) == data
    await fresh().complete(KEY, state, TARGET)  # a retry of a complete that got all the way
    assert await _objects(raw_s3, s3_bucket) == {
        f"{PREFIX}/{TARGET}": 0,
        f"{PREFIX}/{DATA}": len(data),
    }

    await raw_s3.delete_object(Bucket=s3_bucket, Key=f"{PREFIX}/{DATA}")
    with pytest.raises(ObjectNotFound):  # nothing anywhere: the upload is lost
        await fresh().complete(KEY, state, "blobs/sha256/cd/cdef")


async def test_a_failed_append_is_retried_from_the_old_state(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    rng = random.Random(15)
    first, rest = rng.randbytes(6 * MiB), rng.randbytes(2 * MiB + 123)
    size, state = await _append_all(fresh, [(first, 1 << 20)], raw_s3, s3_bucket)

    async def failing() -> AsyncIterator[bytes]:
        # Other bytes than the retry sends, none of which may end up in the blob: parts 2
        # and 3 are uploaded, part 4 is in flight when the client goes away.
        for _ in range(19):
            yield b"X" * MiB
        raise ConnectionResetError("the client went away")

    observed = Observed()
    with pytest.raises(ConnectionResetError):
        await fresh().append(KEY, size, Incoming(failing(), observed), state)
    assert bytes(observed.seen) == b"X" * len(observed.seen)
    assert await _uploads(raw_s3, s3_bucket) == [f"{PREFIX}/{DATA}"]  # the state's, kept

    size, state = await _append_all(fresh, [(rest, 400_000)], raw_s3, s3_bucket, state, size)
    await fresh().complete(KEY, state, TARGET)
    assert await fresh().read(TARGET) == first + rest
    assert await _objects(raw_s3, s3_bucket) == {
        f"{PREFIX}/{TARGET}": 0,
        f"{PREFIX}/{DATA}": len(first + rest),
    }
    assert await _uploads(raw_s3, s3_bucket) == []


async def test_a_failed_first_append_leaves_no_multipart_upload(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"Y" * (PART + MiB)  # a part's worth: the multipart upload exists by now
        yield b"Y" * PART
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await fresh().append(KEY, 0, Incoming(failing()))
    assert await _uploads(raw_s3, s3_bucket) == []

    data = random.Random(16).randbytes(PART + 3)
    _, state = await _append_all(fresh, [(data, 1 << 20)], raw_s3, s3_bucket)
    await fresh().complete(KEY, state, TARGET)
    assert await fresh().read(TARGET) == data


@pytest.mark.parametrize("lost", [2 * MiB, 4 * MiB], ids=["same-tail-start", "new-part"])
async def test_an_append_whose_state_was_lost_is_retried(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str, lost: int
) -> None:
    # The append succeeded but the caller could not save its state (its coordinator was
    # away), so the client's retry starts from the old state, maybe with other bytes.
    rng = random.Random(17)
    first = rng.randbytes(PART + 2 * MiB)  # a part and a 2 MiB tail
    size, state = await _append_all(fresh, [(first, 1 << 20)], raw_s3, s3_bucket)
    await _append_all(fresh, [(b"Z" * lost, 1 << 20)], raw_s3, s3_bucket, state, size)

    retry, last = rng.randbytes(lost), rng.randbytes(3 * MiB)
    calls = [(retry, 300_000), (last, 1 << 20)]
    size, state = await _append_all(fresh, calls, raw_s3, s3_bucket, state, size)
    await fresh().complete(KEY, state, TARGET)
    assert await fresh().read(TARGET) == first + retry + last
    assert await _objects(raw_s3, s3_bucket) == {f"{PREFIX}/{TARGET}": 0, f"{PREFIX}/{DATA}": size}
    assert await _uploads(raw_s3, s3_bucket) == []


async def test_parts_grow_so_ten_thousand_hold_enough(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    driver = fresh()
    driver.part_size_step = 1  # part n is n * 5 MiB (by default every 1000 parts)
    data = random.Random(18).randbytes(3 * PART + 3)
    appended = await _append(driver, 0, data, None, 1 << 20)
    doc = json.loads(appended.state or b"")
    assert [part[2] for part in doc["parts"]] == [PART, 2 * PART]
    assert doc["tail"] == 3
    # Another worker goes on with the parts the state records, whatever its own sizes.
    more = await _append(fresh(), len(data), b"more", appended.state)
    await fresh().complete(KEY, more.state, TARGET)
    assert await fresh().read(TARGET) == data + b"more"


async def test_storage_class_applies_to_the_blob_not_the_scratch_objects(
    make_s3_driver: MakeDriver, raw_s3: Any, s3_bucket: str
) -> None:
    def driver() -> S3Driver:
        made = make_s3_driver(sse="AES256", storage_class="STANDARD_IA")
        made.part_size = PART
        return made

    for size, target in [(PART + 10, "blob-parts"), (10, "blob-tail")]:
        appended = await driver().append(KEY, 0, Incoming(_pieces(b"s" * size, MiB)))
        tail = f"{KEY}.tail.{size - 10}-10"
        head = await raw_s3.head_object(Bucket=s3_bucket, Key=tail)
        assert head["ServerSideEncryption"] == "AES256"
        assert head.get("StorageClass", "STANDARD") == "STANDARD"
        await driver().complete(KEY, appended.state, target)
        # With parts, the data key holds the bytes and `target` is its alias; both are
        # encrypted and in the blob's class.
        holders = [target, DATA] if size > PART else [target]
        for holder in holders:
            head = await raw_s3.head_object(Bucket=s3_bucket, Key=holder)
            assert head["ServerSideEncryption"] == "AES256"
            assert head["StorageClass"] == "STANDARD_IA"
        assert await driver().size(target) == size


async def test_abort_removes_everything_and_may_repeat(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    data = random.Random(19).randbytes(PART + 2 * MiB)
    _, state = await _append_all(fresh, [(data, 1 << 20)], raw_s3, s3_bucket)
    await raw_s3.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/{KEY}.tail.1-1", Body=b"x")
    await raw_s3.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/other", Body=b"kept")
    # A multipart upload of an append whose state was never saved.
    await raw_s3.create_multipart_upload(Bucket=s3_bucket, Key=f"{PREFIX}/{KEY}")
    assert len(await _uploads(raw_s3, s3_bucket)) == 2

    await fresh().abort(KEY, state)
    assert await _objects(raw_s3, s3_bucket) == {f"{PREFIX}/other": 4}
    assert await _uploads(raw_s3, s3_bucket) == []
    await fresh().abort(KEY, state)  # again: nothing left, no error
    await fresh().abort(KEY, None)


async def test_abort_after_complete_in_place_and_with_garbage_state(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    data = random.Random(20).randbytes(PART + 1)
    _, state = await _append_all(fresh, [(data, 1 << 20)], raw_s3, s3_bucket)
    await fresh().complete(KEY, state, KEY)
    assert await fresh().size(KEY) == len(data)
    await fresh().abort(KEY, b"not a state")  # cleans up anyway: found by listing
    assert await _objects(raw_s3, s3_bucket) == {}
    assert await _uploads(raw_s3, s3_bucket) == []


# --- bad input, refused before any request


def _state(**fields: Any) -> bytes:
    doc: dict[str, Any] = {"v": 1, "upload_id": "u", "parts": [[1, '"e"', PART]], "tail": 3}
    doc["drop"] = None
    doc.update(fields)
    return json.dumps(doc).encode()


BAD_STATES = {
    "empty": b"",
    "not json": b"\x80garbage",
    "pickle": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01v\x94K\x01s.",
    "deep": b"[" * 100_000,
    "list": b"[1, 2]",
    "version 3": _state(v=3),
    "version true": _state(v=True),
    "missing field": json.dumps({"v": 1, "parts": [], "tail": 0}).encode(),
    "extra field": _state(extra=1),
    "parts numbered from 2": _state(parts=[[2, '"e"', PART]]),
    "parts out of order": _state(parts=[[1, '"e"', PART], [3, '"e"', PART], [2, '"e"', PART]]),
    "part too small": _state(parts=[[1, '"e"', PART - 1]]),
    "part size bool": _state(parts=[[1, '"e"', True]]),
    "part size float": _state(parts=[[1, '"e"', float(PART)]]),
    "part without etag": _state(parts=[[1, "", PART]]),
    "part as object": _state(parts=[{"number": 1}]),
    "parts without upload": _state(upload_id=None),
    "upload without parts": _state(parts=[]),
    "negative tail": _state(tail=-1),
    "tail string": _state(tail="3"),
    "drop not older": _state(drop=[PART, 3]),
    "drop garbage": _state(drop="x"),
    "too many parts": _state(parts=[[n, '"e"', PART] for n in range(1, 10_001)]),
}


def _offline_driver() -> S3Driver:
    # Nothing listens there: a request would fail with StorageUnavailable, not ValueError.
    return S3Driver(
        S3Settings(
            bucket="bucket", endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="b"
        )
    )


@pytest.mark.parametrize("state", BAD_STATES.values(), ids=BAD_STATES.keys())
async def test_corrupt_state_is_a_value_error(state: bytes) -> None:
    driver = _offline_driver()
    with pytest.raises(ValueError, match="invalid S3 upload state"):
        await driver.append(KEY, PART + 3, Incoming(_pieces(b"x", 1)), state)
    with pytest.raises(ValueError, match="invalid S3 upload state"):
        await driver.complete(KEY, state, TARGET)
    await driver.close()


async def test_offset_must_match_the_state() -> None:
    driver = _offline_driver()
    with pytest.raises(ValueError, match="holds 0 bytes"):
        await driver.append(KEY, 5, Incoming(_pieces(b"x", 1)))
    with pytest.raises(ValueError, match=f"holds {PART + 3} bytes"):
        await driver.append(KEY, PART + 2, Incoming(_pieces(b"x", 1)), _state())
    with pytest.raises(ValueError, match="at least"):
        driver.part_size = MiB
        await driver.append(KEY, 0, Incoming(_pieces(b"x", 1)))
    await driver.close()


# --- an unusable service


async def test_endpoint_stopped_mid_upload_is_unavailable(
    start_s3: Callable[[], MotoServer], make_s3_driver: MakeDriver
) -> None:
    server = start_s3()

    def driver() -> S3Driver:
        made = make_s3_driver(endpoint_url=server.endpoint, max_attempts=1, connect_timeout=1)
        made.part_size = PART
        return made

    server.create_bucket(driver().bucket)
    appended = await driver().append(KEY, 0, Incoming(_pieces(b"a" * (PART + MiB), MiB)))

    async def stopping() -> AsyncIterator[bytes]:
        yield b"b" * (2 * MiB)
        server.stop()
        yield b"b" * (3 * MiB)  # a whole part now: it cannot be uploaded
        yield b"b" * MiB

    began = time.monotonic()
    with pytest.raises(StorageUnavailable, match="unreachable"):
        await driver().append(KEY, appended.size, Incoming(stopping()), appended.state)
    with pytest.raises(StorageUnavailable):
        await driver().complete(KEY, appended.state, TARGET)
    with pytest.raises(StorageUnavailable):
        await driver().abort(KEY, appended.state)
    assert time.monotonic() - began < 15


async def test_endpoint_paused_mid_upload_gives_up_at_the_deadline(
    start_s3: Callable[[], MotoServer], make_s3_driver: MakeDriver
) -> None:
    """The store stops answering (SIGSTOP) while an append sends a part: the append fails at
    its deadlines instead of botocore's 60 s read timeout on each of 3 attempts, its clean-up
    does not hang either, and once the store answers again the old state carries on."""
    server = start_s3()

    def driver() -> S3Driver:
        made = make_s3_driver(endpoint_url=server.endpoint, request_timeout=0.5)
        made.part_size = PART
        return made

    server.create_bucket(driver().bucket)
    first = b"a" * (PART + MiB)
    appended = await driver().append(KEY, 0, Incoming(_pieces(first, MiB)))
    with contextlib.ExitStack() as paused:

        async def pausing() -> AsyncIterator[bytes]:
            yield b"b" * (2 * MiB)
            paused.enter_context(server.paused())
            yield b"b" * (3 * MiB)  # with the old tail, a whole part: sent to a silent store
            yield b"b" * MiB

        failing = driver().append(KEY, appended.size, Incoming(pausing()), appended.state)
        with pytest.raises(StorageUnavailable, match="within its deadline"):
            await asyncio.wait_for(failing, timeout=60)  # bounds a hang only
    again = await driver().append(
        KEY, appended.size, Incoming(_pieces(b"c" * MiB, MiB)), appended.state
    )
    await driver().complete(KEY, again.state, TARGET)
    assert await driver().read(TARGET) == first + b"c" * MiB


async def test_a_state_from_before_data_keys_still_completes_by_copying(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    # An upload begun before data keys: its multipart upload is on the upload's own key.
    first = random.Random(21).randbytes(PART)
    full = f"{PREFIX}/{KEY}"
    created = await raw_s3.create_multipart_upload(Bucket=s3_bucket, Key=full)
    part = await raw_s3.upload_part(
        Bucket=s3_bucket, Key=full, UploadId=created["UploadId"], PartNumber=1, Body=first
    )
    state = _state(upload_id=created["UploadId"], parts=[[1, part["ETag"], PART]], tail=0)

    appended = await _append(fresh(), PART, b"tail", state)
    assert appended.state is not None
    assert json.loads(appended.state)["v"] == 1  # it keeps the older layout
    await fresh().complete(KEY, appended.state, TARGET)
    assert await fresh().read(TARGET) == first + b"tail"
    assert await _objects(raw_s3, s3_bucket) == {f"{PREFIX}/{TARGET}": PART + 4}
    assert await _uploads(raw_s3, s3_bucket) == []


async def _completed_alias(fresh: Callable[[], S3Driver], raw_s3: Any, bucket: str) -> bytes:
    data = random.Random(22).randbytes(2 * PART + 12345)
    _, state = await _append_all(fresh, [(data, 1 << 20)], raw_s3, bucket)
    await fresh().complete(KEY, state, TARGET)
    return data


@pytest.mark.parametrize(
    ("start", "length"),
    [(0, None), (1, None), (PART - 1, 2), (2 * PART, None), (2 * PART + 12344, None), (7, 0)],
)
async def test_an_alias_streams_its_data_key(
    fresh: Callable[[], S3Driver],
    raw_s3: Any,
    s3_bucket: str,
    start: int,
    length: int | None,
) -> None:
    data = await _completed_alias(fresh, raw_s3, s3_bucket)
    end = None if length is None else start + length
    remembering = fresh()
    for driver in (fresh(), remembering, remembering):  # not yet seen, then remembered
        body = b"".join([chunk async for chunk in driver.stream(TARGET, start, length)])
        assert body == data[start:end]


async def test_a_range_past_the_end_of_an_alias_is_empty(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    data = await _completed_alias(fresh, raw_s3, s3_bucket)
    for driver in (fresh(), fresh()):
        await driver.size(TARGET)  # the second one remembers the alias before streaming
        assert [chunk async for chunk in driver.stream(TARGET, len(data))] == []
    with pytest.raises(ObjectNotFound):
        [chunk async for chunk in fresh().stream("blobs/sha256/cd/cdef", 5)]


async def test_an_alias_presigns_its_data_key(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    await _completed_alias(fresh, raw_s3, s3_bucket)
    url = await fresh().url_for(TARGET, 60)
    assert url is not None and f"/{PREFIX}/{DATA}?" in url


async def test_a_remembered_alias_that_changed_is_read_again(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    data = await _completed_alias(fresh, raw_s3, s3_bucket)
    driver = fresh()
    assert await driver.size(TARGET) == len(data)  # remembered
    # Meanwhile the blob was collected and pushed again, monolithically this time.
    await raw_s3.delete_object(Bucket=s3_bucket, Key=f"{PREFIX}/{DATA}")
    await raw_s3.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/{TARGET}", Body=data)
    assert b"".join([chunk async for chunk in driver.stream(TARGET, 3)]) == data[3:]
    url = await driver.url_for(TARGET, 60)
    assert url is not None and f"/{PREFIX}/{TARGET}?" in url


async def test_an_alias_without_its_data_is_not_found(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str
) -> None:
    await _completed_alias(fresh, raw_s3, s3_bucket)
    await raw_s3.delete_object(Bucket=s3_bucket, Key=f"{PREFIX}/{DATA}")
    with pytest.raises(ObjectNotFound):
        [chunk async for chunk in fresh().stream(TARGET)]
    with pytest.raises(ObjectNotFound):
        await fresh().read(TARGET)


@pytest.mark.parametrize(
    "metadata",
    [
        {META_DATA: DATA, META_SIZE: "many"},
        {META_DATA: DATA},
        {META_DATA: "blobs/sha256/cd/cdef", META_SIZE: "5"},  # not a data key
        {META_DATA: "_blobdata/../repositories/x", META_SIZE: "5"},
    ],
    ids=["bad-size", "no-size", "elsewhere", "traversal"],
)
async def test_a_broken_alias_is_refused_not_followed(
    fresh: Callable[[], S3Driver], raw_s3: Any, s3_bucket: str, metadata: dict[str, str]
) -> None:
    # Not something this registry writes: an alias edited by hand, or by another program.
    await raw_s3.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/{TARGET}", Body=b"", Metadata=metadata)
    driver = fresh()
    with pytest.raises(StorageUnavailable, match="broken alias"):
        await driver.size(TARGET)
    with pytest.raises(StorageUnavailable, match="broken alias"):
        await driver.read(TARGET)
    with pytest.raises(StorageUnavailable, match="broken alias"):
        [chunk async for chunk in driver.stream(TARGET, 1)]
    with pytest.raises(StorageUnavailable, match="broken alias"):
        await driver.url_for(TARGET, 60)
