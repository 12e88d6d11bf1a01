"""The docker engine (a private dockerd, one per session) against the server.

dockerd streams layer PATCH bodies with `Transfer-Encoding: chunked` and no Content-Length, pings
/v2/ for the Basic challenge on login, and compares the digest it computed on push with what the
registry answers; these tests check each of those through the docker CLI.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.clients.daemons import Dockerd
from tests.clients.images import AMD64, ARM64, OCILayout, host_platform, random_layer
from tests.clients.tools import Skopeo
from tests.server import RunningRegistry

pytestmark = pytest.mark.clients

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_PUSHED = re.compile(
    r"(?m)^(?P<tag>\S+): digest: (?P<digest>sha256:[0-9a-f]{64}) size: (?P<size>\d+)$"
)


def rootfs_tar(size: int) -> bytes:
    """A tiny root filesystem: one directory and one file of random bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        folder = tarfile.TarInfo("etc")
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        tar.addfile(folder)
        member = tarfile.TarInfo("etc/payload.bin")
        member.size = size
        member.mode = 0o644
        tar.addfile(member, io.BytesIO(os.urandom(size)))
    return raw.getvalue()


def import_image(dockerd: Dockerd, config: Path, ref: str, size: int = 64 * 1024) -> str:
    """`docker import` a random rootfs as `ref`; the image ID (config digest)."""
    imported = dockerd.cli(config, "import", "-", ref, input=rootfs_tar(size))
    image_id = imported.stdout.strip().splitlines()[-1]
    assert image_id.startswith("sha256:"), imported.stdout
    return image_id


def login(dockerd: Dockerd, config: Path, server: RunningRegistry, password: str) -> int:
    result = dockerd.cli(
        config,
        "login",
        server.host,
        "-u",
        str(server.username),
        "--password-stdin",
        input=password + "\n",
        check=False,
    )
    return result.returncode


