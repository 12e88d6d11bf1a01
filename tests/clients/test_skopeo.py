"""skopeo (containers/image) against the server: OCI layouts pushed and pulled back unchanged.

Every copy uses `--preserve-digests`, so skopeo fails instead of silently rewriting a manifest;
the checks then compare the bytes and digests on the three sides: the layout the test wrote,
what the registry answers, and the layout skopeo writes back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.clients.images import (
    AMD64,
    ARM64,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    MiB,
    OCILayout,
    random_layer,
    sha256_digest,
)
from tests.clients.tools import Skopeo
from tests.server import RunningRegistry

pytestmark = pytest.mark.clients


def dest_flags(server: RunningRegistry) -> list[str]:
    return ["--dest-creds", f"{server.username}:{server.password}", "--dest-tls-verify=false"]


def src_flags(server: RunningRegistry) -> list[str]:
    return ["--src-creds", f"{server.username}:{server.password}", "--src-tls-verify=false"]


def read_flags(server: RunningRegistry) -> list[str]:
    return ["--creds", f"{server.username}:{server.password}", "--tls-verify=false"]


def assert_manifest_served(
    http: httpx.Client, repo: str, reference: str, layout: OCILayout, digest: str, media_type: str
) -> None:
    """GET and HEAD of the manifest answer the exact bytes, digest, size and media type."""
    expected = layout.read_blob(digest)
    accept = {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
    got = http.get(f"/v2/{repo}/manifests/{reference}", headers=accept)
    assert got.status_code == 200, got.text
    assert got.content == expected
    assert got.headers["docker-content-digest"] == digest
    assert got.headers["content-type"] == media_type
    head = http.head(f"/v2/{repo}/manifests/{reference}", headers=accept)
    assert head.status_code == 200
    assert head.headers["docker-content-digest"] == digest
    assert int(head.headers["content-length"]) == len(expected)


def assert_blobs_served(http: httpx.Client, repo: str, layout: OCILayout, image: Image) -> None:
    """Every layer and the config: HEAD gives the size, GET gives content with that digest."""
    for desc in (image.config, *image.layers):
        head = http.head(f"/v2/{repo}/blobs/{desc.digest}")
        assert head.status_code == 200, f"HEAD {desc.digest}: {head.status_code}"
        assert int(head.headers["content-length"]) == desc.size
        assert head.headers["docker-content-digest"] == desc.digest
        hasher = hashlib.sha256()
        size = 0
        with http.stream("GET", f"/v2/{repo}/blobs/{desc.digest}") as got:
            assert got.status_code == 200
            for chunk in got.iter_bytes():
                hasher.update(chunk)
                size += len(chunk)
        assert (f"sha256:{hasher.hexdigest()}", size) == (desc.digest, desc.size)


def test_single_image_round_trip(
    skopeo: Skopeo, registry_server: RunningRegistry, repo: str, layout: OCILayout, tmp_path: Path
) -> None:
    image = layout.add_image([random_layer(1500), random_layer(40_000)])
    layout.tag(image.manifest, "v1")
    remote = f"docker://{registry_server.host}/{repo}:v1"
    digest_file = tmp_path / "pushed-digest"

    skopeo.copy(
        f"oci:{layout.root}:v1",
        remote,
        "--preserve-digests",
        "--digestfile",
        str(digest_file),
        *dest_flags(registry_server),
    )

    assert digest_file.read_text().strip() == image.manifest.digest
    raw = skopeo.inspect_raw(remote, *read_flags(registry_server))
    assert raw == layout.read_blob(image.manifest.digest)
    with registry_server.client() as http:
        assert_manifest_served(http, repo, "v1", layout, image.manifest.digest, OCI_MANIFEST)
        assert_manifest_served(
            http, repo, image.manifest.digest, layout, image.manifest.digest, OCI_MANIFEST
        )
        assert_blobs_served(http, repo, layout, image)

    back = tmp_path / "back"
    skopeo.copy(remote, f"oci:{back}:copy", "--preserve-digests", *src_flags(registry_server))
    pulled = OCILayout(back)
    root = pulled.lookup("copy")
    assert root.digest == image.manifest.digest
    tree = pulled.read_tree(root)  # re-hashes every blob skopeo wrote
    assert set(tree.manifests) == {image.manifest.digest}
    assert tree.configs == {image.config.digest}
    assert tree.layers == {layer.digest for layer in image.layers}


def test_multi_arch_index_round_trip(
    skopeo: Skopeo, registry_server: RunningRegistry, repo: str, layout: OCILayout, tmp_path: Path
) -> None:
    shared = random_layer(2000)  # in both children: the second upload finds it present
    amd64 = layout.add_image([shared, random_layer(3000)], AMD64)
    arm64 = layout.add_image([shared, random_layer(5000)], ARM64)
    index = layout.add_index([amd64, arm64])
    layout.tag(index.index, "multi")
    remote = f"docker://{registry_server.host}/{repo}:multi"

    skopeo.copy(
        f"oci:{layout.root}:multi",
        remote,
        "--all",
        "--preserve-digests",
        *dest_flags(registry_server),
    )

    raw_index = skopeo.inspect_raw(remote, *read_flags(registry_server))
    assert raw_index == layout.read_blob(index.index.digest)
    children = json.loads(raw_index)["manifests"]
    assert [(c["digest"], c["platform"]["architecture"]) for c in children] == [
        (amd64.manifest.digest, "amd64"),
        (arm64.manifest.digest, "arm64"),
    ]
    for image in (amd64, arm64):
        by_digest = f"docker://{registry_server.host}/{repo}@{image.manifest.digest}"
        raw = skopeo.inspect_raw(by_digest, *read_flags(registry_server))
        assert sha256_digest(raw) == image.manifest.digest
    with registry_server.client() as http:
        assert_manifest_served(http, repo, "multi", layout, index.index.digest, OCI_INDEX)
        for image in (amd64, arm64):
            assert_manifest_served(
                http, repo, image.manifest.digest, layout, image.manifest.digest, OCI_MANIFEST
            )
            assert_blobs_served(http, repo, layout, image)

    back = tmp_path / "back"
    skopeo.copy(
        remote, f"oci:{back}:multi", "--all", "--preserve-digests", *src_flags(registry_server)
    )
    pulled = OCILayout(back)
    root = pulled.lookup("multi")
    assert root.digest == index.index.digest
    tree = pulled.read_tree(root)
    assert set(tree.manifests) == {index.index.digest, amd64.manifest.digest, arm64.manifest.digest}
    assert tree.configs == {amd64.config.digest, arm64.config.digest}
    assert tree.layers == {layer.digest for image in (amd64, arm64) for layer in image.layers}


def test_large_layer_streamed_upload(
    skopeo: Skopeo, registry_server: RunningRegistry, repo: str, layout: OCILayout, tmp_path: Path
) -> None:
    """A layer over 10 MiB goes up as POST + one streamed PATCH + PUT (skopeo's only path)."""
    big = random_layer(10 * MiB + 512 * 1024)
    image = layout.add_image([random_layer(1000), big])
    assert image.layers[1].size > 10 * MiB
    layout.tag(image.manifest, "big")
    remote = f"docker://{registry_server.host}/{repo}:big"

    pushed = skopeo(
        "--debug",
        "copy",
        "--retry-times",
        "0",
        "--preserve-digests",
        *dest_flags(registry_server),
        f"oci:{layout.root}:big",
        remote,
    )

    patch = f"PATCH http://{registry_server.host}/v2/{repo}/blobs/uploads/"
    assert patch in pushed.stderr, "skopeo did not upload with PATCH:\n" + pushed.stderr[-4000:]
    with registry_server.client() as http:
        assert_manifest_served(http, repo, "big", layout, image.manifest.digest, OCI_MANIFEST)
        assert_blobs_served(http, repo, layout, image)

    back = tmp_path / "back"
    skopeo.copy(remote, f"oci:{back}:big", "--preserve-digests", *src_flags(registry_server))
    pulled = OCILayout(back)
    tree = pulled.read_tree(pulled.lookup("big"))
    assert tree.layers == {layer.digest for layer in image.layers}
    assert pulled.read_blob(big.digest) == big.compressed


def test_parallel_uploads_to_two_workers(
    skopeo: Skopeo,
    start_registry: Callable[..., RunningRegistry],
    repo: str,
    layout: OCILayout,
    tmp_path: Path,
) -> None:
    """skopeo uploads layers over several connections at once; with two worker processes each
    upload's POST, PATCH and PUT can be served by different workers."""
    server = start_registry("-workers", "2")
    image = layout.add_image([random_layer(100_000 + i) for i in range(8)])
    layout.tag(image.manifest, "v1")
    remote = f"docker://{server.host}/{repo}:v1"

    skopeo.copy(f"oci:{layout.root}:v1", remote, "--preserve-digests", *dest_flags(server))

    with server.client() as http:
        assert_manifest_served(http, repo, "v1", layout, image.manifest.digest, OCI_MANIFEST)
        assert_blobs_served(http, repo, layout, image)
    back = tmp_path / "back"
    skopeo.copy(remote, f"oci:{back}:v1", "--preserve-digests", *src_flags(server))
    pulled = OCILayout(back)
    tree = pulled.read_tree(pulled.lookup("v1"))
    assert tree.layers == {layer.digest for layer in image.layers}


def test_login_and_list_tags(
    skopeo: Skopeo, registry_server: RunningRegistry, repo: str, layout: OCILayout
) -> None:
    image = layout.add_image([random_layer(800)])
    layout.tag(image.manifest, "v1")
    for tag in ("v1", "v2", "latest"):
        remote = f"docker://{registry_server.host}/{repo}:{tag}"
        skopeo.copy(
            f"oci:{layout.root}:v1", remote, "--preserve-digests", *dest_flags(registry_server)
        )

    refused = skopeo(
        "login",
        "--tls-verify=false",
        "--authfile",
        str(skopeo.authfile),
        "-u",
        str(registry_server.username),
        "--password-stdin",
        registry_server.host,
        input="not-the-password\n",
        check=False,
    )
    assert refused.returncode != 0, "login with a wrong password succeeded"
    assert "invalid username/password" in refused.stderr, refused.stderr  # skopeo's 401 text
    assert registry_server.host not in (
        skopeo.authfile.read_text() if skopeo.authfile.exists() else ""
    )

    skopeo(
        "login",
        "--tls-verify=false",
        "--authfile",
        str(skopeo.authfile),
        "-u",
        str(registry_server.username),
        "--password-stdin",
        registry_server.host,
        input=f"{registry_server.password}\n",
    )
    auths = json.loads(skopeo.authfile.read_text())["auths"]
    assert registry_server.host in auths

    # No --creds: the credentials come from the login's auth file.
    tags = skopeo.list_tags(
        f"docker://{registry_server.host}/{repo}",
        "--tls-verify=false",
        "--authfile",
        str(skopeo.authfile),
    )
    assert sorted(tags) == ["latest", "v1", "v2"]
    raw = skopeo.inspect_raw(
        f"docker://{registry_server.host}/{repo}:latest",
        "--tls-verify=false",
        "--authfile",
        str(skopeo.authfile),
    )
    assert sha256_digest(raw) == image.manifest.digest

    anonymous = skopeo(
        "list-tags",
        "--tls-verify=false",
        "--no-creds",
        f"docker://{registry_server.host}/{repo}",
        check=False,
    )
    assert anonymous.returncode != 0, "list-tags without credentials succeeded"
    assert "unauthorized" in anonymous.stderr.lower(), anonymous.stderr
