"""The docker daemon pulling Docker Hub images through the pull-through cache, configured as its
`registry-mirrors` entry (docs/pull-through-cache.md, "Docker daemon").

The upstream stands in for Docker Hub: the test upstream of tests/proxy/upstream.py
(Distribution with token auth behind the fault proxy), holding `library/<name>`. The registry
has one cache for it, as the docs configure a Docker Hub mirror (`prefix: ""`, `hosts:
[docker.io]`, scope `^library/.+$`), and lets anonymous callers pull `library/`. dockerd
answers a mirror's challenge with the client's Docker Hub login, when there is one, and
otherwise follows it to an anonymous token. The session's dockerd gets the registry as its
mirror through a live reload of its daemon.json (SIGHUP) and its own mirrors back afterwards.

docker.io cannot be reached here, so a pull by a Docker Hub short name succeeds only through
the mirror; when the mirror fails, dockerd falls back to Docker Hub, and the pull fails naming
it. dockerd checks every digest it receives, so a pull that completes is byte-exact.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.daemons import Dockerd
from tests.clients.images import Image, OCILayout, host_platform, random_layer
from tests.observe.helpers import access_records, eventually
from tests.proxy.caches import Cache, start_caching
from tests.proxy.conftest import upstream, upstream_service  # noqa: F401 (fixtures)
from tests.proxy.content import Pusher
from tests.proxy.upstream import Upstream
from tests.server import RunningRegistry

pytestmark = pytest.mark.clients

DOCKER_HUB = "registry-1.docker.io"  # where dockerd turns when the mirror fails


@dataclass
class Mirror:
    """The registry as dockerd's Docker Hub mirror, and a docker CLI config of the test's own
    (with no Docker Hub login unless the test writes one)."""

    registry: RunningRegistry
    config: Path


@pytest.fixture
def hub_mirror(
    dockerd: Dockerd,
    upstream: Upstream,  # noqa: F811
    start_registry: Callable[..., RunningRegistry],
    tmp_path: Path,
) -> Iterator[Mirror]:
    # docs/pull-through-cache.md's Docker Hub mirror, in front of the test upstream
    cache = Cache(
        upstream.url, name="hub", prefix="", hosts=("docker.io",), scopes=["^library/.+$"], ttl="1h"
    )
    caching = start_caching(
        start_registry, tmp_path / "cfg", [cache], anonymous_scopes=["^library/"]
    )
    with dockerd.mirroring(caching.server.url):
        yield Mirror(caching.server, tmp_path / "docker-config")


def push_upstream(upstream: Upstream, layout: OCILayout, name: str, tag: str) -> Image:  # noqa: F811
    """A Docker schema 2 image for this machine's platform, with real layers dockerd unpacks,
    pushed straight to the upstream's Distribution (as docker push uploads) and readable
    anonymously there."""
    image = layout.add_image(
        [random_layer(3000), random_layer(150_000)], host_platform(), docker_types=True
    )
    pusher = Pusher(upstream.direct_url, upstream.seed_token)
    with pusher.client(name) as http:
        for blob in (image.config, *image.layers):
            pusher.blob(http, name, layout.read_blob(blob.digest), blob.media_type)
        manifest = layout.read_blob(image.manifest.digest)
        pusher.manifest(http, name, tag, manifest, image.manifest.media_type)
    upstream.public.add(name)
    return image


def short_name(repo: str) -> str:
    """One path segment no other test uses: Docker Hub's official images are `library/<one>`."""
    return repo.rsplit("/", 1)[1]


def token_requests(registry: RunningRegistry) -> list[tuple[int, str | None]]:
    """The status and user of each `/token` request in the registry's access log so far."""
    return [
        (record["status"], record["user"])
        for record in access_records(registry)
        if record["path"] == "/token"
    ]


def inspect(dockerd: Dockerd, config: Path, ref: str) -> dict[str, object]:
    shown: list[dict[str, object]] = json.loads(dockerd.cli(config, "image", "inspect", ref).stdout)
    return shown[0]


