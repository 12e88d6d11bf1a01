"""S3Driver.sweep_leftovers (and forget_cached) against moto's HTTP server: what failed or
abandoned uploads left at the store level goes once it is older than `before`, and nothing a
live upload or a blob needs ever does.

Leftovers are made the way failures make them: an upload completed to its data key whose
alias was then lost, an upload given up half way. `before` is set relative to now (an hour
ago, a minute ahead) instead of waiting for anything to age; moto dates every multipart
upload in 2010, so "too young" for those is just before the earliest it lists. `raw_s3` looks
at the bucket behind the driver's back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from registry.storage.base import Leftovers
from registry.storage.s3 import S3Driver
from registry.storage.s3_uploads import data_key
from tests.backends.stores import PART, append_all

pytestmark = pytest.mark.anyio

MakeDriver = Callable[..., S3Driver]
PREFIX = "registry/"
HOUR = 3600


def _upload(n: int) -> str:
    return f"_uploads/{n:032x}/data"


def _blob(n: int) -> str:
    return f"blobs/sha256/{n:02x}/{n:064x}"


@pytest.fixture
def driver(make_s3_driver: MakeDriver) -> S3Driver:
    made = make_s3_driver(prefix="registry")
    made.part_size = PART
    return made


async def _keys(raw_s3: Any, bucket: str) -> set[str]:
    keys: set[str] = set()
    async for page in raw_s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update(item["Key"].removeprefix(PREFIX) for item in page.get("Contents", ()))
    return keys


async def _multipart_uploads(raw_s3: Any, bucket: str) -> set[str]:
    answer = await raw_s3.list_multipart_uploads(Bucket=bucket)
    return {upload["Key"].removeprefix(PREFIX) for upload in answer.get("Uploads", [])}


async def _earliest_initiated(raw_s3: Any, bucket: str) -> float:
    answer = await raw_s3.list_multipart_uploads(Bucket=bucket)
    return min(float(upload["Initiated"].timestamp()) for upload in answer.get("Uploads", []))


async def _committed(driver: S3Driver, n: int, size: int) -> None:
    """Upload `n` committed as blob `n` from parts: the blob is an alias of the data key."""
    appended = await append_all(driver, [random.Random(n).randbytes(size)], key=_upload(n))
    await driver.complete(_upload(n), appended.state, _blob(n))
    await driver.delete_prefix(_upload(n).rpartition("/")[0])


async def test_a_data_object_no_alias_names_goes_once_old_enough(
    driver: S3Driver, raw_s3: Any, s3_bucket: str
) -> None:
    """A crash between CompleteMultipartUpload and the alias leaves a data object nothing
    names; so does a blob whose alias went. Named data objects stay."""
    await _committed(driver, 1, PART + 100)  # its alias is lost below
    await _committed(driver, 2, PART + 200)  # stays a blob
    await raw_s3.delete_object(Bucket=s3_bucket, Key=PREFIX + _blob(1))
    orphan, named = data_key(_upload(1)), data_key(_upload(2))
    before = await _keys(raw_s3, s3_bucket)
    assert before == {orphan, named, _blob(2)}

    young = await driver.sweep_leftovers([], time.time() - HOUR)  # written after `before`
    assert young == Leftovers()
    dry = await driver.sweep_leftovers([], time.time() + 60, dry_run=True)
    assert dry == Leftovers(objects=1, bytes=PART + 100)
    assert await _keys(raw_s3, s3_bucket) == before  # a dry run removes nothing

    swept = await driver.sweep_leftovers([], time.time() + 60)
    assert swept == dry
    assert await _keys(raw_s3, s3_bucket) == {named, _blob(2)}
    assert await driver.read(_blob(2)) == random.Random(2).randbytes(PART + 200)
    assert await driver.sweep_leftovers([], time.time() + 60) == Leftovers()  # nothing left


async def test_live_uploads_keep_their_data_and_abandoned_ones_are_aborted(
    driver: S3Driver, raw_s3: Any, s3_bucket: str
) -> None:
    # Live: one half way (a multipart upload on its data key), one completed in place (its
    # data object named only by the alias at its own key), one from before data keys (a
    # multipart upload on its own key).
    going = await append_all(driver, [random.Random(3).randbytes(PART + 30)], key=_upload(3))
    done = await append_all(driver, [random.Random(4).randbytes(PART + 40)], key=_upload(4))
    await driver.complete(_upload(4), done.state, _upload(4))
    await raw_s3.create_multipart_upload(Bucket=s3_bucket, Key=PREFIX + _upload(5))
    # Abandoned: an upload given up after one part, and an old-style one with a small part.
    await append_all(driver, [random.Random(6).randbytes(PART + 60)], key=_upload(6))
    old_style = await raw_s3.create_multipart_upload(Bucket=s3_bucket, Key=PREFIX + _upload(7))
    await raw_s3.upload_part(
        Bucket=s3_bucket,
        Key=PREFIX + _upload(7),
        UploadId=old_style["UploadId"],
        PartNumber=1,
        Body=b"p" * 1000,
    )
    # Not an upload's: a multipart upload elsewhere is none of the sweep's business.
    await raw_s3.create_multipart_upload(Bucket=s3_bucket, Key=PREFIX + "elsewhere/x")
    live = [_upload(3), _upload(4), _upload(5)]
    objects = await _keys(raw_s3, s3_bucket)
    multipart = await _multipart_uploads(raw_s3, s3_bucket)
    assert multipart == {data_key(_upload(3)), _upload(5), data_key(_upload(6)), _upload(7)} | {
        "elsewhere/x"
    }

    # Nothing was initiated before this (moto dates every multipart upload in 2010, so the
    # threshold is set from what it says rather than from the clock).
    earliest = min(time.time() - HOUR, await _earliest_initiated(raw_s3, s3_bucket))
    assert await driver.sweep_leftovers(live, earliest - 1) == Leftovers()
    dry = await driver.sweep_leftovers(live, time.time() + 60, dry_run=True)
    assert dry == Leftovers(uploads=2, bytes=PART + 1000)
    assert await _multipart_uploads(raw_s3, s3_bucket) == multipart

    assert await driver.sweep_leftovers(live, time.time() + 60) == dry
    assert await _multipart_uploads(raw_s3, s3_bucket) == multipart - {
        data_key(_upload(6)),
        _upload(7),
    }
    assert await _keys(raw_s3, s3_bucket) == objects  # tails are the purge's, not the sweep's

    # The live ones go on as if nothing happened.
    rest = await append_all(driver, [b"end"], going.size, going.state, key=_upload(3))
    await driver.complete(_upload(3), rest.state, _blob(3))
    assert await driver.read(_blob(3)) == random.Random(3).randbytes(PART + 30) + b"end"
    assert await driver.read(_upload(4)) == random.Random(4).randbytes(PART + 40)


async def test_forget_cached_drops_the_remembered_aliases(
    driver: S3Driver, raw_s3: Any, s3_bucket: str
) -> None:
    """A presigned URL of a remembered alias names its data key without asking S3; once the
    collector had the driver forget, the alias is read again."""
    await _committed(driver, 8, PART + 80)
    assert data_key(_upload(8)) in str(await driver.url_for(_blob(8), 60))
    # The blob is now plain data (as if deleted and pushed again monolithically).
    await raw_s3.put_object(Bucket=s3_bucket, Key=PREFIX + _blob(8), Body=b"plain")
    assert data_key(_upload(8)) in str(await driver.url_for(_blob(8), 60))  # remembered
    driver.forget_cached()
    url = str(await driver.url_for(_blob(8), 60))
    assert data_key(_upload(8)) not in url and _blob(8) in url


async def test_delete_blobs_removes_the_alias_and_its_data_and_forgets_it(
    driver: S3Driver, raw_s3: Any, s3_bucket: str
) -> None:
    await _committed(driver, 9, PART + 90)
    await driver.write(_blob(10), b"plain blob")
    assert data_key(_upload(9)) in str(await driver.url_for(_blob(9), 60))  # remembered

    assert await driver.delete_blobs([_blob(9), _blob(10)]) == PART + 90 + 10
    assert await _keys(raw_s3, s3_bucket) == set()
    await driver.write(_blob(9), b"pushed again")  # plain now: the old alias is forgotten
    url = str(await driver.url_for(_blob(9), 60))
    assert data_key(_upload(9)) not in url and _blob(9) in url
