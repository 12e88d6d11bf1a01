"""Seeding the upstream registry through its own HTTP API, and what was seeded.

The cache's tests compare what they pull through the cache with what the upstream holds, byte
for byte, so every push returns the exact manifest bytes, digests, media types and blob bytes.
Content goes straight to Distribution (not through the fault proxy, so seeding never shows in
the proxy's counters and never meets a fault), with a token minted for the push.
Layers are random bytes under a layer media type: registries never look inside them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from tests.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    index_body,
)

__all__ = ["DOCKER_LIST", "DOCKER_MANIFEST", "OCI_INDEX", "OCI_MANIFEST"]

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
PLATFORMS = ({"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"})
# A blob goes up in pieces of this size, so the 32 MiB one is not one request body.
UPLOAD_CHUNK = 8 * 1024 * 1024


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@dataclass(frozen=True)
class Blob:
    digest: str
    media_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class PushedImage:
    """One image manifest as stored upstream. `tag` is None for an index's child."""

    repo: str
    tag: str | None
    digest: str
    media_type: str
    manifest: bytes
    config: Blob
    layers: tuple[Blob, ...]
    platform: dict[str, str] | None = None

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """Config first, then the layers, as a puller fetches them."""
        return (self.config, *self.layers)


@dataclass(frozen=True)
class PushedIndex:
    """An OCI index or a Docker manifest list and its children, in manifest order."""

    repo: str
    tag: str
    digest: str
    media_type: str
    manifest: bytes
    children: tuple[PushedImage, ...]


class Pusher:
    """Pushes to `base_url` with a bearer token from `token(repo)` for each repository."""

    def __init__(self, base_url: str, token: Callable[[str], str]) -> None:
        self.base_url = base_url
        self._token = token

    def client(self, repo: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self._token(repo)}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60)

    def blob(self, http: httpx.Client, repo: str, data: bytes, media_type: str) -> Blob:
        """A chunked upload (POST, PATCHes, PUT ?digest=) as docker push does it."""
        digest = sha256(data)
        started = http.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        for offset in range(0, len(data), UPLOAD_CHUNK):
            piece = data[offset : offset + UPLOAD_CHUNK]
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(piece) - 1}",
            }
            patched = http.patch(location, content=piece, headers=headers)
            assert patched.status_code == 202, patched.text
            location = patched.headers["Location"]
        # `params=` would replace the location's own query (its `_state`): merge instead.
        done = http.put(httpx.URL(location).copy_merge_params({"digest": digest}))
        assert done.status_code == 201, done.text
        return Blob(digest, media_type, data)

    def manifest(
        self, http: httpx.Client, repo: str, reference: str, body: bytes, media_type: str
    ) -> str:
        put = http.put(
            f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
        )
        assert put.status_code == 201, put.text
        digest = sha256(body)
        assert put.headers["Docker-Content-Digest"] == digest
        return digest

    def image(
        self,
        repo: str,
        tag: str | None,
        layer_sizes: Sequence[int],
        *,
        docker: bool = False,
        platform: dict[str, str] | None = None,
    ) -> PushedImage:
        """Config and random layers, then the manifest under `tag` (by digest when None)."""
        media_type, config_type, layer_type = (
            (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
            if docker
            else (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
        )
        with self.client(repo) as http:
            layers = tuple(
                self.blob(http, repo, os.urandom(size), layer_type) for size in layer_sizes
            )
            config = self.blob(http, repo, image_config(layers, platform), config_type)
            doc = {
                "schemaVersion": 2,
                "mediaType": media_type,
                "config": config.descriptor(),
                "layers": [layer.descriptor() for layer in layers],
            }
            body = json.dumps(doc, indent=3).encode()  # not the canonical form a re-encoder makes
            digest = self.manifest(http, repo, tag or sha256(body), body, media_type)
        return PushedImage(repo, tag, digest, media_type, body, config, layers, platform)

    def artifact(self, repo: str, subject: PushedImage) -> PushedImage:
        """A signature-like OCI artifact whose `subject` is `subject`, pushed by digest."""
        with self.client(repo) as http:
            config = self.blob(http, repo, b"{}", "application/vnd.oci.empty.v1+json")
            layer = self.blob(http, repo, os.urandom(64), "application/vnd.example.signature")
            doc = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.example.signature",
                "config": config.descriptor(),
                "layers": [layer.descriptor()],
                "subject": {
                    "mediaType": subject.media_type,
                    "digest": subject.digest,
                    "size": len(subject.manifest),
                },
            }
            body = json.dumps(doc).encode()
            digest = self.manifest(http, repo, sha256(body), body, OCI_MANIFEST)
        return PushedImage(repo, None, digest, OCI_MANIFEST, body, config, (layer,))

    def index(self, repo: str, tag: str, *, docker: bool = False) -> PushedIndex:
        """Two platform images (linux/amd64, linux/arm64) pushed by digest, then their index
        (OCI) or manifest list (Docker schema 2) under `tag`."""
        children = tuple(
            self.image(repo, None, (512, 1024), docker=docker, platform=p) for p in PLATFORMS
        )
        media_type = DOCKER_LIST if docker else OCI_INDEX
        body = index_body([(c.media_type, c.manifest, c.platform) for c in children], docker=docker)
        with self.client(repo) as http:
            digest = self.manifest(http, repo, tag, body, media_type)
        return PushedIndex(repo, tag, digest, media_type, body, children)


def image_config(layers: Sequence[Blob], platform: dict[str, str] | None) -> bytes:
    """A plausible image config; the random salt keeps two pushes of one shape distinct."""
    platform = platform or {"architecture": "amd64", "os": "linux"}
    return json.dumps(
        {
            **platform,
            "config": {"Labels": {"test.salt": os.urandom(8).hex()}},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        }
    ).encode()
