"""The referrers API: `subject` on PUT, the index, the `artifactType` filter."""

from __future__ import annotations

import json

import httpx

from tests.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    error_codes,
    push_blob,
    push_image,
)

SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"


def _push_referrer(
    client: httpx.Client,
    repo: str,
    subject: bytes,
    artifact_type: str | None,
    *,
    config_type: str | None = None,
) -> tuple[str, bytes]:
    config = b"{}"
    push_blob(client, repo, config)
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_type or "application/vnd.oci.empty.v1+json", config),
        "layers": [descriptor("application/octet-stream", config)],
        "subject": descriptor(OCI_MANIFEST, subject),
        "annotations": {"org.example.kind": artifact_type or "legacy"},
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    body = json.dumps(doc).encode()
    r = client.put(
        f"/v2/{repo}/manifests/{digest_of(body)}",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201
    assert r.headers["OCI-Subject"] == digest_of(subject)
    return digest_of(body), body


def test_referrers_index_and_filter(app_client: httpx.Client, repo: str) -> None:
    image = push_image(app_client, repo)
    sbom, sbom_body = _push_referrer(app_client, repo, image.body, SBOM)
    sig, _ = _push_referrer(app_client, repo, image.body, SIG)
    legacy, _ = _push_referrer(
        app_client, repo, image.body, None, config_type="application/vnd.example.legacy"
    )

    r = app_client.get(f"/v2/{repo}/referrers/{image.digest}")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in r.headers
    index = r.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert set(by_digest) == {sbom, sig, legacy}
    assert by_digest[sbom] == {
        "mediaType": OCI_MANIFEST,
        "digest": sbom,
        "size": len(sbom_body),
        "artifactType": SBOM,
        "annotations": {"org.example.kind": SBOM},
    }
    assert by_digest[legacy]["artifactType"] == "application/vnd.example.legacy"

    r = app_client.get(f"/v2/{repo}/referrers/{image.digest}", params={"artifactType": SBOM})
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in r.json()["manifests"]] == [sbom]


def test_referrer_can_be_pushed_before_its_subject(app_client: httpx.Client, repo: str) -> None:
    future_subject = b'{"not": "pushed yet"}'
    sbom, _ = _push_referrer(app_client, repo, future_subject, SBOM)
    r = app_client.get(f"/v2/{repo}/referrers/{digest_of(future_subject)}")
    assert [d["digest"] for d in r.json()["manifests"]] == [sbom]


def test_deleting_a_referrer_removes_it_from_the_index(app_client: httpx.Client, repo: str) -> None:
    image = push_image(app_client, repo)
    sbom, _ = _push_referrer(app_client, repo, image.body, SBOM)
    assert app_client.delete(f"/v2/{repo}/manifests/{sbom}").status_code == 202
    assert app_client.get(f"/v2/{repo}/referrers/{image.digest}").json()["manifests"] == []


def test_unknown_subject_gives_an_empty_index(app_client: httpx.Client, repo: str) -> None:
    r = app_client.get(f"/v2/{repo}/referrers/{digest_of(b'unknown')}")
    assert r.status_code == 200
    assert r.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_invalid_subject_digest_is_400(app_client: httpx.Client, repo: str) -> None:
    r = app_client.get(f"/v2/{repo}/referrers/sha256:nothex")
    assert r.status_code == 400
    assert error_codes(r) == ["DIGEST_INVALID"]
