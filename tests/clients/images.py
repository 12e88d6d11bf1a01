"""Build OCI image layouts (image-spec v1.1 `oci-layout` directories) for the client tests.

Layers are gzip-compressed tars holding one file of random bytes, so every test pushes content no
other test has, and the config carries the right `rootfs.diff_ids` so that clients which unpack
(containerd) accept the image. Gzip output is made reproducible (`mtime=0`), so a blob's digest
depends only on its content. `read_tree` walks what a client wrote back into a layout, so a test
can compare digests on both sides of a round trip.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"

MiB = 1024 * 1024

_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str

    def to_json(self) -> dict[str, str]:
        return {"architecture": self.architecture, "os": self.os}


def host_platform() -> Platform:
    """The platform a local daemon unpacks by default (Go's names for the machine)."""
    machine = platform.machine().lower()
    return Platform("linux", _GOARCH.get(machine, machine))


AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform is not None:
            doc["platform"] = self.platform.to_json()
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Descriptor:
        plat = doc.get("platform")
        return cls(
            media_type=doc["mediaType"],
            digest=doc["digest"],
            size=doc["size"],
            platform=Platform(plat["os"], plat["architecture"]) if plat else None,
            annotations=dict(doc.get("annotations") or {}),
        )

    def with_platform(self, plat: Platform | None) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size, plat, self.annotations)


@dataclass(frozen=True)
class Layer:
    """One layer: the uncompressed tar's digest (the diff ID) and its gzip bytes."""

    diff_id: str
    compressed: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.compressed)


@dataclass(frozen=True)
class Image:
    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageIndex:
    index: Descriptor
    images: tuple[Image, ...]


