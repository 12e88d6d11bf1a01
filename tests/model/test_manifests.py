"""Manifests in the model: put by tag or digest, resolve, content, delete, and the checks a
put makes before anything becomes visible."""

from __future__ import annotations

import json

import pytest

from registry.model import paths
from registry.model.manifests import ManifestRef
from registry.model.registry import Registry
from registry.oci.digests import Digest
from registry.oci.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestChildUnknown,
    ManifestInvalid,
    ManifestUnknown,
    TagInvalid,
)
from tests.model.conftest import image, push_blob
from tests.oci import OCI_INDEX, OCI_MANIFEST, descriptor

pytestmark = pytest.mark.anyio


async def test_put_by_tag_then_resolve_by_tag_and_digest(registry: Registry) -> None:
    body = await image(registry, "app")
    stored = await registry.manifests.put("app", "v1", body, OCI_MANIFEST)
    ref = ManifestRef(Digest.of(body), OCI_MANIFEST, len(body))
    assert stored.ref == ref
    assert await registry.manifests.resolve("app", "v1") == ref
    assert await registry.manifests.resolve("app", str(ref.digest)) == ref
    assert await registry.manifests.content(ref) == body
    assert ManifestRef.decode(ref.encode()) == ref


async def test_put_by_digest_makes_no_tag(registry: Registry) -> None:
    body = await image(registry, "app")
    digest = Digest.of(body)
    await registry.manifests.put("app", str(digest), body, OCI_MANIFEST)
    assert (await registry.manifests.resolve("app", str(digest))).digest == digest
    assert (await registry.listing.tags("app", None, None)).items == []


async def test_a_digest_that_does_not_match_the_body_is_refused(registry: Registry) -> None:
    body = await image(registry, "app")
    other = Digest.of(b"something else")
    with pytest.raises(DigestInvalid, match=f"not {other}"):
        await registry.manifests.put("app", str(other), body, OCI_MANIFEST)
    with pytest.raises(ManifestUnknown):
        await registry.manifests.resolve("app", str(Digest.of(body)))


async def test_a_missing_blob_is_named_and_nothing_is_stored(registry: Registry) -> None:
    body = await image(registry, "app")
    doc = json.loads(body)
    doc["layers"].append(descriptor(doc["layers"][0]["mediaType"], b"never pushed"))
    broken = json.dumps(doc).encode()
    with pytest.raises(ManifestBlobUnknown) as caught:
        await registry.manifests.put("app", "v1", broken, OCI_MANIFEST)
    assert str(Digest.of(b"never pushed")) in str(caught.value)
    with pytest.raises(ManifestUnknown):
        await registry.manifests.resolve("app", "v1")
    assert await registry.storage.size(paths.blob(Digest.of(broken))) is None


async def test_a_blob_of_another_repository_does_not_count(registry: Registry) -> None:
    body = await image(registry, "other")
    with pytest.raises(ManifestBlobUnknown):
        await registry.manifests.put("app", "v1", body, OCI_MANIFEST)


async def test_an_index_needs_its_child_manifests_in_the_repository(registry: Registry) -> None:
    child = await image(registry, "app")
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, child)]}
    ).encode()
    with pytest.raises(ManifestChildUnknown) as caught:
        await registry.manifests.put("app", "multi", index, OCI_INDEX)
    assert str(Digest.of(child)) in str(caught.value)
    await registry.manifests.put("app", str(Digest.of(child)), child, OCI_MANIFEST)
    stored = await registry.manifests.put("app", "multi", index, OCI_INDEX)
    assert stored.ref.media_type == OCI_INDEX


@pytest.mark.parametrize("reference", ["-starts-with-dash", "has/slash", "x" * 129])
async def test_an_invalid_tag_is_refused(registry: Registry, reference: str) -> None:
    body = await image(registry, "app")
    with pytest.raises(TagInvalid):
        await registry.manifests.put("app", reference, body, OCI_MANIFEST)
    with pytest.raises(TagInvalid):
        await registry.manifests.resolve("app", reference)


async def test_a_body_that_is_no_manifest_is_refused(registry: Registry) -> None:
    await push_blob(registry, "app", b"layer")
    with pytest.raises(ManifestInvalid):
        await registry.manifests.put("app", "v1", b"not json", OCI_MANIFEST)
    with pytest.raises(ManifestUnknown):
        await registry.manifests.resolve("app", "v1")


async def test_moving_a_tag_leaves_the_old_manifest_by_digest(registry: Registry) -> None:
    first, second = await image(registry, "app"), await image(registry, "app")
    await registry.manifests.put("app", "v1", first, OCI_MANIFEST)
    await registry.manifests.put("app", "v1", second, OCI_MANIFEST)
    assert (await registry.manifests.resolve("app", "v1")).digest == Digest.of(second)
    assert (await registry.manifests.resolve("app", str(Digest.of(first)))).size == len(first)


async def test_delete_by_tag_keeps_the_manifest(registry: Registry) -> None:
    body = await image(registry, "app")
    await registry.manifests.put("app", "v1", body, OCI_MANIFEST)
    await registry.manifests.delete("app", "v1")
    with pytest.raises(ManifestUnknown):
        await registry.manifests.resolve("app", "v1")
    assert (await registry.manifests.resolve("app", str(Digest.of(body)))).size == len(body)
    with pytest.raises(ManifestUnknown):
        await registry.manifests.delete("app", "v1")  # gone already


async def test_delete_by_digest_removes_its_tags_but_not_other_manifests(
    registry: Registry,
) -> None:
    body, other = await image(registry, "app"), await image(registry, "app")
    for tag in ("v1", "latest"):
        await registry.manifests.put("app", tag, body, OCI_MANIFEST)
    await registry.manifests.put("app", "v2", other, OCI_MANIFEST)
    await registry.manifests.delete("app", str(Digest.of(body)))
    for reference in ("v1", "latest", str(Digest.of(body))):
        with pytest.raises(ManifestUnknown):
            await registry.manifests.resolve("app", reference)
    assert (await registry.listing.tags("app", None, None)).items == ["v2"]
    with pytest.raises(ManifestUnknown):
        await registry.manifests.delete("app", str(Digest.of(body)))


async def test_content_of_a_manifest_whose_blob_is_gone_is_unknown(registry: Registry) -> None:
    body = await image(registry, "app")
    ref = (await registry.manifests.put("app", "v1", body, OCI_MANIFEST)).ref
    await registry.storage.delete(paths.blob(ref.digest))
    with pytest.raises(ManifestUnknown):
        await registry.manifests.content(ref)


async def test_a_referrer_is_listed_under_its_subject_until_deleted(registry: Registry) -> None:
    subject = await image(registry, "app")
    subject_ref = (await registry.manifests.put("app", "v1", subject, OCI_MANIFEST)).ref
    signature = await image(
        registry,
        "app",
        subject={
            "mediaType": OCI_MANIFEST,
            "digest": str(subject_ref.digest),
            "size": len(subject),
        },
        artifactType="application/example.signature",
    )
    ref = (
        await registry.manifests.put("app", str(Digest.of(signature)), signature, OCI_MANIFEST)
    ).ref
    listed = await registry.manifests.referrers("app", subject_ref.digest, None)
    assert [entry["digest"] for entry in listed] == [str(ref.digest)]
    assert listed[0]["artifactType"] == "application/example.signature"
    assert await registry.manifests.referrers("app", subject_ref.digest, "other/type") == []
    await registry.manifests.delete("app", str(ref.digest))
    assert await registry.manifests.referrers("app", subject_ref.digest, None) == []
