"""What a collection keeps and deletes, on both backends, with the registry serving: nested
repositories, layers shared across repositories, index children, referrers, `-untagged`,
the grace window, dry runs, and a second collection at once."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.config.flags import parse_gc
from registry.gc.run import leadership_name
from registry.gc.sweep import BATCH
from registry.wiring import build_backends
from tests.gc.conftest import Store
from tests.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    Pushed,
    descriptor,
    digest_of,
    image_manifest,
    push_blob,
    push_image,
)
from tests.server import RunningRegistry

ARTIFACT = "application/vnd.example.signature"


def _put(client: httpx.Client, repo: str, reference: str, doc: dict[str, Any]) -> Pushed:
    body = json.dumps(doc).encode()
    media_type = doc["mediaType"]
    r = client.put(
        f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
    )
    assert r.status_code == 201, r.text
    return Pushed(digest_of(body), body, media_type, [])


def _image_sharing(client: httpx.Client, repo: str, shared: list[bytes], tag: str) -> Pushed:
    """An image whose layers are `shared` (pushed here too) plus one of its own."""
    config = json.dumps({"seed": os.urandom(8).hex()}).encode()
    own = os.urandom(300)
    blobs = [config, *shared, own]
    for blob in blobs:
        push_blob(client, repo, blob)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", b) for b in blobs[1:]],
    }
    pushed = _put(client, repo, tag, doc)
    return Pushed(pushed.digest, pushed.body, pushed.media_type, blobs)


def _index(client: httpx.Client, repo: str, tag: str) -> tuple[Pushed, list[Pushed]]:
    children = [push_image(client, repo, f"child{i}") for i in range(2)]
    for i in range(2):  # untag the children: only the index keeps them
        assert client.delete(f"/v2/{repo}/manifests/child{i}").status_code == 202
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            descriptor(OCI_MANIFEST, c.body, platform={"os": "linux", "architecture": arch})
            for c, arch in zip(children, ("amd64", "arm64"), strict=True)
        ],
    }
    return _put(client, repo, tag, doc), children


def _referrer(client: httpx.Client, repo: str, subject: Pushed) -> Pushed:
    """A signature-like artifact whose subject is `subject`, pushed by digest (untagged)."""
    empty = b"{}"
    payload = os.urandom(200)
    push_blob(client, repo, empty)
    push_blob(client, repo, payload)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT,
        "config": descriptor("application/vnd.oci.empty.v1+json", empty),
        "layers": [descriptor("application/octet-stream", payload)],
        "subject": descriptor(subject.media_type, subject.body),
    }
    body = json.dumps(doc).encode()
    pushed = _put(client, repo, digest_of(body), doc)
    return Pushed(pushed.digest, pushed.body, pushed.media_type, [empty, payload])


def _readable(client: httpx.Client, repo: str, pushed: Pushed) -> None:
    """The manifest and every blob it names read back byte-exact."""
    r = client.get(f"/v2/{repo}/manifests/{pushed.digest}", headers={"Accept": pushed.media_type})
    assert r.status_code == 200, r.text
    assert r.content == pushed.body
    for blob in pushed.blobs:
        got = client.get(f"/v2/{repo}/blobs/{digest_of(blob)}")
        assert got.status_code == 200, (repo, digest_of(blob))
        assert got.content == blob


def _blob_status(client: httpx.Client, repo: str, blob: bytes) -> int:
    return client.head(f"/v2/{repo}/blobs/{digest_of(blob)}").status_code


def test_unreferenced_blobs_go_and_everything_referenced_stays(
    store: Store, served: RunningRegistry
) -> None:
    with served.client() as client:
        shared = [os.urandom(500), os.urandom(500)]
        parent = _image_sharing(client, "team", shared, "v1")
        nested = _image_sharing(client, "team/app", shared, "v1")  # nested under `team`
        other = _image_sharing(client, "other", shared[:1], "v1")
        unreferenced = os.urandom(700)
        push_blob(client, "team/app", unreferenced)
        dropped = push_image(client, "team/app", "dropped", layers=2)
        assert client.delete(f"/v2/team/app/manifests/{dropped.digest}").status_code == 202

        run = store.gc("-grace", "0s", "-v")

        # the unreferenced blob, the dropped image's config and layers, and its manifest's
        # own content: nothing else
        assert run.deleted("blobs") == 1 + len(dropped.blobs) + 1, run.stderr
        assert run.report["links"] == 1 + len(dropped.blobs)
        assert run.report["outcome"] == "done"
        assert run.report["repositories"] == 3
        for repo, pushed in (("team", parent), ("team/app", nested), ("other", other)):
            _readable(client, repo, pushed)
        assert _blob_status(client, "team/app", unreferenced) == 404
        assert all(_blob_status(client, "team/app", b) == 404 for b in dropped.blobs)
        # the catalog still lists the nested repository and its parent
        names = client.get("/v2/_catalog").json()["repositories"]
        assert {"team", "team/app", "other"} <= set(names)

        again = store.gc("-grace", "0s")
        assert again.deleted("blobs") == 0
        assert again.deleted("manifests") == 0


@pytest.mark.parametrize("processes", ["1", "4"])
def test_the_bytes_freed_add_up_over_batches_deleted_at_once(
    fs_store: Store, processes: str
) -> None:
    """Unreferenced blobs for several delete batches, which run at once, in one process or
    split over four (registry.gc.shards): each batch's bytes count (a sum that read the
    total before awaiting its delete lost some: 9.8 MiB freed was reported as 4.8 to 7.8
    MiB), and each process's counts reach the report."""
    server = fs_store.serve()
    sizes = [300 + n for n in range(6 * BATCH)]
    with server.client() as client, ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda size: push_blob(client, "strays", os.urandom(size)), sizes))

    run = fs_store.gc("-grace", "0s", "-processes", processes, "-v")

    assert run.deleted("blobs") == len(sizes)
    assert run.report["blobs"]["bytes"] == sum(sizes)
    assert run.report["links"] == len(sizes)
    assert len(run.items()) == len(sizes)  # every process's `-v` lines, none twice
    assert run.report["empty_repositories"] == 1  # `strays` lost its last link
    assert fs_store.gc("-grace", "0s").deleted("blobs") == 0


