"""Real clients pulling through the pull-through cache from the test upstream (Distribution with
token auth behind the fault proxy, tests/proxy/upstream.py): containerd mirroring the
upstream's host with a `hosts.toml` (so its requests carry `?ns=<host>`), and skopeo naming the
cache's local names. containerd and skopeo verify every digest they receive, so a pull that
completes is byte-exact."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.clients.daemons import Containerd
from tests.clients.images import (
    ARM64,
    Image,
    OCILayout,
    canonical_json,
    host_platform,
    random_layer,
)
from tests.clients.test_containerd import content_digests, listed_digest
from tests.clients.tools import Skopeo
from tests.proxy.caches import HOST, Cache, start_caching
from tests.proxy.conftest import upstream, upstream_service  # noqa: F401 (fixtures)
from tests.proxy.content import DOCKER_LIST, OCI_INDEX, Pusher
from tests.proxy.upstream import Upstream
from tests.server import RunningRegistry

pytestmark = pytest.mark.clients


def _hosts_dir(folder: Path, registry: RunningRegistry) -> Path:
    """containerd's mirror configuration: pulls of HOST go to the registry, which containerd
    asks with `?ns=HOST`."""
    host_dir = folder / HOST
    host_dir.mkdir(parents=True)
    (host_dir / "hosts.toml").write_text(
        f'server = "https://{HOST}"\n\n'
        f'[host."{registry.url}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    return folder


def _pull(containerd: Containerd, hosts: Path, registry: RunningRegistry, ref: str) -> None:
    containerd.ctr(
        "images",
        "pull",
        "--hosts-dir",
        str(hosts),
        "--user",
        f"{registry.username}:{registry.password}",
        "--snapshotter",
        "native",
        ref,
    )


def _forget(containerd: Containerd, ref: str) -> None:
    """The image and every blob gone from containerd, so the next pull fetches again."""
    containerd.ctr("images", "rm", "--sync", ref)
    digests = sorted(content_digests(containerd))
    if digests:
        containerd.ctr("content", "rm", *digests)


def _push_multi(
    origin: Upstream, layout: OCILayout, repo: str, images: list[Image], docker: bool
) -> str:
    """The images (by digest, with their blobs) and an OCI index or a Docker manifest list of
    them tagged `multi`, pushed straight to the upstream's Distribution; the top digest."""
    pusher = Pusher(origin.direct_url, origin.seed_token)
    with pusher.client(repo) as http:
        for image in images:
            for blob in (image.config, *image.layers):
                pusher.blob(http, repo, layout.read_blob(blob.digest), blob.media_type)
            body = layout.read_blob(image.manifest.digest)
            pusher.manifest(http, repo, image.manifest.digest, body, image.manifest.media_type)
        media_type = DOCKER_LIST if docker else OCI_INDEX
        children = [image.manifest.to_json() for image in images]
        top = {"schemaVersion": 2, "mediaType": media_type, "manifests": children}
        return pusher.manifest(http, repo, "multi", canonical_json(top), media_type)


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-list"])
def test_containerd_pulls_a_multi_arch_index_through_ns_cold_then_warm(
    docker: bool,
    containerd: Containerd,
    layout: OCILayout,
    upstream: Upstream,  # noqa: F811
    start_registry: Callable[..., RunningRegistry],
    repo: str,
    tmp_path: Path,
) -> None:
    layers = [random_layer(3000), random_layer(200_000)]
    native = layout.add_image(layers, host_platform(), docker_types=docker)
    other = layout.add_image([random_layer(4000)], ARM64, docker_types=docker)
    top = _push_multi(upstream, layout, repo, [native, other], docker)
    cache = Cache(upstream.url, ttl="1h", credentials=(upstream.username, upstream.password))
    registry = start_caching(start_registry, tmp_path / "cfg", [cache]).server
    hosts = _hosts_dir(tmp_path / "hosts", registry)
    ref = f"{HOST}/{repo}:multi"
    upstream.reset()

    _pull(containerd, hosts, registry, ref)

    assert listed_digest(containerd, ref) == top
    wanted = {native.config.digest, *(layer.digest for layer in native.layers)}
    assert wanted <= content_digests(containerd)
    # only the index, the native platform's manifest and its blobs were fetched
    assert upstream.faults.count("GET", "manifest", 200) == 2
    assert upstream.faults.count("GET", "blob", 200) == len(wanted)
    fetched = {
        seen.path.rsplit("/", 1)[1] for seen in upstream.faults.requests if seen.status == 200
    }
    assert not {layer.digest for layer in other.layers} & fetched

    _forget(containerd, ref)
    upstream.reset()
    _pull(containerd, hosts, registry, ref)

    assert listed_digest(containerd, ref) == top
    assert wanted <= content_digests(containerd)
    assert upstream.faults.count("GET") == 0  # warm: everything came from the cache
    _forget(containerd, ref)


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-list"])
def test_skopeo_copies_an_index_or_a_docker_list_through_the_cache_cold_then_warm(
    docker: bool,
    skopeo: Skopeo,
    upstream: Upstream,  # noqa: F811
    start_registry: Callable[..., RunningRegistry],
    repo: str,
    tmp_path: Path,
) -> None:
    upstream.public.add(repo)
    pushed = (
        upstream.push_docker_list(repo, "list") if docker else upstream.push_index(repo, "list")
    )
    registry = start_caching(
        start_registry, tmp_path / "cfg", [Cache(upstream.url, ttl="1h")]
    ).server
    source = f"docker://{registry.host}/up/{repo}:list"
    flags = ("--src-creds", f"{registry.username}:{registry.password}", "--src-tls-verify=false")
    read = ("--creds", f"{registry.username}:{registry.password}", "--tls-verify=false")

    assert skopeo.inspect_raw(source, *read) == pushed.manifest
    for attempt in ("cold", "warm"):
        target = tmp_path / attempt
        skopeo.copy(source, f"dir:{target}", "--all", *flags)
        assert (target / "manifest.json").read_bytes() == pushed.manifest
        for child in pushed.children:
            stored = target / f"{child.digest.split(':', 1)[1]}.manifest.json"
            assert stored.read_bytes() == child.manifest
            for blob in child.blobs:
                assert (target / blob.digest.split(":", 1)[1]).read_bytes() == blob.data
        if attempt == "cold":
            blobs = sum(len(child.blobs) for child in pushed.children)
            assert upstream.faults.count("GET", "blob", 200) == blobs
            upstream.reset()
    assert upstream.faults.count("GET") == 0
    assert json.loads(pushed.manifest)["mediaType"] == (DOCKER_LIST if docker else OCI_INDEX)
