"""The `StorageDriver` contract, run on every driver: the filesystem in a temporary directory
and S3 on moto's HTTP server (see conftest.py and `tests.backends.stores`), each test on a
store of its own. The maintenance calls are in test_storage_maintenance.py.

A new driver is done when this suite passes on it: add it to `store`'s parameters. What only
one driver has (S3 aliases, multipart parts, flock files) stays in that driver's own tests.
`leftovers` looks behind the driver's back for what it left in the store (temp files, scratch
objects, staged tails, open multipart uploads); S3 runs with its 5 MiB minimum part so that
bodies of a few MiB take both of its paths.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import httpx
import pytest

from registry.storage.base import Incoming, ObjectNotFound, read_optional
from tests.backends.stores import (
    KEY,
    PART,
    UPLOAD,
    Broken,
    MiB,
    Observed,
    Store,
    append_all,
    chunked,
    write_many,
)

pytestmark = pytest.mark.anyio


class Rejected(Exception):
    """What the test's `verify` raises (the model raises DIGEST_INVALID there)."""


async def _collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


def _sha256_verifier(data: bytes) -> tuple[Callable[[bytes], None], Callable[[], None]]:
    hasher = hashlib.sha256()

    def verify() -> None:
        if hasher.digest() != hashlib.sha256(data).digest():
            raise Rejected("digest mismatch")

    return hasher.update, verify


# --- small objects


async def test_write_read_size_delete(store: Store) -> None:
    driver = store.driver
    key = "repositories/library/alpine/_manifests/tags/latest"
    await driver.write(key, b"sha256:" + b"a" * 64)
    assert await driver.read(key) == b"sha256:" + b"a" * 64
    assert await driver.size(key) == 71
    assert await store.leftovers() == {key: 71}  # no temp file or scratch object left

    await driver.write(key, b"replaced")  # create or replace
    assert await driver.read(key) == b"replaced"
    assert await driver.size(key) == 8

    await driver.write("empty", b"")
    assert await driver.read("empty") == b""
    assert await driver.size("empty") == 0
    assert await read_optional(driver, "empty") == b""

    assert await driver.delete(key) is True
    assert await driver.delete(key) is False
    assert await driver.size(key) is None
    with pytest.raises(ObjectNotFound):
        await driver.read(key)
    assert await read_optional(driver, key) is None
    assert await store.leftovers() == {"empty": 0}


async def test_absent_keys(store: Store) -> None:
    driver = store.driver
    absent = "blobs/sha256/ab/absent"
    with pytest.raises(ObjectNotFound):
        await driver.read(absent)
    assert await driver.size(absent) is None
    assert await driver.modified(absent) is None
    assert await driver.delete(absent) is False
    with pytest.raises(ObjectNotFound):
        await _collect(driver.stream(absent))
    with pytest.raises(ObjectNotFound):
        await _collect(driver.stream(absent, 5, 10))
    with pytest.raises(ObjectNotFound):
        await _collect(driver.stream(absent, 0, 0))
    with pytest.raises(ObjectNotFound):
        await driver.move("_uploads/absent/data", absent)
    assert await driver.list("repositories") == []
    await driver.delete_prefix("_uploads/absent")  # nothing to do, no error


async def test_modified_is_the_time_of_the_last_write(store: Store) -> None:
    # Bounds of a minute either side: clocks of a store and of this host may differ a little.
    before = time.time()
    await store.driver.write(KEY, b"one")
    written = await store.driver.modified(KEY)
    assert written is not None
    assert before - 60 <= written <= time.time() + 60
    await store.driver.delete(KEY)
    assert await store.driver.modified(KEY) is None


async def test_a_url_for_an_object_serves_its_bytes(store: Store) -> None:
    """None means the registry serves the bytes itself; a URL must give the object's bytes."""
    await store.driver.write(KEY, b"through a url")
    url = await store.driver.url_for(KEY, 60)
    if url is None:
        assert store.driver.name == "filesystem"
        return
    async with httpx.AsyncClient() as client:
        answer = await client.get(url)
    assert answer.status_code == 200
    assert answer.content == b"through a url"


VALID = [
    "a", "2", "a.a", "0-9/abcdefg", "abc/1.2.3.4.5-6_zyx/123.z/4", "abc./abc", ".abc", "a--b",
    "a-.b", "_.abc", "Docker/docker-registry", "x/..y", "x/y..",
]  # fmt: skip