def test_nothing_within_the_grace_window_goes(store: Store, served: RunningRegistry) -> None:
    with served.client() as client:
        push_blob(client, "lib", os.urandom(100))
        dropped = push_image(client, "lib", "x")
        assert client.delete(f"/v2/lib/manifests/{dropped.digest}").status_code == 202

        run = store.gc()  # the default hour

        assert run.deleted("blobs") == 0
        assert run.report["blobs"]["kept_recent"] == 1 + len(dropped.blobs) + 1
        assert all(_blob_status(client, "lib", b) == 200 for b in dropped.blobs)


def test_a_dry_run_deletes_nothing_and_reports_what_a_run_deletes(
    store: Store, served: RunningRegistry
) -> None:
    with served.client() as client:
        keep = push_image(client, "app", "keep", layers=2)
        for i in range(3):
            gone = push_image(client, "app", f"gone{i}", layers=2)
            assert client.delete(f"/v2/app/manifests/{gone.digest}").status_code == 202
        untagged = push_image(client, "app", "untag-me")
        assert client.delete("/v2/app/manifests/untag-me").status_code == 202

        dry = store.gc("-grace", "0s", "-untagged", "-dry-run", "-v")
        _readable(client, "app", untagged)  # still there
        real = store.gc("-grace", "0s", "-untagged", "-v")

        assert dry.report["dry_run"] is True
        assert real.report["dry_run"] is False
        assert [line.replace("would delete", "deleted") for line in dry.items()] == real.items()
        for kind in ("blobs", "manifests"):
            assert dry.report[kind] == real.report[kind]
        assert real.deleted("manifests") == 1
        assert real.deleted("blobs") == 3 * 4 + len(untagged.blobs) + 1
        _readable(client, "app", keep)


