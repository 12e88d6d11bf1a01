"""The model in-process on the embedded default: a FilesystemDriver and a LocalCoordinator
under the test's temporary directory, as one worker of `simple-registry serve` builds them."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from registry.coord.local import LocalCoordinator
from registry.model.registry import Registry
from registry.oci.digests import Digest
from registry.storage.filesystem import FilesystemDriver
from tests.oci import OCI_LAYER, OCI_MANIFEST, descriptor


async def body(*chunks: bytes) -> AsyncIterator[bytes]:
    """A request body arriving in these chunks."""
    for chunk in chunks:
        yield chunk


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    storage = FilesystemDriver(tmp_path / "data")
    return Registry(storage, LocalCoordinator(tmp_path / "data" / "_coord"), f"file://{tmp_path}")


async def push_blob(registry: Registry, name: str, data: bytes) -> Digest:
    digest = Digest.of(data)
    await registry.uploads.monolithic(name, digest, body(data))
    return digest


async def image(registry: Registry, name: str, *, layers: int = 1, **extra: object) -> bytes:
    """An image manifest whose config and layers are in `name`; the manifest is not put."""
    config = json.dumps({"seed": os.urandom(8).hex()}).encode()
    blobs = [os.urandom(64) for _ in range(layers)]
    for blob in [config, *blobs]:
        await push_blob(registry, name, blob)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor(OCI_LAYER, blob) for blob in blobs],
        **extra,
    }
    return json.dumps(doc).encode()
