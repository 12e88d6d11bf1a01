"""How the model answers a blob GET (`Blobs.read`) on the embedded default: the bytes, read
from the store before any header goes out, and BLOB_UNKNOWN for content gone from the store.
The redirect to a presigned S3 URL is in tests/backends/test_redirect.py."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from registry.coord.local import LocalCoordinator
from registry.model.blobs import Redirect
from registry.model.registry import Registry
from registry.oci.digests import Digest
from registry.oci.errors import BlobUnknown
from registry.storage.filesystem import FilesystemDriver

pytestmark = pytest.mark.anyio

DATA = b"0123456789" * 100
DIGEST = Digest.parse("sha256:" + hashlib.sha256(DATA).hexdigest())


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _pushed(root: Path, redirect_seconds: int | None) -> Registry:
    registry = Registry(
        FilesystemDriver(root),
        LocalCoordinator(root / "_coord"),
        f"file://{root}",
        redirect_seconds=redirect_seconds,
    )
    await registry.uploads.monolithic("library/app", DIGEST, _body(DATA))
    return registry


async def _bytes(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


@pytest.mark.parametrize("redirect_seconds", [None, 600])
async def test_a_store_without_urls_serves_the_bytes(
    tmp_path: Path, redirect_seconds: int | None
) -> None:
    """Redirects configured or not: a filesystem gives no URL, so the registry streams."""
    registry = await _pushed(tmp_path, redirect_seconds)
    found = await registry.blobs.read(DIGEST, 0, len(DATA))
    assert not isinstance(found, Redirect)
    assert await _bytes(found) == DATA
    ranged = await registry.blobs.read(DIGEST, 10, 5)
    assert not isinstance(ranged, Redirect)
    assert await _bytes(ranged) == DATA[10:15]


async def test_content_gone_from_the_store_is_blob_unknown(tmp_path: Path) -> None:
    """Linked, with its size remembered, but the file was deleted behind the registry's back:
    the model answers BLOB_UNKNOWN (a 404), not the store's own not-found."""
    registry = await _pushed(tmp_path, None)
    assert await registry.blobs.size("library/app", DIGEST) == len(DATA)
    (tmp_path / "blobs" / "sha256" / DIGEST.hex[:2] / DIGEST.hex).unlink()
    with pytest.raises(BlobUnknown) as raised:
        await registry.blobs.read(DIGEST, 0, len(DATA))
    assert raised.value.detail == {"digest": str(DIGEST)}
