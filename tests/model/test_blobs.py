"""Blobs in the model: links per repository, sizes, the check a manifest put makes, and
mounts from another repository the caller may read."""

from __future__ import annotations

import pytest

from registry.model import paths
from registry.model.registry import Registry
from registry.oci.digests import Digest
from registry.oci.errors import BlobUnknown
from tests.model.conftest import push_blob

pytestmark = pytest.mark.anyio


async def _anyone(name: str) -> bool:
    return True


async def test_a_blob_is_known_only_where_it_is_linked(registry: Registry) -> None:
    digest = await push_blob(registry, "app", b"layer")
    assert await registry.blobs.size("app", digest) == 5
    assert await registry.blobs.linked("app", digest)
    assert not await registry.blobs.linked("other", digest)
    with pytest.raises(BlobUnknown):
        await registry.blobs.size("other", digest)


async def test_unlink_forgets_the_link_but_not_other_repositories(registry: Registry) -> None:
    digest = await push_blob(registry, "one", b"shared")
    await registry.blobs.link("two", digest)
    await registry.blobs.unlink("one", digest)
    assert not await registry.blobs.linked("one", digest)
    assert await registry.blobs.linked("two", digest)
    assert await registry.storage.size(paths.blob(digest)) == 6  # content stays
    with pytest.raises(BlobUnknown):
        await registry.blobs.unlink("one", digest)


async def test_a_link_without_content_is_not_a_blob(registry: Registry) -> None:
    digest = await push_blob(registry, "app", b"gone")
    fresh = Registry(registry.storage, registry.coord, "file:///again")  # no remembered size
    await registry.storage.delete(paths.blob(digest))
    assert not await fresh.blobs.linked("app", digest)
    assert await fresh.blobs.first_missing("app", [digest]) == digest


async def test_first_missing_names_the_first_absent_digest(registry: Registry) -> None:
    held = [await push_blob(registry, "app", bytes([i])) for i in range(3)]
    absent = [Digest.of(b"absent-1"), Digest.of(b"absent-2")]
    assert await registry.blobs.first_missing("app", held + held) is None
    order = [held[0], absent[1], held[1], absent[0]]
    assert await registry.blobs.first_missing("app", order) == absent[1]


async def test_mount_from_a_readable_source(registry: Registry) -> None:
    digest = await push_blob(registry, "source", b"mounted")

    async def nobody(name: str) -> bool:
        return False

    assert not await registry.blobs.mount("target", digest, "source", nobody)
    assert not await registry.blobs.linked("target", digest)
    assert not await registry.blobs.mount("target", digest, "elsewhere", _anyone)
    assert await registry.blobs.mount("target", digest, "source", _anyone)
    assert await registry.blobs.linked("target", digest)


async def test_mount_without_a_source_finds_a_holder(registry: Registry) -> None:
    digest = await push_blob(registry, "b-holder", b"anywhere")

    async def only_b(name: str) -> bool:
        return name.startswith("b-")

    assert await registry.blobs.mount("target", digest, None, only_b)
    assert await registry.blobs.linked("target", digest)
    assert not await registry.blobs.mount("other", Digest.of(b"nowhere"), None, _anyone)