def test_untagged_keeps_what_tags_reach(store: Store, served: RunningRegistry) -> None:
    with served.client() as client:
        index, children = _index(client, "multi", "latest")
        signature = _referrer(client, "multi", index)  # a referrer of a kept manifest
        loose = push_image(client, "multi", "loose")
        assert client.delete("/v2/multi/manifests/loose").status_code == 202
        loose_signature = _referrer(client, "multi", loose)

        without = store.gc("-grace", "0s")
        assert without.deleted("manifests") == 0  # every revision is a root
        assert without.deleted("blobs") == 0

        run = store.gc("-grace", "0s", "-untagged", "-v")

        assert run.deleted("manifests") == 2, run.stderr  # `loose` and its signature
        assert f"deleted manifest multi@{loose.digest}" in run.items()
        assert f"deleted manifest multi@{loose_signature.digest}" in run.items()
        for child in children:
            _readable(client, "multi", child)
        _readable(client, "multi", signature)
        r = client.get(f"/v2/multi/referrers/{index.digest}")
        assert [d["digest"] for d in r.json()["manifests"]] == [signature.digest]
        for gone in (loose, loose_signature):
            assert client.get(f"/v2/multi/manifests/{gone.digest}").status_code == 404
        assert _blob_status(client, "multi", loose.blobs[-1]) == 404


def test_a_second_collection_exits_3_naming_the_first(
    store: Store, served: RunningRegistry
) -> None:
    import anyio

    settings, _ = parse_gc(store.flags, store.env)
    backends = build_backends(settings)

    async def hold() -> tuple[int, str]:
        name = leadership_name(backends.registry.store)
        try:
            async with backends.coord.leadership(name, "the test's holder"):
                busy = await anyio.to_thread.run_sync(lambda: store.gc(expect=3))
                waited = await anyio.to_thread.run_sync(lambda: store.gc("-wait", "1s", expect=3))
                assert waited.report["outcome"] == "busy"
                return busy.returncode, busy.stderr
        finally:
            await backends.close()

    status, stderr = anyio.run(hold)
    assert status == 3
    assert "another garbage collection holds this store: the test's holder, since" in stderr
    assert store.gc().report["outcome"] == "done"  # free again once the first ends


def test_a_manifest_naming_a_collected_blob_is_refused(
    store: Store, served: RunningRegistry
) -> None:
    with served.client() as client:
        body, blobs = image_manifest(client, "late", layers=1)
        store.gc("-grace", "0s")  # nothing names them yet, and the window is zero

        r = client.put(
            "/v2/late/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
        )

        assert r.status_code == 400
        assert r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
        assert client.get("/v2/late/manifests/v1").status_code == 404
        for blob in blobs:  # pushed again, the manifest goes in
            push_blob(client, "late", blob)
        again = client.put(
            "/v2/late/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
        )
        assert again.status_code == 201


def test_no_instance_presigns_a_swept_object(s3_store: Store, tmp_path: Path) -> None:
    """Instance A remembers where a chunked blob's bytes are (its S3 alias) from a pull; the
    collector sweeps the blob; instance B takes the same digest again (a new data object).
    A's next pull must redirect to the new object, not the swept one: A forgot what it
    remembered when it saw the collector's generation change."""
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "c.yaml").write_text(
        "apiVersion: simple-registry.dev/v1\nkind: Configuration\nmetadata: {name: c}\n"
        "spec: {storage: {s3: {redirect: true}}}\n"
    )
    a = s3_store.serve("-cfgdir", str(config))
    b = s3_store.serve("-cfgdir", str(config))
    big = os.urandom(9 * 1024 * 1024)  # a part and a tail: stored as an alias
    digest = digest_of(big)
    with a.client() as on_a, b.client() as on_b, httpx.Client(timeout=60) as plain:
        _chunked(on_a, "swept", big)
        first = on_a.get(f"/v2/swept/blobs/{digest}")
        assert first.status_code == 307
        assert plain.get(first.headers["Location"]).content == big  # A remembers the alias

        assert s3_store.gc("-grace", "0s").deleted("blobs") == 1
        _chunked(on_b, "swept", big)  # B stores it again: another data object

        again = on_a.get(f"/v2/swept/blobs/{digest}")
        assert again.status_code == 307
        assert plain.get(again.headers["Location"]).content == big


def _chunked(client: httpx.Client, repo: str, data: bytes) -> None:
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202
    r = client.patch(
        r.headers["Location"], content=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert r.status_code == 202, r.text
    r = client.put(r.headers["Location"], params={"digest": digest_of(data)})
    assert r.status_code == 201, r.text
