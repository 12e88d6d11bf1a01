"""Uploads in the model: sessions that belong to one repository and one principal, chunks
that must follow each other, and a digest checked before a blob becomes visible."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from registry.model import paths
from registry.model.registry import Registry
from registry.oci.digests import Digest
from registry.oci.errors import BlobUploadUnknown, DigestInvalid, RangeInvalid
from tests.model.conftest import body

pytestmark = pytest.mark.anyio


async def _read(registry: Registry, digest: Digest) -> bytes:
    return b"".join([chunk async for chunk in registry.storage.stream(paths.blob(digest))])


async def test_chunks_then_finish_make_a_linked_blob(registry: Registry) -> None:
    session = await registry.uploads.start("app", "alice")
    await registry.uploads.append("app", session.id, "alice", body(b"hello "), (0, 5))
    resumed = await registry.uploads.get("app", session.id, "alice")
    assert resumed.offset == 6
    await registry.uploads.append("app", session.id, "alice", body(b"wor"), None)
    digest = Digest.of(b"hello world")
    await registry.uploads.finish("app", session.id, "alice", digest, body(b"ld"))
    assert await _read(registry, digest) == b"hello world"
    assert await registry.blobs.linked("app", digest)
    assert await registry.blobs.size("app", digest) == 11
    with pytest.raises(BlobUploadUnknown):  # the session ended with the upload
        await registry.uploads.get("app", session.id, "alice")
    assert await registry.storage.list("_uploads") == []


async def test_a_chunk_that_does_not_start_at_the_offset_is_refused(registry: Registry) -> None:
    session = await registry.uploads.start("app", "alice")
    await registry.uploads.append("app", session.id, "alice", body(b"abc"), None)
    with pytest.raises(RangeInvalid) as caught:
        await registry.uploads.append("app", session.id, "alice", body(b"def"), (5, 7))
    assert caught.value.headers == {"Range": "0-2"}
    assert (await registry.uploads.get("app", session.id, "alice")).offset == 3


async def test_another_repository_or_principal_sees_no_session(registry: Registry) -> None:
    session = await registry.uploads.start("app", "alice")
    for name, owner in (("other", "alice"), ("app", "bob")):
        with pytest.raises(BlobUploadUnknown):
            await registry.uploads.get(name, session.id, owner)
        with pytest.raises(BlobUploadUnknown):
            await registry.uploads.append(name, session.id, owner, body(b"x"), None)
    for upload_id in ("not-hex", "../etc", "0" * 32):
        with pytest.raises(BlobUploadUnknown):
            await registry.uploads.get("app", upload_id, "alice")


async def test_a_wrong_digest_discards_the_upload(registry: Registry) -> None:
    session = await registry.uploads.start("app", "alice")
    await registry.uploads.append("app", session.id, "alice", body(b"data"), None)
    wrong = Digest.of(b"other")
    with pytest.raises(DigestInvalid):
        await registry.uploads.finish("app", session.id, "alice", wrong, None)
    assert await registry.storage.size(paths.blob(wrong)) is None
    assert not await registry.blobs.linked("app", wrong)
    with pytest.raises(BlobUploadUnknown):
        await registry.uploads.get("app", session.id, "alice")


async def test_a_monolithic_put_after_post_needs_no_scratch_copy(registry: Registry) -> None:
    session = await registry.uploads.start("app", "alice")
    digest = Digest.of(b"whole")
    await registry.uploads.finish("app", session.id, "alice", digest, body(b"who", b"le"))
    assert await _read(registry, digest) == b"whole"
    assert await registry.storage.list("_uploads") == []
    with pytest.raises(BlobUploadUnknown):
        await registry.uploads.get("app", session.id, "alice")


async def test_a_monolithic_upload_with_a_wrong_digest_stores_nothing(registry: Registry) -> None:
    wrong = Digest.of(b"expected")
    with pytest.raises(DigestInvalid):
        await registry.uploads.monolithic("app", wrong, body(b"received"))
    assert await registry.storage.size(paths.blob(wrong)) is None
    assert not await registry.blobs.linked("app", wrong)


async def test_checked_chunks_are_stored_as_they_end(registry: Registry) -> None:
    """`checked`: the caller hashed the bytes; the blob is kept and linked when they end."""
    digest = Digest.of(b"fetched")
    await registry.uploads.checked("cache", digest, body(b"fet", b"ched"))
    assert await _read(registry, digest) == b"fetched"
    assert await registry.blobs.linked("cache", digest)


async def test_checked_chunks_that_fail_before_their_end_store_nothing(
    registry: Registry,
) -> None:
    """The caller's check failing is an error raised into the chunks: nothing appears, and
    no partial file is left where a blob or its temporary copy would be."""
    digest = Digest.of(b"fetched")

    async def failing() -> AsyncIterator[bytes]:
        yield b"fet"
        raise DigestInvalid("the upstream sent other bytes")

    with pytest.raises(DigestInvalid):
        await registry.uploads.checked("cache", digest, failing())
    assert await registry.storage.size(paths.blob(digest)) is None
    assert not await registry.blobs.linked("cache", digest)
    assert [e async for page in registry.storage.walk("blobs") for e in page] == []


async def test_a_blob_already_stored_is_linked_and_the_copy_dropped(registry: Registry) -> None:
    digest = Digest.of(b"shared")
    await registry.uploads.monolithic("one", digest, body(b"shared"))
    session = await registry.uploads.start("two", "alice")
    await registry.uploads.append("two", session.id, "alice", body(b"shared"), None)
    await registry.uploads.finish("two", session.id, "alice", digest, None)
    assert await registry.blobs.linked("two", digest)
    assert await _read(registry, digest) == b"shared"
    assert await registry.storage.list("_uploads") == []


async def test_cancel_removes_the_session_and_its_data(registry: Registry) -> None:
    session = await registry.uploads.start("app", "alice")
    await registry.uploads.append("app", session.id, "alice", body(b"partial"), None)
    await registry.uploads.cancel("app", session.id, "alice")
    with pytest.raises(BlobUploadUnknown):
        await registry.uploads.get("app", session.id, "alice")
    assert await registry.storage.size(paths.upload_data(session.id)) is None
    with pytest.raises(BlobUploadUnknown):
        await registry.uploads.cancel("app", session.id, "alice")
