"""What the browser tests browse: content pushed over plain HTTP, built here in Python.

Every kind of manifest the web UI draws differently is here once, small (layers of a few
KiB) and with the fields its views show: an OCI index over two platforms and a Docker
manifest list (platform tables and drill-down), an image with a full config (created, user,
entrypoint, cmd, env, labels, exposed ports, a history with an empty layer) and two kinds of
referrers (a signature and an SBOM), an OCI artifact with named files and a signature of its
own, a nested repository, a repository with 300 tags, a private repository the reader and
anonymous visitors may not see, and repositories the deletion tests may empty.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    index_body,
    push_blob,
)

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM_TYPE = "application/spdx+json"
BUNDLE_TYPE = "application/vnd.example.docs.bundle.v1"
TITLE = "org.opencontainers.image.title"

LAYER_SIZES = (2_345, 10_240)
MANY_TAGS = tuple(f"t{n:03d}" for n in range(300))


@dataclass(frozen=True)
class Manifest:
    repo: str
    digest: str
    body: bytes
    media_type: str

    @property
    def doc(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass(frozen=True)
class Image(Manifest):
    config: dict[str, Any] = field(default_factory=dict)
    config_bytes: bytes = b""
    platform: str = ""

    @property
    def layer_sizes(self) -> list[int]:
        return [layer["size"] for layer in self.doc["layers"]]


@dataclass(frozen=True)
class Index(Manifest):
    children: tuple[Image, ...] = ()


@dataclass
class Content:
    """What was pushed, for the tests to compare the pages with."""

    index: Index
    docker_list: Index
    image: Image
    signature: Manifest
    sbom: Manifest
    artifact: Manifest
    artifact_signature: Manifest
    many: list[Image]
    private: Image
    # Deletion tests: `scratch/tags` has `keep` and `drop` (two manifests); in
    # `scratch/manifests` `one`, `two` and `three` name one manifest and `other` another.
    scratch_tags: dict[str, Image]
    scratch_manifests: dict[str, Image]

    @property
    def public_repositories(self) -> set[str]:
        return {self.index.repo, self.docker_list.repo}

    @property
    def repositories(self) -> set[str]:
        return {
            self.index.repo,
            self.docker_list.repo,
            self.image.repo,
            self.artifact.repo,
            self.many[0].repo,
            self.private.repo,
            next(iter(self.scratch_tags.values())).repo,
            next(iter(self.scratch_manifests.values())).repo,
        }


def image_config(platform: str, created: str, layers: Sequence[bytes]) -> dict[str, Any]:
    """A config as `docker build` writes it: the fields the UI's config panel shows."""
    os_name, architecture = platform.split("/")
    return {
        "created": created,
        "architecture": architecture,
        "os": os_name,
        "config": {
            "User": "app:app",
            "Entrypoint": ["/usr/local/bin/api"],
            "Cmd": ["--listen", ":8080"],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "APP_ENV=production"],
            "WorkingDir": "/srv",
            "ExposedPorts": {"8080/tcp": {}, "9090/tcp": {}},
            "Labels": {
                "org.opencontainers.image.source": "https://example.org/team/app",
                "org.opencontainers.image.version": "1.0.0",
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [digest_of(layer) for layer in layers]},
        "history": [
            {"created": created, "created_by": "/bin/sh -c #(nop) ADD file:4f3a in / "},
            {
                "created": created,
                "created_by": "/bin/sh -c #(nop)  ENV APP_ENV=production",
                "empty_layer": True,
            },
            {"created": created, "created_by": "COPY api /usr/local/bin/api # buildkit"},
        ],
    }


def put_manifest(
    client: httpx.Client, repo: str, reference: str, body: bytes, media_type: str
) -> str:
    r = client.put(
        f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
    )
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == digest_of(body)
    return digest_of(body)


def push_image(
    client: httpx.Client,
    repo: str,
    tags: Sequence[str],
    *,
    platform: str = "linux/amd64",
    created: str = "2024-06-02T08:30:00Z",
    docker: bool = False,
) -> Image:
    """Two random layers and a full config, then the manifest under each tag (or by digest)."""
    layers = [os.urandom(size) for size in LAYER_SIZES]
    config = image_config(platform, created, layers)
    config_bytes = json.dumps(config, indent=2).encode()
    media_type, config_type, layer_type = (
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
        if docker
        else (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
    )
    for blob in (config_bytes, *layers):
        push_blob(client, repo, blob)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config_type, config_bytes),
        "layers": [descriptor(layer_type, layer) for layer in layers],
    }
    if not docker:
        doc["annotations"] = {"org.opencontainers.image.created": created}
    body = json.dumps(doc, indent=3).encode()
    for reference in tags or [digest_of(body)]:
        put_manifest(client, repo, reference, body, media_type)
    return Image(repo, digest_of(body), body, media_type, config, config_bytes, platform)


