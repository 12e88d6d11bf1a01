"""The purge of expired uploads on the embedded default (filesystem + local coordination).

Uploads are made through the model, as requests make them; their age is set through file
modification times (os.utime), so nothing waits for time to pass. The same purge on S3 with
Redis is in tests/backends/test_purge.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from registry.coord.base import DEFAULT_SESSION_TTL
from registry.coord.local import LocalCoordinator
from registry.model.purge import purge_expired_uploads
from registry.model.registry import Registry
from registry.oci.errors import BlobUploadUnknown
from registry.storage.filesystem import FilesystemDriver

pytestmark = pytest.mark.anyio

OLD = DEFAULT_SESSION_TTL + 3600  # older than the expiry by an hour


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


class Embedded:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.storage = FilesystemDriver(root)
        self.coord = LocalCoordinator(root / "_coord")
        self.registry = Registry(self.storage, self.coord, f"file://{root}")

    async def upload(self, data: bytes) -> str:
        session = await self.registry.uploads.start("library/app", "alice")
        if data:
            await self.registry.uploads.append(
                "library/app", session.id, "alice", _body(data), None
            )
        return session.id

    def record(self, upload_id: str) -> Path:
        return self.root / "_coord" / "sessions" / upload_id

    def data(self, upload_id: str) -> Path:
        return self.root / "_uploads" / upload_id / "data"


async def test_an_expired_session_is_unknown(tmp_path: Path) -> None:
    embedded = Embedded(tmp_path)
    upload_id = await embedded.upload(b"some bytes")
    assert (await embedded.registry.uploads.get("library/app", upload_id, "alice")).offset == 10
    _age(embedded.record(upload_id), OLD)
    with pytest.raises(BlobUploadUnknown):
        await embedded.registry.uploads.get("library/app", upload_id, "alice")


async def test_the_purge_removes_expired_uploads_and_keeps_live_ones(tmp_path: Path) -> None:
    embedded = Embedded(tmp_path)
    live = await embedded.upload(b"live")
    expired = await embedded.upload(b"expired!")
    never_written = await embedded.upload(b"")  # POST, then nothing
    orphan = await embedded.upload(b"orphan bytes")  # data whose record is gone
    young_orphan = await embedded.upload(b"young")
    for upload_id in (expired, never_written):
        _age(embedded.record(upload_id), OLD)
    _age(embedded.data(expired), OLD)
    embedded.record(orphan).unlink()
    _age(embedded.data(orphan), OLD)
    embedded.record(young_orphan).unlink()

    purged = await purge_expired_uploads(embedded.storage, embedded.coord)

    assert (purged.sessions, purged.orphans, purged.busy) == (2, 1, 0)
    assert purged.bytes == len(b"expired!") + len(b"orphan bytes")
    for gone in (expired, never_written, orphan):
        assert not embedded.record(gone).exists()
        assert not (tmp_path / "_uploads" / gone).exists()
    assert embedded.data(live).read_bytes() == b"live"
    assert (await embedded.registry.uploads.get("library/app", live, "alice")).offset == 4
    assert embedded.data(young_orphan).read_bytes() == b"young"
    # Nothing is left to purge, and a second run finds nothing.
    again = await purge_expired_uploads(embedded.storage, embedded.coord)
    assert (again.sessions, again.orphans, again.bytes) == (0, 0, 0)


async def test_the_purge_skips_an_upload_in_use(tmp_path: Path) -> None:
    embedded = Embedded(tmp_path)
    expired = await embedded.upload(b"expired")
    _age(embedded.record(expired), OLD)
    async with embedded.coord.lock(f"upload:{expired}"):  # a request holds the upload
        purged = await purge_expired_uploads(embedded.storage, embedded.coord)
    assert (purged.sessions, purged.busy) == (0, 1)
    assert embedded.data(expired).exists()
    purged = await purge_expired_uploads(embedded.storage, embedded.coord)
    assert (purged.sessions, purged.busy) == (1, 0)
    assert not embedded.data(expired).exists()


async def test_the_expiry_is_injectable(tmp_path: Path) -> None:
    root = tmp_path
    storage = FilesystemDriver(root)
    coord = LocalCoordinator(root / "_coord", session_ttl=60)
    registry = Registry(storage, coord, f"file://{root}")
    session = await registry.uploads.start("library/app", "alice")
    await registry.uploads.append("library/app", session.id, "alice", _body(b"x"), None)
    _age(root / "_coord" / "sessions" / session.id, 61)
    purged = await purge_expired_uploads(storage, coord, expiry=60)
    assert purged.sessions == 1
    assert not (root / "_uploads" / session.id).exists()
