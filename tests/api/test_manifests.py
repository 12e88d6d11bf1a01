"""Manifests: every media type, validation on PUT, GET/HEAD by tag and digest, DELETE."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from registry.model.blobs import CHECK_BATCH
from tests.observe.helpers import Metrics, scrape
from tests.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    error_codes,
    image_manifest,
    push_blob,
    push_image,
)
from tests.server import RunningRegistry, raw_request


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_image_round_trip(app_client: httpx.Client, repo: str, media_type: str) -> None:
    pushed = push_image(app_client, repo, "v1", media_type=media_type, layers=2)
    for reference in ("v1", pushed.digest):
        r = app_client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": media_type})
        assert r.status_code == 200
        assert r.content == pushed.body
        assert r.headers["Content-Type"] == media_type
        assert r.headers["Docker-Content-Digest"] == pushed.digest
        head = app_client.head(f"/v2/{repo}/manifests/{reference}")
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(pushed.body))
        assert head.headers["Docker-Content-Digest"] == pushed.digest
        assert head.headers["Content-Type"] == media_type


def test_put_answers_location_and_digest(app_client: httpx.Client, repo: str) -> None:
    body, _ = image_manifest(app_client, repo)
    r = app_client.put(
        f"/v2/{repo}/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/{repo}/manifests/{digest_of(body)}"
    assert r.headers["Docker-Content-Digest"] == digest_of(body)
    assert "OCI-Subject" not in r.headers


@pytest.mark.parametrize(
    ("index_type", "child_type"), [(OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)]
)
def test_index_of_children(
    app_client: httpx.Client, repo: str, index_type: str, child_type: str
) -> None:
    children = [push_image(app_client, repo, f"c{i}", media_type=child_type) for i in range(2)]
    index = {
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": [
            {**descriptor(child_type, c.body), "platform": {"os": "linux", "architecture": arch}}
            for c, arch in zip(children, ["amd64", "arm64"], strict=True)
        ],
    }
    body = json.dumps(index).encode()
    r = app_client.put(
        f"/v2/{repo}/manifests/multi", content=body, headers={"Content-Type": index_type}
    )
    assert r.status_code == 201
    r = app_client.get(f"/v2/{repo}/manifests/multi")
    assert r.content == body
    assert r.headers["Content-Type"] == index_type


def test_index_with_missing_child_is_rejected(app_client: httpx.Client, repo: str) -> None:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, b"{}")],
        }
    ).encode()
    r = app_client.put(
        f"/v2/{repo}/manifests/multi", content=body, headers={"Content-Type": OCI_INDEX}
    )
    assert r.status_code == 400
    assert error_codes(r) == ["MANIFEST_UNKNOWN"]
    assert app_client.get(f"/v2/{repo}/manifests/multi").status_code == 404


def test_manifest_with_missing_blob_is_rejected(app_client: httpx.Client, repo: str) -> None:
    body, _ = image_manifest(app_client, repo, layers=1)
    missing = os.urandom(10)
    doc = json.loads(body)
    doc["layers"].append(descriptor("application/vnd.oci.image.layer.v1.tar", missing))
    r = app_client.put(
        f"/v2/{repo}/manifests/v1",
        content=json.dumps(doc).encode(),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 400
    assert error_codes(r) == ["MANIFEST_BLOB_UNKNOWN"]
    assert r.json()["errors"][0]["detail"] == {"digest": digest_of(missing)}
    assert app_client.get(f"/v2/{repo}/manifests/v1").status_code == 404


def test_blobs_of_another_repository_do_not_count(app_client: httpx.Client, repo: str) -> None:
    body, _ = image_manifest(app_client, f"{repo}-elsewhere")
    r = app_client.put(
        f"/v2/{repo}/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 400
    assert error_codes(r) == ["MANIFEST_BLOB_UNKNOWN"]


def test_foreign_layers_need_not_exist(app_client: httpx.Client, repo: str) -> None:
    body, _ = image_manifest(app_client, repo, media_type=DOCKER_MANIFEST)
    doc = json.loads(body)
    doc["layers"].append(
        descriptor(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            b"windows",
            urls=["https://example.invalid/layer"],
        )
    )
    r = app_client.put(
        f"/v2/{repo}/manifests/win",
        content=json.dumps(doc).encode(),
        headers={"Content-Type": DOCKER_MANIFEST},
    )
    assert r.status_code == 201


def test_put_by_digest(app_client: httpx.Client, repo: str) -> None:
    body, _ = image_manifest(app_client, repo)
    r = app_client.put(
        f"/v2/{repo}/manifests/{digest_of(body)}",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201
    assert app_client.get(f"/v2/{repo}/manifests/{digest_of(body)}").content == body
    assert app_client.get(f"/v2/{repo}/tags/list").json()["tags"] == []


def test_put_by_wrong_digest_is_digest_invalid(app_client: httpx.Client, repo: str) -> None:
    body, _ = image_manifest(app_client, repo)
    wrong = digest_of(body + b" ")
    r = app_client.put(
        f"/v2/{repo}/manifests/{wrong}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 400
    assert error_codes(r) == ["DIGEST_INVALID"]
    assert app_client.get(f"/v2/{repo}/manifests/{wrong}").status_code == 404
    assert app_client.get(f"/v2/{repo}/manifests/{digest_of(body)}").status_code == 404


def test_sha512_manifest_reference(app_client: httpx.Client, repo: str) -> None:
    body, _ = image_manifest(app_client, repo)
    digest = digest_of(body, "sha512")
    r = app_client.put(
        f"/v2/{repo}/manifests/{digest}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 201
    assert r.headers["Docker-Content-Digest"] == digest
    assert app_client.get(f"/v2/{repo}/manifests/{digest}").content == body


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json at all", OCI_MANIFEST),
        (
            b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
            OCI_MANIFEST,
        ),
        (b'{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}', "application/json"),
        (b"[1, 2]", OCI_MANIFEST),
    ],
)
def test_invalid_manifest_is_400(
    app_client: httpx.Client, repo: str, body: bytes, content_type: str
) -> None:
    r = app_client.put(
        f"/v2/{repo}/manifests/bad", content=body, headers={"Content-Type": content_type}
    )
    assert r.status_code == 400
    assert error_codes(r) == ["MANIFEST_INVALID"]
    assert app_client.get(f"/v2/{repo}/manifests/bad").status_code == 404


def test_content_type_must_agree_with_media_type(app_client: httpx.Client, repo: str) -> None:
    body, _ = image_manifest(app_client, repo)
    r = app_client.put(
        f"/v2/{repo}/manifests/v1", content=body, headers={"Content-Type": DOCKER_MANIFEST}
    )
    assert r.status_code == 400
    assert error_codes(r) == ["MANIFEST_INVALID"]
    assert "does not match" in r.json()["errors"][0]["message"]


INVALID_REFERENCES = [
    ".INVALID_MANIFEST_NAME",  # what the OCI conformance suite asks for
    "-bad",
    "a" * 129,
    "bad:tag",
    "sha256:zz",
    "sha256:" + "0" * 63,
    "md5:" + "0" * 32,
]


@pytest.mark.parametrize("reference", INVALID_REFERENCES)
def test_reading_an_invalid_reference_is_manifest_unknown(
    app_client: httpx.Client, repo: str, reference: str
) -> None:
    """The spec's only failure for a manifest GET or HEAD is 404; no manifest has that name."""
    push_image(app_client, repo)  # the repository exists: only the reference is wrong
    r = app_client.get(f"/v2/{repo}/manifests/{reference}")
    assert r.status_code == 404
    assert error_codes(r) == ["MANIFEST_UNKNOWN"]
    assert "is not a valid" in r.json()["errors"][0]["message"]
    assert app_client.head(f"/v2/{repo}/manifests/{reference}").status_code == 404