def stored_auths(config: Path) -> dict[str, object]:
    path = config / "config.json"
    if not path.exists():
        return {}
    auths: dict[str, object] = json.loads(path.read_text()).get("auths") or {}
    return auths


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
def test_push_pull_round_trip(
    workers: int,
    dockerd: Dockerd,
    registry_server: RunningRegistry,
    start_registry: Callable[..., RunningRegistry],
    repo: str,
    tmp_path: Path,
) -> None:
    """With two workers, each connection dockerd opens may be accepted by either process."""
    server = registry_server if workers == 1 else start_registry("-workers", "2")
    config = tmp_path / "docker-config"
    ref = f"{server.host}/{repo}:v1"
    image_id = import_image(dockerd, config, ref)

    assert login(dockerd, config, server, str(server.password)) == 0
    assert server.host in stored_auths(config)

    pushed = dockerd.cli(config, "push", ref)
    match = _PUSHED.search(pushed.stdout)
    assert match is not None, pushed.stdout
    digest, size = match["digest"], int(match["size"])
    assert match["tag"] == "v1"

    with server.client() as http:
        head = http.head(f"/v2/{repo}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
        assert head.status_code == 200
        assert head.headers["docker-content-digest"] == digest
        assert int(head.headers["content-length"]) == size
        assert head.headers["content-type"] == DOCKER_MANIFEST
        manifest = http.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": DOCKER_MANIFEST})
        assert manifest.status_code == 200
        assert manifest.json()["config"]["digest"] == image_id
        for layer in manifest.json()["layers"]:
            blob = http.head(f"/v2/{repo}/blobs/{layer['digest']}")
            assert blob.status_code == 200
            assert int(blob.headers["content-length"]) == layer["size"]

    # A second tag of the same image: every blob is already there, the digest is the same.
    second = f"{server.host}/{repo}:v2"
    dockerd.cli(config, "tag", ref, second)
    again = _PUSHED.search(dockerd.cli(config, "push", second).stdout)
    assert again is not None
    assert again["digest"] == digest

    # Another repository: dockerd mounts the layer from the first one instead of uploading it.
    mirror = f"{server.host}/{repo}-mirror:v1"
    dockerd.cli(config, "tag", ref, mirror)
    mirrored = dockerd.cli(config, "push", mirror).stdout
    assert f"Mounted from {repo}" in mirrored, mirrored
    mirror_push = _PUSHED.search(mirrored)
    assert mirror_push is not None
    assert mirror_push["digest"] == digest
    with server.client() as http:
        mounted = http.head(f"/v2/{repo}-mirror/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
        assert mounted.headers["docker-content-digest"] == digest

    dockerd.cli(config, "rmi", ref, second, mirror)
    gone = dockerd.cli(config, "image", "inspect", ref, check=False)
    assert gone.returncode != 0, "the image is still present locally after rmi"

    pulled = dockerd.cli(config, "pull", ref)
    assert f"Digest: {digest}" in pulled.stdout, pulled.stdout
    inspect = json.loads(dockerd.cli(config, "image", "inspect", ref).stdout)[0]
    assert inspect["Id"] == image_id
    assert inspect["RepoDigests"] == [f"{server.host}/{repo}@{digest}"]

    by_digest = f"{server.host}/{repo}@{digest}"
    dockerd.cli(config, "rmi", ref)
    dockerd.cli(config, "pull", by_digest)
    inspect = json.loads(dockerd.cli(config, "image", "inspect", by_digest).stdout)[0]
    assert inspect["Id"] == image_id
    dockerd.cli(config, "rmi", by_digest)


def test_wrong_password_and_no_credentials_are_refused(
    dockerd: Dockerd, registry_server: RunningRegistry, repo: str, tmp_path: Path
) -> None:
    config = tmp_path / "docker-config"
    ref = f"{registry_server.host}/{repo}:v1"

    assert login(dockerd, config, registry_server, "wrong-password") != 0
    assert registry_server.host not in stored_auths(config)

    import_image(dockerd, config, ref, size=4096)
    push = dockerd.cli(config, "push", ref, check=False)
    assert push.returncode != 0, "push without credentials succeeded"
    assert "unauthorized" in (push.stderr + push.stdout).lower(), push.stderr
    with registry_server.client() as http:
        assert http.get(f"/v2/{repo}/tags/list").status_code == 404
        assert http.head(f"/v2/{repo}/manifests/v1").status_code == 404

    pull = dockerd.cli(config, "pull", ref, check=False)
    assert pull.returncode != 0, "pull without credentials succeeded"
    dockerd.cli(config, "rmi", ref)


def test_pull_multi_arch_index_pushed_by_skopeo(
    dockerd: Dockerd,
    skopeo: Skopeo,
    registry_server: RunningRegistry,
    repo: str,
    layout: OCILayout,
    tmp_path: Path,
) -> None:
    """docker resolves an OCI index to the child for its own platform and pulls that."""
    amd64 = layout.add_image([random_layer(3000)], AMD64)
    arm64 = layout.add_image([random_layer(3000)], ARM64)
    index = layout.add_index([amd64, arm64])
    layout.tag(index.index, "multi")
    ref = f"{registry_server.host}/{repo}:multi"
    skopeo.copy(
        f"oci:{layout.root}:multi",
        f"docker://{ref}",
        "--all",
        "--preserve-digests",
        "--dest-creds",
        f"{registry_server.username}:{registry_server.password}",
        "--dest-tls-verify=false",
    )
    config = tmp_path / "docker-config"
    assert login(dockerd, config, registry_server, str(registry_server.password)) == 0

    pulled = dockerd.cli(config, "pull", ref)

    assert f"Digest: {index.index.digest}" in pulled.stdout, pulled.stdout
    inspect = json.loads(dockerd.cli(config, "image", "inspect", ref).stdout)[0]
    assert inspect["RepoDigests"] == [f"{registry_server.host}/{repo}@{index.index.digest}"]
    native = amd64 if host_platform() == AMD64 else arm64
    assert inspect["Id"] == native.config.digest
    assert inspect["Architecture"] == host_platform().architecture
    dockerd.cli(config, "rmi", ref)
