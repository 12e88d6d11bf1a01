"""The pure OCI rules: digests, names, tags, manifest validation, resumable hashing."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from registry.oci import mediatypes as mt
from registry.oci.digests import Digest
from registry.oci.errors import DigestInvalid, ManifestInvalid, NameInvalid, TagInvalid
from registry.oci.hashing import ResumableHash
from registry.oci.manifests import MAX_MANIFEST_DEPTH, parse_manifest
from registry.oci.names import validate_name, validate_tag

SHA = "a" * 64


@pytest.mark.parametrize(
    "text",
    [f"sha256:{SHA}", f"sha512:{'b' * 128}"],
)
def test_valid_digests_parse_and_print_back(text: str) -> None:
    assert str(Digest.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256",
        f"sha256:{SHA[:-1]}",  # short
        f"sha256:{SHA}0",  # long
        f"sha256:{SHA.upper()}",  # uppercase hex
        f"md5:{'a' * 32}",  # unregistered algorithm
        f"sha256:{'g' * 64}",  # not hex
        f"sha256:../../{SHA[:58]}",  # traversal
        f"SHA256:{SHA}",
        f"sha512:{SHA}",  # wrong length for the algorithm
        f"sha256:{SHA}\n",  # `$` alone would match before a final newline
        f"\nsha256:{SHA}",
    ],
)
def test_invalid_digests_are_digest_invalid(text: str) -> None:
    with pytest.raises(DigestInvalid):
        Digest.parse(text)


@pytest.mark.parametrize(
    "name", ["a", "library/ubuntu", "a/b/c", "my-org/app_1", "a__b", "x.y/z--w", "0"]
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "a/",
        "/a",
        "a//b",
        "..",
        "a/../b",
        "a/./b",
        "_layers",
        "a/_manifests",
        "a-",
        "a___b",
        "a b",
        "a%2fb",
        "a" * 256,
        "a\x00b",
        "a\n",  # `$` alone would match before a final newline
        "a/b\n",
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(NameInvalid):
        validate_name(name)


@pytest.mark.parametrize("tag", ["latest", "v1.0", "_x", "A-b_c.d", "a" * 128])
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize(
    "tag", ["", ".x", "-x", "a" * 129, "a/b", "a:b", "..", "a b", "nl\n", "a\r\n", "\n"]
)
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(TagInvalid):
        validate_tag(tag)


def _descriptor(media_type: str = "application/x", data: bytes = b"x") -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }


def _image(**extra: object) -> dict[str, object]:
    return {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": _descriptor("application/vnd.oci.image.config.v1+json"),
        "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", b"l")],
        **extra,
    }


def test_image_manifest_lists_config_and_layers() -> None:
    parsed = parse_manifest(json.dumps(_image()).encode(), mt.OCI_MANIFEST)
    assert parsed.media_type == mt.OCI_MANIFEST
    assert [d.media_type for d in parsed.blobs] == [
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ]
    assert parsed.children == ()
    assert parsed.referrer_artifact_type == "application/vnd.oci.image.config.v1+json"


def test_artifact_type_and_subject_and_annotations() -> None:
    doc = _image(
        artifactType="application/vnd.example.sbom",
        subject=_descriptor(mt.OCI_MANIFEST, b"s"),
        annotations={"org.example": "yes"},
    )
    parsed = parse_manifest(json.dumps(doc).encode(), f"{mt.OCI_MANIFEST}; charset=utf-8")
    assert parsed.referrer_artifact_type == "application/vnd.example.sbom"
    assert parsed.subject is not None
    assert str(parsed.subject.digest) == _descriptor(mt.OCI_MANIFEST, b"s")["digest"]
    assert parsed.annotations == {"org.example": "yes"}


def test_index_lists_children() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [_descriptor(mt.OCI_MANIFEST)],
    }
    parsed = parse_manifest(json.dumps(doc).encode(), None)
    assert parsed.media_type == mt.OCI_INDEX
    assert len(parsed.children) == 1
    assert parsed.blobs == ()


def test_media_type_comes_from_content_type_when_body_has_none() -> None:
    doc = _image()
    del doc["mediaType"]
    assert parse_manifest(json.dumps(doc).encode(), mt.OCI_MANIFEST).media_type == mt.OCI_MANIFEST


def test_foreign_layers_are_not_required() -> None:
    foreign = {**_descriptor(next(iter(mt.NON_DISTRIBUTABLE))), "urls": ["https://example/x"]}
    parsed = parse_manifest(json.dumps(_image(layers=[foreign])).encode(), None)
    assert [d.distributable for d in parsed.blobs] == [True, False]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{not json", mt.OCI_MANIFEST, "not valid JSON"),
        (b"\xff\xfe", mt.OCI_MANIFEST, "not valid JSON"),
        (b"[]", mt.OCI_MANIFEST, "JSON object"),
        (json.dumps({**_image(), "schemaVersion": 1}).encode(), None, "schema 1"),
        (json.dumps({**_image(), "schemaVersion": True}).encode(), None, "schemaVersion"),
        (json.dumps(_image()).encode(), mt.OCI_INDEX, "does not match"),
        (json.dumps({**_image(), "mediaType": "text/plain"}).encode(), None, "unsupported"),
        (json.dumps({**_image(), "config": "x"}).encode(), None, "config"),
        (json.dumps({**_image(), "layers": {}}).encode(), None, "layers"),
        (
            json.dumps({**_image(), "config": {**_descriptor(), "size": -1}}).encode(),
            None,
            "size",
        ),
        (
            json.dumps({**_image(), "config": {**_descriptor(), "digest": "sha256:xyz"}}).encode(),
            None,
            "config.digest",
        ),
        (json.dumps({**_image(), "annotations": {"a": 1}}).encode(), None, "annotations"),
        (json.dumps({**_image(), "artifactType": 3}).encode(), None, "artifactType"),
        (
            json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX}).encode(),
            None,
            "manifests",
        ),
    ],
)
def test_invalid_manifests(body: bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(body, content_type)
    assert message in info.value.message


def _nested(levels: int) -> object:
    """`levels` arrays and objects inside each other, starting with an object."""
    value: object = "deepest"
    for level in range(levels):
        value = {"x": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # the recursive parser would fail before it sees the missing "]"s
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        # Deeper than the bound, but shallow enough to parse: refused just the same.
        json.dumps({**_image(), "annotations": {}, "x-extension": _nested(100)}).encode(),
    ],
    ids=["unclosed-arrays", "objects", "just-over"],
)
def test_deep_nesting_is_manifest_invalid(body: bytes) -> None:
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(body, mt.OCI_MANIFEST)
    assert info.value.message == (
        f"manifest nests arrays and objects more than {MAX_MANIFEST_DEPTH} levels deep"
    )


def test_nesting_up_to_the_bound_is_accepted() -> None:
    doc = {**_image(), "x-extension": _nested(MAX_MANIFEST_DEPTH - 1)}
    assert parse_manifest(json.dumps(doc).encode(), mt.OCI_MANIFEST).media_type == mt.OCI_MANIFEST


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_resumable_hash_survives_save_and_restore(algorithm: str) -> None:
    data = os.urandom(300_001)
    first = ResumableHash(algorithm)
    first.update(data[:12_345])
    resumed = ResumableHash(algorithm, first.save())
    resumed.update(bytearray(data[12_345:]))
    assert resumed.hexdigest() == hashlib.new(algorithm, data).hexdigest()


def test_resumable_hash_rejects_corrupt_state() -> None:
    state = bytearray(ResumableHash().save())
    with pytest.raises(ValueError):
        ResumableHash("sha256", bytes(state[:-1]))
    state[-8:-4] = (200).to_bytes(4, "little")  # block position beyond the block size
    with pytest.raises(ValueError):
        ResumableHash("sha256", bytes(state))
    with pytest.raises(ValueError):
        ResumableHash("sha512", ResumableHash("sha256").save())