def push_index(client: httpx.Client, repo: str, tag: str, *, docker: bool = False) -> Index:
    """linux/amd64 and linux/arm64 images pushed by digest, then their OCI index (or Docker
    manifest list) under `tag`."""
    children = tuple(
        push_image(client, repo, [], platform=p, created="2024-05-01T10:00:00Z", docker=docker)
        for p in ("linux/amd64", "linux/arm64")
    )
    media_type = DOCKER_LIST if docker else OCI_INDEX
    body = index_body(
        [
            (
                c.media_type,
                c.body,
                dict(zip(("os", "architecture"), c.platform.split("/"), strict=True)),
            )
            for c in children
        ],
        docker=docker,
    )
    digest = put_manifest(client, repo, tag, body, media_type)
    return Index(repo, digest, body, media_type, children)


def push_artifact(
    client: httpx.Client,
    repo: str,
    tag: str | None,
    artifact_type: str,
    files: dict[str, tuple[str, bytes]],
    *,
    subject: Manifest | None = None,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    """An OCI artifact (empty config, `artifactType`, one layer per named file); with a
    `subject` it is a referrer of that manifest, pushed by digest as `oras attach` does."""
    push_blob(client, repo, b"{}")
    layers = []
    for name, (media_type, data) in files.items():
        push_blob(client, repo, data)
        layers.append(descriptor(media_type, data, annotations={TITLE: name}))
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(EMPTY_CONFIG, b"{}"),
        "layers": layers,
        "annotations": {"org.opencontainers.image.created": "2024-06-03T09:00:00Z"}
        | (annotations or {}),
    }
    if subject is not None:
        doc["subject"] = {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": len(subject.body),
        }
    body = json.dumps(doc).encode()
    digest = put_manifest(client, repo, tag or digest_of(body), body, OCI_MANIFEST)
    return Manifest(repo, digest, body, OCI_MANIFEST)


def sign(client: httpx.Client, subject: Manifest) -> Manifest:
    """A cosign-style signature of `subject`, as a referrer."""
    payload = json.dumps(
        {"critical": {"image": {"docker-manifest-digest": subject.digest}, "type": "cosign"}}
    ).encode()
    return push_artifact(
        client,
        subject.repo,
        None,
        SIGNATURE_TYPE,
        {"signature.json": ("application/vnd.dev.cosign.simplesigning.v1+json", payload)},
        subject=subject,
        annotations={"dev.cosignproject.cosign/signature": "MEUCIQDfakesignature=="},
    )


def push_content(client: httpx.Client) -> Content:
    """Everything the browser tests look at, pushed with the admin's client."""
    image = push_image(client, "team/app/api", ["1.0", "stable"])
    sbom_doc = json.dumps({"spdxVersion": "SPDX-2.3", "name": "team/app/api"}).encode()
    artifact = push_artifact(
        client,
        "team/app/bundle",
        "0.1.0",
        BUNDLE_TYPE,
        {
            "README.md": ("text/markdown", b"# The bundle\n\nDocumentation.\n"),
            "data.json": ("application/json", b'{"answer": 42}\n'),
        },
        annotations={"org.opencontainers.image.description": "Documents of the app"},
    )
    many = [
        push_image(client, "tags/many", [], created=f"2024-0{month}-15T12:00:00Z")
        for month in (1, 2, 3)
    ]
    for n, tag in enumerate(MANY_TAGS):
        chosen = many[n % len(many)]
        put_manifest(client, chosen.repo, tag, chosen.body, chosen.media_type)
    scratch = push_image(client, "scratch/manifests", ["one", "two", "three"])
    return Content(
        index=push_index(client, "public/multi", "1.0"),
        docker_list=push_index(client, "public/dockerlist", "1.0", docker=True),
        image=image,
        signature=sign(client, image),
        sbom=push_artifact(
            client,
            image.repo,
            None,
            SBOM_TYPE,
            {"sbom.spdx.json": (SBOM_TYPE, sbom_doc)},
            subject=image,
        ),
        artifact=artifact,
        artifact_signature=sign(client, artifact),
        many=many,
        private=push_image(client, "private/secret", ["1.0"]),
        scratch_tags={
            "keep": push_image(client, "scratch/tags", ["keep"]),
            "drop": push_image(client, "scratch/tags", ["drop"]),
        },
        scratch_manifests={
            "one": scratch,
            "two": scratch,
            "three": scratch,
            "other": push_image(client, "scratch/manifests", ["other"]),
        },
    )