@dataclass(frozen=True)
class Tree:
    """What a layout holds under one descriptor: every manifest, config and layer digest."""

    root: Descriptor
    manifests: dict[str, dict[str, Any]]
    configs: frozenset[str]
    layers: frozenset[str]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def random_layer(size: int, name: str = "payload.bin") -> Layer:
    """A gzip tar with a directory and one file of `size` random (incompressible) bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo("data")
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        tar.addfile(folder)
        member = tarfile.TarInfo(f"data/{name}")
        member.size = size
        member.mode = 0o644
        tar.addfile(member, io.BytesIO(os.urandom(size)))
    tar_bytes = raw.getvalue()
    compressed = gzip.compress(tar_bytes, compresslevel=1, mtime=0)
    return Layer(diff_id=sha256_digest(tar_bytes), compressed=compressed)


class OCILayout:
    """An `oci-layout` directory: `oci-layout`, `index.json` and `blobs/<alg>/<hex>`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        layout_file = root / "oci-layout"
        if not layout_file.exists():
            layout_file.write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        if not (root / "index.json").exists():
            self._write_index([])

    # --- blobs -------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hex_part = digest.partition(":")
        return self.root / "blobs" / algorithm / hex_part

    def read_blob(self, digest: str) -> bytes:
        data = self.blob_path(digest).read_bytes()
        actual = sha256_digest(data)
        if actual != digest:
            raise AssertionError(f"blob {digest} in {self.root} holds content {actual}")
        return data

    def write_blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = sha256_digest(data)
        self.blob_path(digest).write_bytes(data)
        return Descriptor(media_type, digest, len(data))

    # --- images ------------------------------------------------------------------------------

    def add_image(
        self,
        layers: Sequence[Layer],
        plat: Platform | None = None,
        *,
        docker_types: bool = False,
    ) -> Image:
        """An image manifest (OCI, or Docker schema 2 with `docker_types`) and its blobs."""
        plat = plat or host_platform()
        manifest_type, config_type, layer_type = (
            (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP)
            if docker_types
            else (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP)
        )
        layer_descs = tuple(self.write_blob(layer.compressed, layer_type) for layer in layers)
        config = {
            "architecture": plat.architecture,
            "os": plat.os,
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            "history": [{"created": "2024-01-01T00:00:00Z", "comment": "test layer"}] * len(layers),
        }
        config_desc = self.write_blob(canonical_json(config), config_type)
        manifest = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config_desc.to_json(),
            "layers": [desc.to_json() for desc in layer_descs],
        }
        manifest_desc = self.write_blob(canonical_json(manifest), manifest_type)
        return Image(manifest_desc.with_platform(plat), config_desc, layer_descs)

    def add_index(self, images: Sequence[Image]) -> ImageIndex:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [image.manifest.to_json() for image in images],
        }
        return ImageIndex(self.write_blob(canonical_json(index), OCI_INDEX), tuple(images))

    def tag(self, descriptor: Descriptor, name: str) -> None:
        """Name `descriptor` in index.json (the `oci:DIR:name` reference skopeo resolves)."""
        entries = [
            entry
            for entry in self._read_index()
            if (entry.get("annotations") or {}).get(REF_NAME) != name
        ]
        entry = descriptor.to_json()
        entry.pop("platform", None)
        entry["annotations"] = {**entry.get("annotations", {}), REF_NAME: name}
        entries.append(entry)
        self._write_index(entries)

    # --- reading back ------------------------------------------------------------------------

    def lookup(self, name: str) -> Descriptor:
        for entry in self._read_index():
            if (entry.get("annotations") or {}).get(REF_NAME) == name:
                return Descriptor.from_json(entry)
        raise KeyError(f"no {name!r} in {self.root / 'index.json'}")

    def entries(self) -> list[Descriptor]:
        return [Descriptor.from_json(entry) for entry in self._read_index()]

    def read_tree(self, root: Descriptor) -> Tree:
        manifests: dict[str, dict[str, Any]] = {}
        configs: set[str] = set()
        layers: set[str] = set()
        for desc, doc in self._walk(root):
            manifests[desc.digest] = doc
            if "config" in doc:
                configs.add(doc["config"]["digest"])
                self.read_blob(doc["config"]["digest"])
                for layer in doc.get("layers", []):
                    layers.add(layer["digest"])
                    self.read_blob(layer["digest"])
        return Tree(root, manifests, frozenset(configs), frozenset(layers))

    def _walk(self, desc: Descriptor) -> Iterator[tuple[Descriptor, dict[str, Any]]]:
        data = self.read_blob(desc.digest)
        if len(data) != desc.size:
            raise AssertionError(f"{desc.digest} is {len(data)} bytes, descriptor says {desc.size}")
        doc: dict[str, Any] = json.loads(data)
        yield desc, doc
        for child in doc.get("manifests", []):
            yield from self._walk(Descriptor.from_json(child))

    def _read_index(self) -> list[dict[str, Any]]:
        doc = json.loads((self.root / "index.json").read_text())
        manifests: list[dict[str, Any]] = doc.get("manifests") or []
        return manifests

    def _write_index(self, entries: list[dict[str, Any]]) -> None:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        (self.root / "index.json").write_text(json.dumps(doc, indent=2))


def push_over_http(
    http: httpx.Client, repo: str, layout: OCILayout, image: Image, tag: str
) -> None:
    """Upload an image with plain API calls (monolithic POSTs, then the manifest PUT)."""
    for desc in (image.config, *image.layers):
        done = http.post(
            f"/v2/{repo}/blobs/uploads/",
            params={"digest": desc.digest},
            content=layout.read_blob(desc.digest),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert done.status_code == 201, f"blob {desc.digest}: {done.status_code} {done.text}"
    put = http.put(
        f"/v2/{repo}/manifests/{tag}",
        content=layout.read_blob(image.manifest.digest),
        headers={"Content-Type": image.manifest.media_type},
    )
    assert put.status_code == 201, f"manifest: {put.status_code} {put.text}"
    assert put.headers["docker-content-digest"] == image.manifest.digest