async def test_keys_with_dots_dashes_and_underscores_are_valid(store: Store) -> None:
    """Every name a component may have (dots that are not `.` or `..` themselves included)."""
    content = bytes([0x80, 0xC3, 0x9F, 0])  # not UTF-8, and a NUL: bytes are bytes
    for key in VALID:
        await store.driver.write(key, content)
        assert await store.driver.read(key) == content, key
    assert await store.leftovers() == {key: len(content) for key in VALID}


async def test_concurrent_replacements_are_seen_whole(store: Store) -> None:
    """Writes are atomic: readers racing many replacements see one whole version, never a
    mix or a partial one."""
    versions = [bytes([i]) * (256 * 1024 + i) for i in range(8)]
    await store.driver.write(KEY, versions[0])
    seen: list[bytes] = []

    async def read_often() -> None:
        for _ in range(20):
            seen.append(await store.driver.read(KEY))

    await asyncio.gather(
        *(store.driver.write(KEY, version) for version in versions[1:]),
        *(read_often() for _ in range(4)),
    )
    assert all(body in versions for body in seen)
    assert await store.driver.read(KEY) in versions[1:]
    assert list(await store.leftovers()) == [KEY]


UNSAFE = ["", "/abs", "a//b", "a/", "..", ".", "a/../b", "a/./b", "../x", "a\x00b"]


@pytest.mark.parametrize("key", UNSAFE)
async def test_unsafe_keys_are_rejected(store: Store, key: str) -> None:
    driver = store.driver
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: driver.read(key),
        lambda: driver.write(key, b"x"),
        lambda: driver.size(key),
        lambda: driver.delete(key),
        lambda: driver.delete_prefix(key),
        lambda: driver.list(key),
        lambda: _collect(driver.stream(key)),
        lambda: driver.move(key, "ok"),
        lambda: driver.move("ok", key),
    ]
    await driver.write("ok", b"x")
    for call in calls:
        with pytest.raises(ValueError, match="unsafe storage key"):
            await call()
    assert await store.leftovers() == {"ok": 1}


# --- listing


async def test_list_gives_direct_children_only(store: Store) -> None:
    driver = store.driver
    for key in [
        "repositories/library/alpine/_manifests/tags/latest",
        "repositories/library/alpine/_manifests/tags/3.20",
        "repositories/library/alpine/_layers/sha256/aa",
        "repositories/library/busybox/_manifests/tags/1",
        "repositories/top",
        "repositoriesX/not-a-child",
    ]:
        await driver.write(key, b"x")
    assert sorted(await driver.list("repositories")) == ["library", "top"]
    assert sorted(await driver.list("repositories/library")) == ["alpine", "busybox"]
    assert sorted(await driver.list("repositories/library/alpine")) == ["_layers", "_manifests"]
    assert sorted(await driver.list("repositories/library/alpine/_manifests/tags")) == [
        "3.20",
        "latest",
    ]
    assert await driver.list("repositories/top") == []  # an object, not a prefix
    assert await driver.list("repositories/library/alpine/_manifests/tags/la") == []


async def test_list_paginates_past_1000(store: Store) -> None:
    objects = {f"many/object-{i:04}": b"" for i in range(1050)}
    nested = {f"many/sub-{i:03}/inner": b"" for i in range(60)}
    await write_many(store.driver, objects | nested)
    names = await store.driver.list("many")
    assert len(names) == len(set(names)) == 1110
    assert set(names) == {k.split("/")[1] for k in objects} | {k.split("/")[1] for k in nested}


# --- streaming


@pytest.fixture
async def big(store: Store) -> bytes:
    data = random.Random(7).randbytes(5 * MiB + 12345)
    await store.driver.write("blobs/sha256/bb/big", data)
    return data


RANGES: list[tuple[int, int | None]] = [
    (0, None),  # whole
    (0, 5 * MiB + 12345),  # whole, by length
    (0, 100),  # start
    (MiB - 10, 2 * MiB + 20),  # middle, across chunk boundaries
    (3 * MiB + 1, 1),  # one byte
    (5 * MiB, None),  # end
    (5 * MiB + 12345 - 7, 7),  # the last bytes
    (5 * MiB, 10 * MiB),  # past the end: what there is
    (5 * MiB + 12345, None),  # at the end: nothing
    (6 * MiB, 10),  # beyond the end: nothing
    (123, 0),  # empty range
]


