"""The storage layout. It is what data written by earlier versions is found by, so every key
shape is pinned here: changing one strands what a registry already stores."""

from __future__ import annotations

from pathlib import Path

from registry.model import paths
from registry.oci.digests import Digest
from registry.storage.filesystem import FilesystemDriver

DIGEST = Digest.of(b"content")
HEX = DIGEST.hex
SUBJECT = Digest.of(b"subject")


def test_the_layout_of_every_key() -> None:
    name = "team/app"
    assert paths.blob(DIGEST) == f"blobs/sha256/{HEX[:2]}/{HEX}"
    assert paths.holder(DIGEST, name) == f"_holders/sha256/{HEX}/team+app"
    assert paths.repository(name) == "repositories/team/app"
    assert paths.layer_link(name, DIGEST) == f"repositories/team/app/_layers/sha256/{HEX}"
    assert paths.revision(name, DIGEST) == (
        f"repositories/team/app/_manifests/revisions/sha256/{HEX}"
    )
    assert paths.tag(name, "v1") == "repositories/team/app/_manifests/tags/v1"
    assert paths.referrer(name, SUBJECT, DIGEST) == (
        f"repositories/team/app/_referrers/sha256/{SUBJECT.hex}/sha256-{HEX}"
    )
    assert paths.upload_data("0" * 32) == f"_uploads/{'0' * 32}/data"
    assert paths.upload_dir("0" * 32) == f"_uploads/{'0' * 32}"


def test_a_holder_entry_gives_back_the_repository_name() -> None:
    for name in ("app", "team/app", "a/b/c-d_e.f"):
        entry = paths.holder(DIGEST, name).rsplit("/", 1)[1]
        assert paths.holder_name(entry) == name


def test_every_key_is_one_a_driver_accepts(tmp_path: Path) -> None:
    """Built from validated parts, no key is refused as unsafe (`.`, `..`, `//`)."""
    driver = FilesystemDriver(tmp_path)
    name = "a/b.c/d__e"
    keys = [
        paths.blob(DIGEST),
        paths.holder(DIGEST, name),
        paths.layer_link(name, DIGEST),
        paths.revision(name, DIGEST),
        paths.tag(name, "v1.0_rc-2"),
        paths.referrer(name, SUBJECT, DIGEST),
        paths.upload_data("f" * 32),
    ]
    assert all(driver._path(key).startswith(driver.root + "/") for key in keys)