def test_dockerd_pulls_a_library_image_through_its_mirror_cold_then_warm(
    dockerd: Dockerd,
    hub_mirror: Mirror,
    upstream: Upstream,  # noqa: F811
    layout: OCILayout,
    repo: str,
) -> None:
    name = short_name(repo)
    image = push_upstream(upstream, layout, f"library/{name}", "v1")
    digest = image.manifest.digest
    blobs = {image.config.digest, *(layer.digest for layer in image.layers)}
    ref = f"{name}:v1"  # docker.io/library/<name>:v1
    config = hub_mirror.config
    upstream.reset()

    pulled = dockerd.cli(config, "pull", ref)

    assert f"Digest: {digest}" in pulled.stdout, pulled.stdout
    shown = inspect(dockerd, config, ref)
    assert shown["Id"] == image.config.digest
    assert shown["RepoDigests"] == [f"{name}@{digest}"]
    assert shown["RepoTags"] == [ref]
    # the cache asked the upstream once for the manifest and once for each blob, all under
    # the Docker Hub name dockerd gave the mirror
    assert upstream.faults.count("GET", "manifest", 200) == 1
    assert upstream.faults.count("GET", "blob", 200) == len(blobs)
    fetched = {
        seen.path.rsplit("/", 1)[1]
        for seen in upstream.faults.requests
        if seen.method == "GET" and seen.kind == "blob"
    }
    assert fetched == blobs
    assert all(
        seen.path.startswith(f"/v2/library/{name}/")
        for seen in upstream.faults.requests
        if seen.kind in ("manifest", "blob")
    )

    dockerd.cli(config, "rmi", ref)
    assert dockerd.cli(config, "image", "inspect", ref, check=False).returncode != 0
    upstream.reset()

    again = dockerd.cli(config, "pull", f"library/{name}:v1")  # the same image, long form

    assert f"Digest: {digest}" in again.stdout, again.stdout
    shown = inspect(dockerd, config, ref)
    assert shown["Id"] == image.config.digest
    assert shown["RepoDigests"] == [f"{name}@{digest}"]
    assert upstream.faults.requests == []  # warm: everything came from the cache
    dockerd.cli(config, "rmi", ref)
    # without a Docker Hub login, dockerd followed the registry's challenge as anonymous
    eventually(
        lambda: token_requests(hub_mirror.registry) == [(200, "anonymous")] * 2 or None,
        what="two anonymous token requests in the access log",
    )


def test_a_name_the_cache_does_not_serve_fails_over_to_docker_hub(
    dockerd: Dockerd,
    hub_mirror: Mirror,
    upstream: Upstream,  # noqa: F811
    layout: OCILayout,
    repo: str,
) -> None:
    """`<user>/app` is not under `library/`: the registry refuses it (no cache's scope and no
    binding takes it), dockerd turns to Docker Hub, and the upstream is never asked, although
    it holds the image."""
    user_repo = f"{short_name(repo)}/app"
    push_upstream(upstream, layout, user_repo, "v1")
    upstream.reset()

    failed = dockerd.cli(hub_mirror.config, "pull", f"{user_repo}:v1", check=False)

    assert failed.returncode != 0
    assert DOCKER_HUB in failed.stderr, failed.stderr
    assert upstream.faults.requests == []
    assert dockerd.cli(hub_mirror.config, "image", "inspect", user_repo, check=False).returncode


def docker_hub_login(config: Path, username: str, password: str) -> None:
    """What `docker login` (to Docker Hub) leaves in the client's config."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.json").write_text(
        json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}})
    )


def test_a_docker_hub_login_the_registry_does_not_know_fails_the_mirror(
    dockerd: Dockerd,
    hub_mirror: Mirror,
    upstream: Upstream,  # noqa: F811
    layout: OCILayout,
    repo: str,
) -> None:
    """dockerd answers the mirror's challenge with the login the client holds for Docker Hub:
    the registry does not know that user, refuses the token, and dockerd turns to Docker Hub."""
    name = short_name(repo)
    push_upstream(upstream, layout, f"library/{name}", "v1")
    docker_hub_login(hub_mirror.config, "hub-user", "hub-password")
    upstream.reset()

    failed = dockerd.cli(hub_mirror.config, "pull", f"{name}:v1", check=False)

    assert failed.returncode != 0
    assert DOCKER_HUB in failed.stderr, failed.stderr
    assert upstream.faults.requests == []
    # the token request carried the Docker Hub login (without one, it is anonymous: 200)
    eventually(
        lambda: token_requests(hub_mirror.registry) == [(401, None)] or None,
        what="one refused token request in the access log",
    )


def test_a_docker_hub_login_the_registry_knows_pulls_as_that_user(
    dockerd: Dockerd,
    hub_mirror: Mirror,
    upstream: Upstream,  # noqa: F811
    layout: OCILayout,
    repo: str,
) -> None:
    """The same login defined here (the admin, for the test) pulls through the mirror as that
    user."""
    name = short_name(repo)
    image = push_upstream(upstream, layout, f"library/{name}", "v1")
    registry = hub_mirror.registry
    docker_hub_login(hub_mirror.config, str(registry.username), str(registry.password))

    pulled = dockerd.cli(hub_mirror.config, "pull", f"{name}:v1")

    assert f"Digest: {image.manifest.digest}" in pulled.stdout, pulled.stdout
    assert inspect(dockerd, hub_mirror.config, f"{name}:v1")["Id"] == image.config.digest
    eventually(
        lambda: token_requests(registry) == [(200, registry.username)] or None,
        what="one token request of the admin in the access log",
    )
    dockerd.cli(hub_mirror.config, "rmi", f"{name}:v1")