async def test_stream_ranges(store: Store, big: bytes) -> None:
    # One object for every range (writing it is the slow part).
    for start, length in RANGES:
        chunks = await _collect(store.driver.stream("blobs/sha256/bb/big", start, length))
        end = None if length is None else start + length
        assert b"".join(chunks) == big[start:end], (start, length)
        assert all(0 < len(chunk) <= store.chunk for chunk in chunks), (start, length)


async def test_stream_yields_bounded_chunks(store: Store, big: bytes) -> None:
    chunks = await _collect(store.driver.stream("blobs/sha256/bb/big"))
    assert len(chunks) >= len(big) // store.chunk + 1  # never the object at once
    assert max(len(chunk) for chunk in chunks) <= store.chunk
    assert b"".join(chunks) == big


async def test_stream_of_an_empty_object(store: Store) -> None:
    await store.driver.write("empty", b"")
    assert await _collect(store.driver.stream("empty")) == []
    assert await _collect(store.driver.stream("empty", 0, 10)) == []


async def test_stream_stopped_early_leaves_the_driver_usable(store: Store, big: bytes) -> None:
    stream = store.driver.stream("blobs/sha256/bb/big", 10)
    first = await anext(stream)
    assert first == big[10 : 10 + len(first)]
    assert isinstance(stream, AsyncGenerator)
    await stream.aclose()  # a client that went away mid-download
    assert await store.driver.read("blobs/sha256/bb/big") == big


async def test_concurrent_streams_of_one_object(store: Store, big: bytes) -> None:
    """Many downloads of one blob at once, at different offsets, each get their own bytes."""
    starts = [random.Random(i).randrange(len(big)) for i in range(12)]

    async def read_from(start: int) -> bytes:
        return b"".join(await _collect(store.driver.stream("blobs/sha256/bb/big", start)))

    bodies = await asyncio.gather(*(read_from(start) for start in starts))
    assert [len(body) for body in bodies] == [len(big) - start for start in starts]
    assert all(body == big[start:] for body, start in zip(bodies, starts, strict=True))


# --- delete_prefix and move


async def test_delete_prefix_removes_more_than_1000(store: Store) -> None:
    doomed = {f"_uploads/u1/part-{i:04}": b"p" for i in range(1005)}
    doomed |= {f"_uploads/u1/nested/deeper/{i}": b"n" for i in range(100)}
    kept = {"_uploads/u2/data": b"2", "_uploads/u1x": b"sibling"}
    await write_many(store.driver, doomed | kept)

    await store.driver.delete_prefix("_uploads/u1")
    assert await store.leftovers() == {key: len(data) for key, data in kept.items()}
    assert await store.driver.list("_uploads/u1") == []
    assert sorted(await store.driver.list("_uploads")) == ["u1x", "u2"]


async def test_move_replaces_the_target_and_removes_the_source(store: Store) -> None:
    data = random.Random(1).randbytes(3 * MiB)
    await store.driver.write("_uploads/u/data", data)
    await store.driver.write("blobs/sha256/cc/cc", b"old content")  # replaced

    await store.driver.move("_uploads/u/data", "blobs/sha256/cc/cc")
    assert await store.driver.size("_uploads/u/data") is None
    assert await store.driver.read("blobs/sha256/cc/cc") == data
    assert await store.leftovers() == {"blobs/sha256/cc/cc": len(data)}

    await store.driver.move("blobs/sha256/cc/cc", "deep/new/prefix/cc")  # no parent yet
    assert await store.driver.read("deep/new/prefix/cc") == data
    assert await store.leftovers() == {"deep/new/prefix/cc": len(data)}


# --- chunked uploads: append, complete, abort


@pytest.mark.parametrize(
    "sizes",
    [[0], [1], [1000, 1, 3 * MiB], [PART + 1, 2 * MiB, 0, 7]],
    ids=["empty", "one-byte", "small", "parts"],
)
async def test_appends_then_complete_to_the_target(store: Store, sizes: list[int]) -> None:
    pieces = [random.Random(size).randbytes(size) for size in sizes]
    appended = await append_all(store.driver, pieces)
    await store.driver.complete(UPLOAD, appended.state, KEY)
    data = b"".join(pieces)
    assert await store.driver.read(KEY) == data
    assert await store.driver.size(KEY) == len(data)
    assert b"".join(await _collect(store.driver.stream(KEY))) == data
    await store.driver.delete_prefix("_uploads")  # as the model ends an upload
    assert await store.driver.size(UPLOAD) is None
    assert "multipart upload" not in str(await store.leftovers())