@pytest.mark.parametrize("reference", INVALID_REFERENCES)
def test_deleting_an_invalid_reference_is_manifest_unknown(
    app_client: httpx.Client, repo: str, reference: str
) -> None:
    """404, not 400: a 400 on DELETE tells clients that deletion is disabled."""
    pushed = push_image(app_client, repo)
    r = app_client.delete(f"/v2/{repo}/manifests/{reference}")
    assert r.status_code == 404
    assert error_codes(r) == ["MANIFEST_UNKNOWN"]
    assert app_client.get(f"/v2/{repo}/manifests/{pushed.digest}").status_code == 200


@pytest.mark.parametrize(
    ("reference", "code"),
    [
        (".INVALID_MANIFEST_NAME", "TAG_INVALID"),
        ("bad:tag", "DIGEST_INVALID"),
        ("sha256:zz", "DIGEST_INVALID"),
    ],
)
def test_putting_an_invalid_reference_is_400(
    app_client: httpx.Client, repo: str, reference: str, code: str
) -> None:
    body, _ = image_manifest(app_client, repo)
    r = app_client.put(
        f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 400
    assert error_codes(r) == [code]


def test_unknown_manifest(app_client: httpx.Client, repo: str) -> None:
    for reference in ("nope", digest_of(b"nope")):
        r = app_client.get(f"/v2/{repo}/manifests/{reference}")
        assert r.status_code == 404
        assert error_codes(r) == ["MANIFEST_UNKNOWN"]
        assert app_client.head(f"/v2/{repo}/manifests/{reference}").status_code == 404


def test_manifest_is_only_visible_in_its_repository(app_client: httpx.Client, repo: str) -> None:
    pushed = push_image(app_client, repo)
    assert app_client.get(f"/v2/{repo}-other/manifests/{pushed.digest}").status_code == 404


def test_retag_moves_the_tag(app_client: httpx.Client, repo: str) -> None:
    first = push_image(app_client, repo, "moving")
    second = push_image(app_client, repo, "moving")
    r = app_client.get(f"/v2/{repo}/manifests/moving")
    assert r.headers["Docker-Content-Digest"] == second.digest
    assert app_client.get(f"/v2/{repo}/manifests/{first.digest}").status_code == 200


def test_delete_by_tag_removes_only_the_tag(app_client: httpx.Client, repo: str) -> None:
    pushed = push_image(app_client, repo, "a")
    app_client.put(
        f"/v2/{repo}/manifests/b", content=pushed.body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert app_client.delete(f"/v2/{repo}/manifests/a").status_code == 202
    assert app_client.get(f"/v2/{repo}/manifests/a").status_code == 404
    assert app_client.get(f"/v2/{repo}/manifests/b").status_code == 200
    assert app_client.get(f"/v2/{repo}/manifests/{pushed.digest}").status_code == 200
    assert app_client.delete(f"/v2/{repo}/manifests/a").status_code == 404


def test_delete_by_digest_removes_manifest_and_its_tags(
    app_client: httpx.Client, repo: str
) -> None:
    pushed = push_image(app_client, repo, "a")
    app_client.put(
        f"/v2/{repo}/manifests/b", content=pushed.body, headers={"Content-Type": OCI_MANIFEST}
    )
    other = push_image(app_client, repo, "keep")
    r = app_client.delete(f"/v2/{repo}/manifests/{pushed.digest}")
    assert r.status_code == 202
    for reference in ("a", "b", pushed.digest):
        assert app_client.get(f"/v2/{repo}/manifests/{reference}").status_code == 404
    assert app_client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["keep"]
    assert app_client.get(f"/v2/{repo}/manifests/{other.digest}").status_code == 200
    r = app_client.delete(f"/v2/{repo}/manifests/{pushed.digest}")
    assert r.status_code == 404
    assert error_codes(r) == ["MANIFEST_UNKNOWN"]


def test_artifact_with_empty_config(app_client: httpx.Client, repo: str) -> None:
    empty = b"{}"
    push_blob(app_client, repo, empty)
    payload = os.urandom(64)
    push_blob(app_client, repo, payload)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.thing",
        "config": descriptor("application/vnd.oci.empty.v1+json", empty),
        "layers": [descriptor("application/octet-stream", payload)],
    }
    body = json.dumps(doc).encode()
    r = app_client.put(
        f"/v2/{repo}/manifests/art", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 201
    assert app_client.get(f"/v2/{repo}/manifests/art").content == body


def test_deeply_nested_manifest_is_manifest_invalid(app_client: httpx.Client, repo: str) -> None:
    for body in (b"[" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        r = app_client.put(
            f"/v2/{repo}/manifests/deep", content=body, headers={"Content-Type": OCI_MANIFEST}
        )
        assert r.status_code == 400
        assert error_codes(r) == ["MANIFEST_INVALID"]
        assert "levels deep" in r.json()["errors"][0]["message"]
    assert app_client.get(f"/v2/{repo}/manifests/deep").status_code == 404


# --- End to end, through the real server: a body streamed in chunks, a Content-Length Hypercorn
# refuses before the registry sees it, and counts read from the server process's metrics (in
# this process they would add up every application it runs).


def test_oversized_manifest_is_413(client: httpx.Client, repo: str) -> None:
    body, _ = image_manifest(client, repo)
    doc = json.loads(body)
    doc["annotations"] = {"padding": "x" * (4 * 1024 * 1024)}
    big = json.dumps(doc).encode()
    r = client.put(f"/v2/{repo}/manifests/big", content=big, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 413
    assert error_codes(r) == ["SIZE_INVALID"]

    def streamed() -> object:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = client.put(
        f"/v2/{repo}/manifests/big",
        content=streamed(),  # type: ignore[arg-type]
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 413
    assert client.get(f"/v2/{repo}/manifests/big").status_code == 404


def test_content_length_beyond_any_number_is_refused(
    registry_server: RunningRegistry, repo: str
) -> None:
    """The server refuses a `Content-Length` it cannot read before the registry sees it; what
    matters is that it is an answer, never a 500."""
    r = raw_request(
        registry_server,
        "PUT",
        f"/v2/{repo}/manifests/latest",
        {"Content-Type": OCI_MANIFEST, "Content-Length": "9" * 5000},
    )
    assert 400 <= r.status < 500


def _checks(metrics: Metrics) -> float:
    """Existence checks made so far: storage stats and index reads."""
    return metrics.value("registry_storage_action_seconds_count", action="size") + metrics.value(
        "registry_coordinator_action_seconds_count", action="index_read"
    )


def _put_counting_checks(
    server: RunningRegistry, client: httpx.Client, path: str, doc: object
) -> tuple[httpx.Response, float]:
    """PUT the manifest; the answer, and how many existence checks the server made for it."""
    before = scrape(server)
    r = client.put(path, content=json.dumps(doc).encode(), headers={"Content-Type": OCI_MANIFEST})
    return r, _checks(scrape(server)) - _checks(before)


def test_many_unknown_layers_stop_at_the_first(
    registry_server: RunningRegistry, client: httpx.Client, repo: str
) -> None:
    """25,000 layers the repository does not hold: the answer names the first, after checking
    about one batch of them, not every one (which held the worker for seconds)."""
    body, _ = image_manifest(client, repo, layers=1)
    doc = json.loads(body)
    unknown = [
        {"mediaType": OCI_LAYER, "digest": digest_of(os.urandom(16)), "size": 16}
        for _ in range(25_000)
    ]
    doc["layers"] += unknown
    r, checks = _put_counting_checks(registry_server, client, f"/v2/{repo}/manifests/huge", doc)
    assert r.status_code == 400
    assert error_codes(r) == ["MANIFEST_BLOB_UNKNOWN"]
    assert r.json()["errors"][0]["detail"] == {"digest": unknown[0]["digest"]}
    assert checks <= 2 * CHECK_BATCH + 8, checks
    assert client.get(f"/v2/{repo}/manifests/huge").status_code == 404


def test_many_known_layers_named_repeatedly_are_checked_once(
    registry_server: RunningRegistry, client: httpx.Client, repo: str
) -> None:
    layers = CHECK_BATCH + 6  # more than one batch
    body, _ = image_manifest(client, repo, layers=layers)
    doc = json.loads(body)
    doc["layers"] *= 3
    r, checks = _put_counting_checks(registry_server, client, f"/v2/{repo}/manifests/many", doc)
    assert r.status_code == 201, r.text
    assert checks <= 2 * (layers + 1) + 8, checks  # a link and a size per blob at most
    pulled = client.get(f"/v2/{repo}/manifests/many", headers={"Accept": OCI_MANIFEST})
    assert len(pulled.json()["layers"]) == 3 * layers
