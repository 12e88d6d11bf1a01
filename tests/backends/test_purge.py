"""The purge of expired uploads in the scaled mode: S3 (moto over HTTP) and a real Redis.

Redis expires a session record by itself (tests/backends/test_redis_coord.py shows it); here
the record is deleted to stand for that, and the purge is told a later `now` rather than
waiting a week. What must go is the upload's data in the bucket: its staged tail under
`_uploads/<id>/` and its multipart upload.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from registry.coord.base import DEFAULT_SESSION_TTL
from registry.coord.redis import RedisCoordinator
from registry.model.purge import purge_expired_uploads
from registry.model.registry import Registry
from registry.oci.digests import Digest
from registry.storage.s3 import S3Driver
from registry.storage.s3_uploads import MIN_PART, data_key

pytestmark = pytest.mark.anyio

PREFIX = "registry"
BODY = b"x" * MIN_PART + b"0123456789"  # one whole part and a staged tail of 10 bytes


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _upload(registry: Registry) -> str:
    session = await registry.uploads.start("library/app", "alice")
    await registry.uploads.append("library/app", session.id, "alice", _body(BODY), None)
    return session.id


async def _leftovers(raw_s3: Any, bucket: str, upload_id: str) -> tuple[list[str], list[str]]:
    """The upload's objects under `_uploads/<id>/`, and its multipart uploads."""
    listed = await raw_s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/_uploads/{upload_id}/")
    parts_key = f"{PREFIX}/{data_key(f'_uploads/{upload_id}/data')}"
    multipart = await raw_s3.list_multipart_uploads(Bucket=bucket, Prefix=parts_key)
    return (
        [item["Key"] for item in listed.get("Contents", ())],
        [upload["UploadId"] for upload in multipart.get("Uploads", ())],
    )


async def test_the_purge_removes_uploads_whose_record_expired(
    make_s3_driver: Callable[..., S3Driver],
    make_coord: Callable[..., RedisCoordinator],
    raw_s3: Any,
    s3_bucket: str,
) -> None:
    storage = make_s3_driver(prefix=PREFIX)
    storage.part_size = MIN_PART
    coord = make_coord()
    registry = Registry(storage, coord, f"s3 {s3_bucket}/{PREFIX}")
    live, expired = await _upload(registry), await _upload(registry)
    for upload_id in (live, expired):
        objects, multipart = await _leftovers(raw_s3, s3_bucket, upload_id)
        assert len(objects) == 1 and len(multipart) == 1  # the tail and the parts
    await coord.delete_session(expired)  # what Redis does when the record expires

    # Not idle for the whole expiry yet: kept.
    purged = await purge_expired_uploads(storage, coord)
    assert (purged.sessions, purged.orphans) == (0, 0)
    assert await _leftovers(raw_s3, s3_bucket, expired) != ([], [])

    later = time.time() + DEFAULT_SESSION_TTL + 3600
    purged = await purge_expired_uploads(storage, coord, now=later)

    assert (purged.sessions, purged.orphans, purged.busy, purged.bytes) == (0, 1, 0, 10)
    assert await _leftovers(raw_s3, s3_bucket, expired) == ([], [])
    # The live upload (its record is there) is whole, and completes.
    digest = Digest.parse("sha256:" + hashlib.sha256(BODY).hexdigest())
    await registry.uploads.finish("library/app", live, "alice", digest, None)
    assert await storage.size(f"blobs/sha256/{digest.hex[:2]}/{digest.hex}") == len(BODY)
    assert await _leftovers(raw_s3, s3_bucket, live) == ([], [])
