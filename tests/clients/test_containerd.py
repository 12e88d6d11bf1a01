"""containerd (a private daemon, driven by `ctr`) pulling images that skopeo pushed, and
pushing an image of its own.

containerd's resolver takes a manifest's size from the Content-Length of the HEAD answer and
then fetches exactly that many bytes, and it verifies every blob's digest while unpacking, so a
wrong HEAD header or body fails the pull. Its pusher uploads each blob as POST then one PUT whose
body is streamed (chunked transfer encoding, no Content-Length).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.clients.daemons import Containerd
from tests.clients.images import (
    AMD64,
    ARM64,
    OCI_MANIFEST,
    MiB,
    OCILayout,
    host_platform,
    random_layer,
)
from tests.clients.tools import Skopeo
from tests.server import RunningRegistry

pytestmark = pytest.mark.clients


def push(skopeo: Skopeo, server: RunningRegistry, layout: OCILayout, ref: str, *flags: str) -> None:
    tag = ref.rsplit(":", 1)[1]
    skopeo.copy(
        f"oci:{layout.root}:{tag}",
        f"docker://{ref}",
        "--preserve-digests",
        *flags,
        "--dest-creds",
        f"{server.username}:{server.password}",
        "--dest-tls-verify=false",
    )


def listed_digest(containerd: Containerd, ref: str) -> str:
    """The digest column of `ctr images ls` for `ref`."""
    listing = containerd.ctr("images", "ls").stdout
    for line in listing.splitlines()[1:]:
        columns = line.split()
        if columns and columns[0] == ref:
            return columns[2]
    raise AssertionError(f"{ref} is not in `ctr images ls`:\n{listing}")


def content_digests(containerd: Containerd) -> set[str]:
    return set(containerd.ctr("content", "ls", "--quiet").stdout.split())


def pull(containerd: Containerd, server: RunningRegistry, ref: str, *flags: str) -> None:
    containerd.ctr(
        "images",
        "pull",
        "--plain-http",
        "--user",
        f"{server.username}:{server.password}",
        "--snapshotter",
        "native",
        *flags,
        ref,
    )


def test_pull_image_pushed_by_skopeo(
    containerd: Containerd,
    skopeo: Skopeo,
    registry_server: RunningRegistry,
    repo: str,
    layout: OCILayout,
) -> None:
    image = layout.add_image([random_layer(2000), random_layer(20_000)], host_platform())
    layout.tag(image.manifest, "v1")
    ref = f"{registry_server.host}/{repo}:v1"
    push(skopeo, registry_server, layout, ref)

    pull(containerd, registry_server, ref)

    assert listed_digest(containerd, ref) == image.manifest.digest
    wanted = {image.manifest.digest, image.config.digest, *(d.digest for d in image.layers)}
    assert wanted <= content_digests(containerd)
    containerd.ctr("images", "rm", ref)


def test_pull_multi_arch_index(
    containerd: Containerd,
    skopeo: Skopeo,
    registry_server: RunningRegistry,
    repo: str,
    layout: OCILayout,
) -> None:
    amd64 = layout.add_image([random_layer(1000)], AMD64)
    arm64 = layout.add_image([random_layer(1200)], ARM64)
    index = layout.add_index([amd64, arm64])
    layout.tag(index.index, "multi")
    ref = f"{registry_server.host}/{repo}:multi"
    push(skopeo, registry_server, layout, ref, "--all")

    pull(containerd, registry_server, ref, "--all-platforms")

    assert listed_digest(containerd, ref) == index.index.digest
    wanted = {index.index.digest}
    for image in (amd64, arm64):
        wanted |= {image.manifest.digest, image.config.digest, *(d.digest for d in image.layers)}
    assert wanted <= content_digests(containerd)
    containerd.ctr("images", "rm", ref)


def test_push_imported_image(
    containerd: Containerd,
    registry_server: RunningRegistry,
    repo: str,
    layout: OCILayout,
    tmp_path: Path,
) -> None:
    image = layout.add_image([random_layer(1500), random_layer(3 * MiB)], host_platform())
    ref = f"{registry_server.host}/{repo}:pushed"
    layout.tag(image.manifest, ref)
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(layout.root, arcname=".")
    containerd.ctr("images", "import", "--no-unpack", str(archive))
    assert listed_digest(containerd, ref) == image.manifest.digest

    containerd.ctr(
        "images",
        "push",
        "--plain-http",
        "--user",
        f"{registry_server.username}:{registry_server.password}",
        ref,
    )

    with registry_server.client() as http:
        got = http.get(f"/v2/{repo}/manifests/pushed", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200
        assert got.headers["docker-content-digest"] == image.manifest.digest
        assert got.content == layout.read_blob(image.manifest.digest)
        for desc in (image.config, *image.layers):
            blob = http.get(f"/v2/{repo}/blobs/{desc.digest}")
            assert blob.status_code == 200
            assert blob.content == layout.read_blob(desc.digest)
    containerd.ctr("images", "rm", ref)