async def test_complete_in_place_makes_the_upload_readable(store: Store) -> None:
    data = random.Random(3).randbytes(PART + 5)
    appended = await append_all(store.driver, [data[:1000], data[1000:]])
    await store.driver.complete(UPLOAD, appended.state, UPLOAD)
    assert b"".join(await _collect(store.driver.stream(UPLOAD))) == data
    assert await store.driver.size(UPLOAD) == len(data)
    await store.driver.complete(UPLOAD, appended.state, UPLOAD)  # again: nothing changes
    assert await store.driver.read(UPLOAD) == data


async def test_a_failed_append_leaves_the_upload_at_its_offset(store: Store) -> None:
    first = random.Random(4).randbytes(2 * MiB)
    appended = await append_all(store.driver, [first])

    async def failing() -> AsyncIterator[bytes]:
        for _ in range(7):  # other bytes than the retry sends: none may reach the blob
            yield b"X" * MiB
        raise ConnectionResetError("the client went away")

    observed = Observed()
    with pytest.raises(ConnectionResetError):
        await store.driver.append(
            UPLOAD, appended.size, Incoming(failing(), observed), appended.state
        )
    assert bytes(observed.seen) == b"X" * len(observed.seen)

    rest = random.Random(5).randbytes(MiB + 3)
    appended = await append_all(store.driver, [rest], appended.size, appended.state)
    await store.driver.complete(UPLOAD, appended.state, KEY)
    assert await store.driver.read(KEY) == first + rest


async def test_abort_removes_the_upload_and_may_repeat(store: Store) -> None:
    await store.driver.write("other", b"kept")
    appended = await append_all(store.driver, [random.Random(6).randbytes(PART + MiB)])
    await store.driver.abort(UPLOAD, appended.state)
    await store.driver.delete_prefix("_uploads")
    assert await store.leftovers() == {"other": 4}
    await store.driver.abort(UPLOAD, appended.state)  # again: nothing left, no error
    await store.driver.abort(UPLOAD, None)
    assert await store.driver.size(UPLOAD) is None


# --- write_verified: the monolithic upload's path, straight to the final key


@pytest.mark.parametrize(
    "size",
    [0, 1000, PART - 1, PART, 2 * PART + 3],
    ids=["empty", "small", "under-a-part", "one-part", "parts-and-rest"],
)
async def test_the_bytes_land_on_the_key_and_nowhere_else(store: Store, size: int) -> None:
    data = random.Random(size).randbytes(size)
    observe, verify = _sha256_verifier(data)
    assert (
        await store.driver.write_verified(KEY, Incoming(chunked(data, 300_000), observe), verify)
        == size
    )
    assert b"".join([c async for c in store.driver.stream(KEY)]) == data
    # No scratch object, tail, temp file or open multipart upload: there is nothing to move.
    assert await store.leftovers() == {KEY: size}


@pytest.mark.parametrize("size", [1000, 2 * PART + 3], ids=["small", "parts"])
async def test_rejected_bytes_never_become_visible(store: Store, size: int) -> None:
    data = random.Random(size).randbytes(size)
    observe, _ = _sha256_verifier(data)

    def verify() -> None:
        raise Rejected("digest mismatch")

    with pytest.raises(Rejected):
        await store.driver.write_verified(KEY, Incoming(chunked(data, 1 << 20), observe), verify)
    with pytest.raises(ObjectNotFound):
        await store.driver.read(KEY)
    assert await store.leftovers() == {}


@pytest.mark.parametrize("fail_at", [0, PART // 2, 2 * PART], ids=["at-once", "early", "late"])
async def test_a_body_cut_short_keeps_the_old_object(store: Store, fail_at: int) -> None:
    await store.driver.write(KEY, b"before")
    data = random.Random(fail_at).randbytes(3 * PART)
    observe, verify = _sha256_verifier(data)
    with pytest.raises(Broken):
        await store.driver.write_verified(
            KEY, Incoming(chunked(data, 1 << 20, fail_at), observe), verify
        )
    assert await store.driver.read(KEY) == b"before"
    assert await store.leftovers() == {KEY: len(b"before")}


async def test_observe_sees_every_byte_in_order(store: Store) -> None:
    data = random.Random(5).randbytes(3 * PART + 17)
    seen = bytearray()

    def verify() -> None:
        assert bytes(seen) == data  # all observed before the object may appear

    await store.driver.write_verified(KEY, Incoming(chunked(data, 123_457), seen.extend), verify)
    assert await store.driver.size(KEY) == len(data)
