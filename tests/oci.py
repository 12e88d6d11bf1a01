"""Small builders for pushing content over HTTP in tests."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = digest_of(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    return digest


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def index_body(
    children: Sequence[tuple[str, bytes, dict[str, str] | None]], *, docker: bool = False
) -> bytes:
    """An OCI index (or Docker manifest list) over `(media type, manifest, platform)` children."""
    manifests = [
        descriptor(kind, body, **({"platform": platform} if platform else {}))
        for kind, body, platform in children
    ]
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST if docker else OCI_INDEX,
        "manifests": manifests,
    }
    return json.dumps(doc, indent=2).encode()


@dataclass
class Pushed:
    digest: str
    body: bytes
    media_type: str
    blobs: list[bytes]


def image_manifest(
    client: httpx.Client,
    repo: str,
    *,
    layers: int = 1,
    media_type: str = OCI_MANIFEST,
    extra: dict[str, Any] | None = None,
    config: bytes | None = None,
    config_type: str = OCI_CONFIG,
) -> tuple[bytes, list[bytes]]:
    """Push a config and random layers, return (manifest body, blobs) without putting it."""
    config = config if config is not None else json.dumps({"seed": os.urandom(8).hex()}).encode()
    blobs = [config] + [os.urandom(256) for _ in range(layers)]
    for blob in blobs:
        push_blob(client, repo, blob)
    layer_type = (
        OCI_LAYER
        if media_type == OCI_MANIFEST
        else ("application/vnd.docker.image.rootfs.diff.tar.gzip")
    )
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(
            config_type
            if media_type == OCI_MANIFEST
            else "application/vnd.docker.container.image.v1+json",
            config,
        ),
        "layers": [descriptor(layer_type, b) for b in blobs[1:]],
    }
    doc.update(extra or {})
    return json.dumps(doc).encode(), blobs


def push_image(client: httpx.Client, repo: str, reference: str = "latest", **kwargs: Any) -> Pushed:
    media_type = kwargs.get("media_type", OCI_MANIFEST)
    body, blobs = image_manifest(client, repo, **kwargs)
    r = client.put(
        f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
    )
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == digest_of(body)
    return Pushed(digest_of(body), body, media_type, blobs)


def error_codes(response: httpx.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def follow_pages(client: httpx.Client, path: str, key: str, n: int) -> list[str]:
    """Walk every page through the `Link` header; each page has at most n entries."""
    seen: list[str] = []
    url: str | None = f"{path}?n={n}"
    for _ in range(100):
        if url is None:
            return seen
        r = client.get(url)
        assert r.status_code == 200
        page = r.json()[key]
        assert len(page) <= n
        seen += page
        link = r.headers.get("Link")
        if link is None:
            url = None
        else:
            assert link.endswith('>; rel="next"')
            url = link[1 : link.index(">")]
            assert parse_qs(urlsplit(url).query)["n"] == [str(n)]
    raise AssertionError("pagination did not end")
