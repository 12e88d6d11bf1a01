"""The stores the storage suites run on, and what their tests share.

`Store` is one driver and a look behind its back at everything it left; the `store` fixture
(conftest.py) makes one per driver: the filesystem in a temporary directory and S3 on moto's
HTTP server, with S3's 5 MiB minimum part so that bodies of a few MiB take both of its paths.
test_storage_conformance.py and test_storage_maintenance.py run on it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.storage import filesystem
from registry.storage.base import Appended, Incoming, StorageDriver
from registry.storage.filesystem import FilesystemDriver
from registry.storage.s3 import STREAM_CHUNK, S3Driver
from registry.storage.s3_uploads import MIN_PART

MiB = 1024 * 1024
PART = MIN_PART
KEY = "blobs/sha256/ab/abcdef"
UPLOAD = "_uploads/0123456789abcdef0123456789abcdef/data"


class Broken(Exception):
    """A body that fails half way, like a client that disconnects."""


@dataclass
class Store:
    """One driver, the largest chunk its streams may yield, and a look at everything it left
    behind: {key: size}, keys relative to the driver's root or prefix."""

    driver: StorageDriver
    chunk: int
    leftovers: Callable[[], Awaitable[dict[str, int]]]


def filesystem_store(root: Path) -> Store:
    driver = FilesystemDriver(root)

    async def files() -> dict[str, int]:
        found: dict[str, int] = {}
        for folder, _, names in os.walk(driver.root):
            for name in names:
                path = os.path.join(folder, name)
                found[os.path.relpath(path, driver.root)] = os.path.getsize(path)
        return found

    return Store(driver, filesystem.READ_CHUNK, files)


def s3_store(driver: S3Driver, raw_s3: Any, bucket: str) -> Store:
    driver.part_size = PART
    prefix = driver.prefix  # "registry/": every key of the driver starts with it

    async def objects() -> dict[str, int]:
        found: dict[str, int] = {}
        async for page in raw_s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", ()):
                assert item["Key"].startswith(prefix), "an object outside the driver's prefix"
                found[item["Key"].removeprefix(prefix)] = item["Size"]
        uploads = await raw_s3.list_multipart_uploads(Bucket=bucket)
        for upload in uploads.get("Uploads", []):
            found[f"multipart upload on {upload['Key']}"] = -1
        return found

    return Store(driver, STREAM_CHUNK, objects)


async def write_many(driver: StorageDriver, items: dict[str, bytes]) -> None:
    """Write every item, a few dozen at once."""
    slots = asyncio.Semaphore(48)

    async def put(key: str, data: bytes) -> None:
        async with slots:
            await driver.write(key, data)

    await asyncio.gather(*(put(key, data) for key, data in items.items()))


async def chunked(data: bytes, size: int, fail_at: int | None = None) -> AsyncIterator[bytes]:
    """`data` as a body arrives: in chunks of `size`, failing from `fail_at` on if given."""
    for start in range(0, len(data), size):
        if fail_at is not None and start >= fail_at:
            raise Broken("the client went away")
        yield data[start : start + size]


class Observed:
    """An `observe` callback that keeps what it saw."""

    def __init__(self) -> None:
        self.seen = bytearray()

    def __call__(self, chunk: bytes) -> None:
        self.seen += chunk


async def append_all(
    driver: StorageDriver,
    bodies: list[bytes],
    offset: int = 0,
    state: bytes | None = None,
    key: str = UPLOAD,
) -> Appended:
    """One append per body, each from the offset and state the previous one returned, as
    successive PATCH requests (perhaps on other workers) do."""
    appended = Appended(offset, state)
    for body in bodies:
        observed = Observed()
        appended = await driver.append(
            key, appended.size, Incoming(chunked(body, 256 * 1024), observed), appended.state
        )
        assert bytes(observed.seen) == body  # exactly the new bytes, once and in order
        offset += len(body)
        assert appended.size == offset
    return appended
