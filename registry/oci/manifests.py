"""Manifest parsing and validation: what a PUT body must look like, and what it refers to.

The result names every blob and child manifest the manifest depends on, so the model can check
that each exists in the repository before the manifest becomes visible: a manifest that can be
pulled never names content that cannot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from registry.oci import mediatypes as mt
from registry.oci.digests import Digest
from registry.oci.errors import DigestInvalid, ManifestInvalid

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# How deep arrays and objects may nest. A real manifest nests five levels at most (the
# document, `manifests`, a descriptor, its `platform`, `os.features`); twenty times that
# leaves room for any extension, and stays far below the depth at which Python's recursive
# JSON parser gives up (about 900 levels, less the stack the request already uses), so the
# bound is the same on every path instead of depending on the caller's stack.
MAX_MANIFEST_DEPTH = 100


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()

    @property
    def distributable(self) -> bool:
        """Foreign layers live elsewhere; a registry is not asked to hold them."""
        return self.media_type not in mt.NON_DISTRIBUTABLE and not self.urls


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    blobs: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    config_media_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def referrer_artifact_type(self) -> str | None:
        """What the referrers API reports: `artifactType`, else the config media type."""
        return self.artifact_type or self.config_media_type


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """Validate a manifest body against its declared type; raise MANIFEST_INVALID otherwise."""
    too_deep = ManifestInvalid(
        f"manifest nests arrays and objects more than {MAX_MANIFEST_DEPTH} levels deep"
    )
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from None
    except RecursionError:  # thousands of levels: the parser stopped before we could look
        raise too_deep from None
    if _depth(doc, MAX_MANIFEST_DEPTH) > MAX_MANIFEST_DEPTH:
        raise too_deep
    if not isinstance(doc, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    version = doc.get("schemaVersion")
    if isinstance(version, bool) or version != 2:
        if version == 1 and not isinstance(version, bool):
            raise ManifestInvalid("Docker schema 1 manifests are not supported")
        raise ManifestInvalid("schemaVersion must be 2")

    media_type = _media_type(doc, content_type)
    subject = _optional_descriptor(doc, "subject")
    artifact_type = _optional_str(doc, "artifactType")
    annotations = _annotations(doc)

    if media_type in mt.INDEXES:
        children = _descriptor_list(doc, "manifests", required=True)
        return Manifest(
            media_type=media_type,
            children=children,
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
        )

    config = _descriptor(doc.get("config"), "config")
    layers = _descriptor_list(doc, "layers", required=media_type == mt.DOCKER_MANIFEST)
    return Manifest(
        media_type=media_type,
        blobs=(config, *layers),
        subject=subject,
        artifact_type=artifact_type,
        config_media_type=config.media_type,
        annotations=annotations,
    )


def _depth(doc: Any, limit: int) -> int:
    """How deep `doc` nests, counted up to `limit + 1`: one level at a time, without recursion,
    touching each value once (a 4 MiB manifest takes milliseconds)."""
    level = [doc]
    depth = 0
    while level and depth <= limit:
        depth += 1
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
    return depth


def _media_type(doc: dict[str, Any], content_type: str | None) -> str:
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string")
    header = mt.base_type(content_type)
    if declared and header and declared != header:
        raise ManifestInvalid(
            f"manifest mediaType {declared!r} does not match Content-Type {header!r}"
        )
    media_type = declared or header
    if not media_type:
        media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
    if media_type in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED):
        raise ManifestInvalid("Docker schema 1 manifests are not supported")
    if media_type not in mt.MANIFESTS:
        raise ManifestInvalid(f"unsupported manifest media type {media_type!r}")
    return media_type


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestInvalid(f"{where}.mediaType must be a non-empty string")
    digest = value.get("digest")
    if not isinstance(digest, str):
        raise ManifestInvalid(f"{where}.digest must be a string")
    try:
        parsed = Digest.parse(digest)
    except DigestInvalid as exc:
        raise ManifestInvalid(f"{where}.digest: {exc.message}") from None
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where}.size must be a non-negative integer")
    urls = value.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ManifestInvalid(f"{where}.urls must be a list of strings")
    return Descriptor(media_type, parsed, size, tuple(urls))


def _descriptor_list(doc: dict[str, Any], key: str, *, required: bool) -> tuple[Descriptor, ...]:
    value = doc.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, list):
        raise ManifestInvalid(f"{key} must be a list of descriptors")
    return tuple(_descriptor(item, f"{key}[{i}]") for i, item in enumerate(value))


def _optional_descriptor(doc: dict[str, Any], key: str) -> Descriptor | None:
    return None if doc.get(key) is None else _descriptor(doc[key], key)


def _optional_str(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise ManifestInvalid(f"{key} must be a string")
    return value or None


def _annotations(doc: dict[str, Any]) -> dict[str, str]:
    value = doc.get("annotations")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ManifestInvalid("annotations must map strings to strings")
    return dict(value)
