"""`write_verified`, the monolithic upload's path, on both drivers: the bytes go straight to
their final key, and appear there only when `verify` accepts them.

The S3 driver runs against moto's HTTP server with 5 MiB parts, so bodies of a few MiB take
either path: one PutObject, or a multipart upload on the key itself. `raw_s3` looks behind the
driver's back for leftovers (scratch objects, tails, open multipart uploads).
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from registry.storage.base import ObjectNotFound, StorageDriver
from registry.storage.filesystem import FilesystemDriver
from registry.storage.s3 import S3Driver
from registry.storage.s3_uploads import MIN_PART

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
PART = MIN_PART
KEY = "blobs/sha256/ab/abcdef"


class Rejected(Exception):
    """What the test's `verify` raises (the model raises DIGEST_INVALID there)."""


class Broken(Exception):
    """A body that fails half way, like a client that disconnects."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Store:
    """One driver, and a look at everything it left behind."""

    def __init__(self, driver: StorageDriver, leftovers: Callable[[], Awaitable[dict[str, int]]]):
        self.driver = driver
        self.leftovers = leftovers


@pytest.fixture(params=["filesystem", "s3"])
async def store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_s3_driver: Callable[..., S3Driver],
    raw_s3: Any,
    s3_bucket: str,
) -> Store:
    if request.param == "filesystem":
        driver = FilesystemDriver(tmp_path / "data")

        async def files() -> dict[str, int]:
            found: dict[str, int] = {}
            for folder, _, names in os.walk(driver.root):
                for name in names:
                    path = os.path.join(folder, name)
                    found[os.path.relpath(path, driver.root)] = os.path.getsize(path)
            return found

        return Store(driver, files)
    s3 = make_s3_driver()
    s3.part_size = PART

    async def objects() -> dict[str, int]:
        found: dict[str, int] = {}
        async for page in raw_s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket):
            found.update({item["Key"]: item["Size"] for item in page.get("Contents", ())})
        uploads = await raw_s3.list_multipart_uploads(Bucket=s3_bucket)
        for upload in uploads.get("Uploads", []):
            found[f"multipart upload on {upload['Key']}"] = -1
        return found

    return Store(s3, objects)


async def _pieces(data: bytes, size: int, fail_at: int | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        if fail_at is not None and start >= fail_at:
            raise Broken("the client went away")
        yield data[start : start + size]


def _sha256_verifier(data: bytes) -> tuple[Callable[[bytes], None], Callable[[], None]]:
    hasher = hashlib.sha256()

    def verify() -> None:
        if hasher.digest() != hashlib.sha256(data).digest():
            raise Rejected("digest mismatch")

    return hasher.update, verify


@pytest.mark.parametrize(
    "size",
    [0, 1000, PART - 1, PART, 2 * PART + 3],
    ids=["empty", "small", "under-a-part", "one-part", "parts-and-rest"],
)
async def test_the_bytes_land_on_the_key_and_nowhere_else(store: Store, size: int) -> None:
    data = random.Random(size).randbytes(size)
    observe, verify = _sha256_verifier(data)
    assert await store.driver.write_verified(KEY, _pieces(data, 300_000), observe, verify) == size
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
        await store.driver.write_verified(KEY, _pieces(data, 1 << 20), observe, verify)
    with pytest.raises(ObjectNotFound):
        await store.driver.read(KEY)
    assert await store.leftovers() == {}


@pytest.mark.parametrize("fail_at", [0, PART // 2, 2 * PART], ids=["at-once", "early", "late"])
async def test_a_body_cut_short_keeps_the_old_object(store: Store, fail_at: int) -> None:
    await store.driver.write(KEY, b"before")
    data = random.Random(fail_at).randbytes(3 * PART)
    observe, verify = _sha256_verifier(data)
    with pytest.raises(Broken):
        await store.driver.write_verified(KEY, _pieces(data, 1 << 20, fail_at), observe, verify)
    assert await store.driver.read(KEY) == b"before"
    assert await store.leftovers() == {KEY: len(b"before")}


async def test_observe_sees_every_byte_in_order(store: Store) -> None:
    data = random.Random(5).randbytes(3 * PART + 17)
    seen = bytearray()

    def verify() -> None:
        assert bytes(seen) == data  # all observed before the object may appear

    await store.driver.write_verified(KEY, _pieces(data, 123_457), seen.extend, verify)
    assert await store.driver.size(KEY) == len(data)


@pytest.mark.parametrize("size", [10, PART + 10], ids=["put-object", "multipart"])
async def test_s3_options_apply_to_the_object_written(
    make_s3_driver: Callable[..., S3Driver], raw_s3: Any, s3_bucket: str, size: int
) -> None:
    driver = make_s3_driver(sse="AES256", storage_class="STANDARD_IA")
    driver.part_size = PART
    data = b"s" * size
    observe, verify = _sha256_verifier(data)
    await driver.write_verified(KEY, _pieces(data, MiB), observe, verify)
    head = await raw_s3.head_object(Bucket=s3_bucket, Key=KEY)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ContentLength"] == size
