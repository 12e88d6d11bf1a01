"""The pull-through cache against a real upstream (Distribution 2.8.2 with token auth behind
the fault proxy, see conftest.py), through the real server over HTTP.

Every cache here is `up/` (prefix) in front of the upstream; a test's upstream repository is
`repo`, so its local name is `up/<repo>`. The upstream's requests are counted by the fault
proxy, which is how "fetched once" and "not asked" are asserted.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from registry.proxy.fetch import HASH_BATCH
from tests.conftest import new_bucket, start_scaled
from tests.observe.helpers import scrape
from tests.oci import error_codes, push_image
from tests.proxy.caches import HOST, READER, Cache, Caching, start_caching, write_config
from tests.proxy.content import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from tests.proxy.upstream import Upstream
from tests.server import ADMIN, PASSWORD, RunningRegistry

ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
Start = Callable[..., RunningRegistry]


@pytest.fixture
def public_repo(upstream: Upstream, repo: str) -> str:
    """An upstream repository anonymous callers may pull (caches without credentials)."""
    upstream.public.add(repo)
    return repo


def _caching(
    start_registry: Start, tmp_path: Path, *caches: Cache, extra: tuple[str, ...] = ()
) -> Caching:
    return start_caching(start_registry, tmp_path / "cfg", caches, *extra)


def _manifest(client: httpx.Client, name: str, reference: str) -> httpx.Response:
    return client.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": ACCEPT})


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- pulls


def test_a_cold_then_warm_pull_is_byte_exact_and_fetched_once(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    image = upstream.push_image(public_repo, "v1", layer_sizes=(1000, 300_000))
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, ttl="1h"))
    local = f"up/{public_repo}"
    with caching.server.client() as client:
        for _ in range(2):
            got = _manifest(client, local, "v1")
            assert got.status_code == 200, got.text
            assert got.content == image.manifest
            assert got.headers["Docker-Content-Digest"] == image.digest
            assert got.headers["Content-Type"] == OCI_MANIFEST
            for blob in image.blobs:
                pulled = client.get(f"/v2/{local}/blobs/{blob.digest}")
                assert pulled.status_code == 200
                assert pulled.content == blob.data
    faults = upstream.faults
    assert faults.count("GET", "manifest", 200) == 1
    assert faults.count("GET", "blob", 200) == len(image.blobs)
    # within the ttl the warm pull asked nothing: the one HEAD was the cold pull's
    assert faults.count("HEAD", "manifest", 200) == 1


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-list"])
def test_an_index_pull_caches_the_index_and_a_platform_only_when_asked(
    upstream: Upstream,
    public_repo: str,
    start_registry: Start,
    tmp_path: Path,
    docker: bool,
) -> None:
    index = (
        upstream.push_docker_list(public_repo, "multi")
        if docker
        else upstream.push_index(public_repo, "multi")
    )
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, ttl="1h"))
    local = f"up/{public_repo}"
    with caching.server.client() as client:
        got = _manifest(client, local, "multi")
        assert got.status_code == 200, got.text
        assert got.content == index.manifest
        assert got.headers["Content-Type"] == index.media_type
        assert upstream.faults.count("GET", "manifest", 200) == 1  # no platform fetched
        arm = index.children[1]
        child = _manifest(client, local, arm.digest)
        assert child.status_code == 200, child.text
        assert child.content == arm.manifest
        for blob in arm.blobs:
            assert client.get(f"/v2/{local}/blobs/{blob.digest}").content == blob.data
    assert upstream.faults.count("GET", "manifest", 200) == 2
    assert upstream.faults.count("GET", "blob", 200) == len(arm.blobs)


def test_a_tag_moved_upstream_is_seen_after_the_ttl_and_not_before(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    first = upstream.push_image(public_repo, "v1")
    caching = _caching(
        start_registry,
        tmp_path,
        Cache(upstream.url, name="fresh", prefix="up/", ttl="0s"),
        Cache(upstream.url, name="lazy", prefix="lazy/", ttl="1h", hosts=()),
    )
    with caching.server.client() as client:
        assert _manifest(client, f"up/{public_repo}", "v1").content == first.manifest
        assert _manifest(client, f"lazy/{public_repo}", "v1").content == first.manifest
        heads = upstream.faults.count("HEAD", "manifest")
        assert _manifest(client, f"up/{public_repo}", "v1").content == first.manifest
        # ttl 0: confirmed with one HEAD, nothing fetched again
        assert upstream.faults.count("HEAD", "manifest") == heads + 1
        assert upstream.faults.count("GET", "manifest") == 2
        moved = upstream.move_tag(public_repo, "v1")
        seen = _manifest(client, f"up/{public_repo}", "v1")
        assert seen.headers["Docker-Content-Digest"] == moved.digest
        assert seen.content == moved.manifest
        requests = len(upstream.faults.requests)
        stale = _manifest(client, f"lazy/{public_repo}", "v1")  # within its hour
        assert stale.headers["Docker-Content-Digest"] == first.digest
        assert "Warning" not in stale.headers
        assert len(upstream.faults.requests) == requests


# --- faults


@pytest.mark.parametrize("mode", ["down", "error500", "slow"])
def test_a_failing_upstream_serves_a_cached_tag_stale_then_refuses_it_past_max_stale(
    upstream: Upstream,
    public_repo: str,
    start_registry: Start,
    tmp_path: Path,
    mode: str,
) -> None:
    image = upstream.push_image(public_repo, "v1")
    caching = _caching(
        start_registry,
        tmp_path,
        Cache(upstream.url, prefix="up/", ttl="0s", max_stale="1h", timeout="1s"),
        Cache(upstream.url, name="strict", prefix="strict/", ttl="0s", max_stale="0s", hosts=()),
    )
    with caching.server.client() as client:
        for prefix in ("up", "strict"):
            assert _manifest(client, f"{prefix}/{public_repo}", "v1").status_code == 200
        kept, missing = image.layers[0], image.config
        assert client.get(f"/v2/up/{public_repo}/blobs/{kept.digest}").content == kept.data
        upstream.faults.mode = mode  # type: ignore[assignment]
        upstream.faults.delay = 60.0
        stale = _manifest(client, f"up/{public_repo}", "v1")
        assert stale.status_code == 200, stale.text
        assert stale.content == image.manifest
        assert "stale" in stale.headers["Warning"] and "cache up" in stale.headers["Warning"]
        if mode != "slow":  # the strict cache has no timeout: a slow upstream would hold it
            refused = _manifest(client, f"strict/{public_repo}", "v1")
            assert refused.status_code == 503
            assert error_codes(refused) == ["UNAVAILABLE"]
            assert "maxStale" in refused.text
        # what is here by digest is served whatever the upstream does; what is not, is not
        assert client.get(f"/v2/up/{public_repo}/blobs/{kept.digest}").content == kept.data
        assert client.get(f"/v2/up/{public_repo}/blobs/{missing.digest}").status_code == 503
        never = _manifest(client, f"up/{public_repo}", "never-pulled")
        assert never.status_code == 503
        assert error_codes(never) == ["UNAVAILABLE"]
        upstream.faults.mode = "pass"


def test_a_rate_limited_upstream_is_left_alone_for_its_retry_after(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    first = upstream.push_image(public_repo, "v1")
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, ttl="0s"))
    local = f"up/{public_repo}"
    with caching.server.client() as client:
        assert _manifest(client, local, "v1").status_code == 200
        upstream.move_tag(public_repo, "v1")
        upstream.faults.mode = "ratelimit"  # a GET of a manifest: 429; a HEAD passes
        upstream.faults.retry_after = 3600
        served = _manifest(client, local, "v1")
        assert served.status_code == 200
        assert served.headers["Docker-Content-Digest"] == first.digest
        assert "Warning" in served.headers
        assert upstream.faults.count("GET", "manifest", 429) == 1
        asked = len(upstream.faults.requests)
        again = _manifest(client, local, "v1")
        assert again.headers["Docker-Content-Digest"] == first.digest
        assert len(upstream.faults.requests) == asked  # Retry-After: not asked again


@pytest.mark.parametrize("mode", ["corrupt", "truncate"])
def test_a_corrupt_or_truncated_blob_breaks_the_response_and_stores_nothing(
    upstream: Upstream,
    public_repo: str,
    start_registry: Start,
    tmp_path: Path,
    mode: str,
) -> None:
    # Larger than a few of the relay's hash batches (fetch.HASH_BATCH), so the digest is
    # checked over batches hashed one after the other in worker threads.
    image = upstream.push_image(public_repo, "v1", layer_sizes=(3 * HASH_BATCH + 12_345,))
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, ttl="1h"))
    local = f"up/{public_repo}"
    layer = image.layers[0]
    with caching.server.client() as client:
        assert _manifest(client, local, "v1").status_code == 200
        upstream.faults.mode = mode  # type: ignore[assignment]
        blob = f"/v2/{local}/blobs/{layer.digest}"
        # never a complete-looking body: the response ends short of its Content-Length
        with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", blob) as response:
            b"".join(response.iter_bytes())
        upstream.faults.mode = "pass"
        pulled = client.get(blob)
        assert pulled.status_code == 200
        assert pulled.content == layer.data
    assert upstream.faults.count("GET", "blob", 200) == 2  # nothing was kept from the first


def _pull_concurrently(urls: list[str], local: str, digest: str) -> list[str]:
    """Eight clients at once, spread over the servers, each pulling the whole blob."""

    def pull(n: int) -> str:
        url = urls[n % len(urls)]
        with httpx.Client(base_url=url, auth=(ADMIN, PASSWORD), timeout=120) as client:
            got = client.get(f"/v2/{local}/blobs/{digest}")
            assert got.status_code == 200, got.text
            return _sha(got.content)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(pull, range(8)))


def test_concurrent_cold_pulls_share_one_upstream_get_across_workers(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    image = upstream.push_big(public_repo, "big")
    caching = _caching(
        start_registry, tmp_path, Cache(upstream.url, ttl="1h"), extra=("-workers", "2")
    )
    layer = image.layers[0]
    pulled = _pull_concurrently([caching.server.url], f"up/{public_repo}", layer.digest)
    assert pulled == [layer.digest] * 8
    assert upstream.faults.count("GET", "blob", 200) == 1


def test_concurrent_cold_pulls_share_one_upstream_get_across_hosts(
    upstream: Upstream,
    public_repo: str,
    scaled_services: tuple[str, str],
    tmp_path: Path,
) -> None:
    """Two instances on one bucket and one Redis: the fetch lock is Redis's."""
    image = upstream.push_big(public_repo, "big")
    config = write_config(tmp_path / "cfg", [Cache(upstream.url, ttl="1h")])
    bucket = new_bucket(scaled_services[1])
    servers = [
        start_scaled(scaled_services, tmp_path / f"data{n}", "-cfgdir", str(config), bucket=bucket)
        for n in range(2)
    ]
    try:
        layer = image.layers[0]
        urls = [server.url for server in servers]
        pulled = _pull_concurrently(urls, f"up/{public_repo}", layer.digest)
    finally:
        for server in servers:
            server.stop()
    assert pulled == [layer.digest] * 8
    assert upstream.faults.count("GET", "blob", 200) == 1


def test_a_range_of_a_cold_blob_is_answered_from_the_upstream(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    image = upstream.push_image(public_repo, "v1", layer_sizes=(500_000,))
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, ttl="1h"))
    layer = image.layers[0]
    with caching.server.client() as client:
        part = client.get(
            f"/v2/up/{public_repo}/blobs/{layer.digest}", headers={"Range": "bytes=100-1099"}
        )
        assert part.status_code == 206, part.text
        assert part.content == layer.data[100:1100]
        assert part.headers["Content-Range"] == f"bytes 100-1099/{layer.size}"
        whole = client.get(f"/v2/up/{public_repo}/blobs/{layer.digest}")
        assert whole.content == layer.data


# --- naming


def test_containerd_ns_reaches_the_cache_listing_the_host(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    image = upstream.push_image(public_repo, "v1")
    caching = _caching(start_registry, tmp_path, Cache(upstream.url))
    with caching.server.client() as client:
        got = client.get(
            f"/v2/{public_repo}/manifests/v1",
            params={"ns": HOST.upper()},
            headers={"Accept": ACCEPT},
        )
        assert got.status_code == 200, got.text
        assert got.content == image.manifest
        # stored under the cache's prefix
        assert _manifest(client, f"up/{public_repo}", image.digest).status_code == 200


def test_an_ns_no_cache_lists_is_refused_without_a_connection(
    upstream: Upstream, start_registry: Start, tmp_path: Path
) -> None:
    caching = _caching(start_registry, tmp_path, Cache(upstream.url))
    with caching.server.client() as client:
        refused = client.get("/v2/library/nginx/manifests/latest", params={"ns": "evil.example"})
        assert refused.status_code == 404
        assert error_codes(refused) == ["NAME_UNKNOWN"]
        assert "evil.example" in refused.json()["errors"][0]["message"]
    assert upstream.faults.requests == []
    assert upstream.tokens.requests == []


# --- access


def test_a_private_upstream_repository_needs_the_caches_credentials(
    upstream: Upstream, repo: str, start_registry: Start, tmp_path: Path
) -> None:
    image = upstream.push_image(repo, "v1")  # not public
    caching = _caching(
        start_registry,
        tmp_path,
        Cache(upstream.url, name="anon", prefix="up/"),
        Cache(
            upstream.url,
            name="priv",
            prefix="priv/",
            hosts=(),
            credentials=(upstream.username, upstream.password),
        ),
    )
    with caching.server.client() as client:
        hidden = _manifest(client, f"up/{repo}", "v1")
        assert hidden.status_code == 404
        assert error_codes(hidden) == ["MANIFEST_UNKNOWN"]
        got = _manifest(client, f"priv/{repo}", "v1")
        assert got.status_code == 200, got.text
        for blob in image.blobs:
            assert client.get(f"/v2/priv/{repo}/blobs/{blob.digest}").content == blob.data
    scope = f"repository:{repo}:pull"
    # one token for the scope, kept for its lifetime across the manifest and blob requests
    assert upstream.tokens.count(scope, user=upstream.username, status=200) == 1


@pytest.mark.parametrize("include", ["token", "access_token"])
def test_the_token_service_may_answer_token_or_access_token(
    upstream: Upstream, repo: str, start_registry: Start, tmp_path: Path, include: str
) -> None:
    image = upstream.push_image(repo, "v1")
    upstream.tokens.include = include  # type: ignore[assignment]
    credentials = (upstream.username, upstream.password)
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, credentials=credentials))
    with caching.server.client() as client:
        assert _manifest(client, f"up/{repo}", "v1").content == image.manifest
    assert upstream.tokens.count(f"repository:{repo}:pull", status=200) == 1


def test_an_upstream_taking_basic_credentials(start_registry: Start, tmp_path: Path) -> None:
    """This registry as the upstream: it takes Basic credentials on every request, which the
    cache sends without waiting for a challenge."""
    origin = start_registry()
    with origin.client() as client:
        pushed = push_image(client, "team/app", "v1")
    assert origin.username is not None and origin.password is not None
    cache = Cache(origin.url, credentials=(origin.username, origin.password))
    caching = _caching(start_registry, tmp_path, cache)
    with caching.server.client() as client:
        got = _manifest(client, "up/team/app", "v1")
        assert got.status_code == 200, got.text
        assert got.content == pushed.body
        for blob in pushed.blobs:
            assert client.get(f"/v2/up/team/app/blobs/{_sha(blob)}").content == blob
    wrong = _caching(
        start_registry, tmp_path / "wrong", Cache(origin.url, credentials=("admin", "nope"))
    )
    with wrong.server.client() as client:
        refused = _manifest(client, "up/team/app", "v1")
        assert refused.status_code == 503, refused.text  # said, not taken for "not found"
        assert "check the cache's credentials" in refused.json()["errors"][0]["message"]


def test_referrers_of_cached_content_are_listed(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    """Distribution 2.8 has no referrers API (404): the cache lists what it holds."""
    image = upstream.push_image(public_repo, "v1")
    signature = upstream.push_artifact(public_repo, subject=image)
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, ttl="1h"))
    local = f"up/{public_repo}"
    with caching.server.client() as client:
        assert _manifest(client, local, "v1").status_code == 200
        assert _manifest(client, local, signature.digest).status_code == 200
        listed = client.get(f"/v2/{local}/referrers/{image.digest}")
        assert listed.status_code == 200, listed.text
        assert [d["digest"] for d in listed.json()["manifests"]] == [signature.digest]


def test_a_local_user_without_rights_reads_nothing_through_the_cache(
    upstream: Upstream, start_registry: Start, tmp_path: Path
) -> None:
    hidden, granted = "secret/app", "granted/app"
    for name in (hidden, granted):
        upstream.public.add(name)
        upstream.push_image(name, "v1")
    caching = _caching(start_registry, tmp_path, Cache(upstream.url))
    with (
        caching.server.client(auth=False) as anonymous,
        httpx.Client(base_url=caching.server.url, auth=READER, timeout=60) as reader,
    ):
        for client in (anonymous, reader):
            refused = _manifest(client, f"up/{hidden}", "v1")
            assert refused.status_code in (401, 403)
            assert error_codes(refused)[0] in ("UNAUTHORIZED", "DENIED")
        assert upstream.faults.requests == []  # nothing was asked upstream for them
        assert _manifest(reader, f"up/{granted}", "v1").status_code == 200


def test_pushes_and_deletes_under_a_cache_are_denied(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    image = upstream.push_image(public_repo, "v1")
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, ttl="1h"))
    local = f"up/{public_repo}"
    with caching.server.client() as client:
        assert _manifest(client, local, "v1").status_code == 200
        attempts = [
            client.put(
                f"/v2/{local}/manifests/v2",
                content=image.manifest,
                headers={"Content-Type": OCI_MANIFEST},
            ),
            client.delete(f"/v2/{local}/manifests/{image.digest}"),
            client.delete(f"/v2/{local}/manifests/v1"),
            client.post(f"/v2/{local}/blobs/uploads/"),
            client.post(f"/v2/{local}/blobs/uploads/", params={"mount": image.layers[0].digest}),
            client.delete(f"/v2/{local}/blobs/{image.layers[0].digest}"),
        ]
        for refused in attempts:
            assert refused.status_code == 403, refused.request.url
            assert error_codes(refused) == ["DENIED"]
            assert "pull-through cache 'up'" in refused.json()["errors"][0]["message"]
        assert _manifest(client, local, "v1").content == image.manifest


def test_a_cache_that_allows_pushes_serves_pushed_tags_without_asking(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    fetched = upstream.push_image(public_repo, "v1")
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, ttl="0s", allow_pushes=True))
    local = f"up/{public_repo}"
    with caching.server.client() as client:
        assert _manifest(client, local, "v1").content == fetched.manifest
        pushed = push_image(client, local, "local-only")
        upstream.faults.reset()
        got = _manifest(client, local, "local-only")
        assert got.status_code == 200, got.text
        assert got.content == pushed.body
        assert upstream.faults.requests == []  # a pushed tag is never asked for upstream
        tags = client.get(f"/v2/{local}/tags/list").json()["tags"]
        assert tags == ["local-only", "v1"]


# --- listing


def test_tags_merge_the_upstreams_with_the_cached_ones(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    upstream.push_image(public_repo, "v1")
    upstream.push_image(public_repo, "v2")
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, ttl="1h"))
    local = f"up/{public_repo}"
    with caching.server.client() as client:
        assert _manifest(client, local, "v1").status_code == 200
        listed = client.get(f"/v2/{local}/tags/list")
        assert listed.json() == {"name": local, "tags": ["v1", "v2"]}
        upstream.faults.mode = "down"
        cached = client.get(f"/v2/{local}/tags/list")
        assert cached.json() == {"name": local, "tags": ["v1"]}
        catalog = client.get("/v2/_catalog").json()["repositories"]
        assert local in catalog


# --- metrics and garbage collection


def test_metrics_count_hits_misses_bytes_stale_serves_and_upstream_requests(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    image = upstream.push_image(public_repo, "v1", layer_sizes=(10_000,))
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, ttl="0s"))
    local = f"up/{public_repo}"
    layer = image.layers[0]
    with caching.server.client() as client:
        assert _manifest(client, local, "v1").status_code == 200
        for _ in range(2):
            assert client.get(f"/v2/{local}/blobs/{layer.digest}").content == layer.data
        upstream.faults.mode = "down"
        assert "Warning" in _manifest(client, local, "v1").headers
    metrics = scrape(caching.server)
    cache = {"cache": "up"}
    assert metrics.value("registry_proxy_misses_total", kind="blob", **cache) == 1
    assert metrics.value("registry_proxy_hits_total", kind="blob", **cache) == 1
    assert metrics.value("registry_proxy_misses_total", kind="manifest", **cache) == 1
    assert metrics.value("registry_proxy_fetched_bytes_total", **cache) == layer.size
    assert metrics.value("registry_proxy_stale_serves_total", **cache) == 1
    assert metrics.value("registry_proxy_token_fetches_total", **cache) >= 1
    requests = "registry_proxy_upstream_requests_total"
    assert metrics.value(requests, kind="blob", outcome="2xx", **cache) == 1
    assert metrics.value(requests, kind="manifest", outcome="error", **cache) == 1


def test_garbage_collection_keeps_cached_tags_and_collects_what_nothing_names(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    image = upstream.push_image(public_repo, "v1")
    stray = upstream.push_image(public_repo, "stray", layer_sizes=(777,)).layers[0]
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, ttl="1h"))
    local = f"up/{public_repo}"
    with caching.server.client() as client:
        assert _manifest(client, local, "v1").status_code == 200
        for blob in (*image.blobs, stray):  # the stray layer is fetched by digest alone
            assert client.get(f"/v2/{local}/blobs/{blob.digest}").status_code == 200
        collected = subprocess.run(
            [sys.executable, "-m", "registry", "gc", "-datadir", str(caching.server.datadir),
             "-grace", "0s", "-json"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        report = json.loads(collected.stdout.strip().splitlines()[-1])
        assert report["blobs"]["deleted"] == 1  # the stray layer: no cached manifest names it
        for blob in image.blobs:
            assert client.get(f"/v2/{local}/blobs/{blob.digest}").content == blob.data
        upstream.faults.reset()
        # a collected blob is fetched again on the next pull
        assert client.get(f"/v2/{local}/blobs/{stray.digest}").content == stray.data
        assert upstream.faults.count("GET", "blob", 200) == 1


def test_a_client_leaving_mid_fetch_leaves_the_fetch_to_finish_for_others(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    image = upstream.push_big(public_repo, "big")
    caching = _caching(start_registry, tmp_path, Cache(upstream.url, ttl="1h"))
    blob = f"/v2/up/{public_repo}/blobs/{image.layers[0].digest}"
    with caching.server.client() as client:
        with client.stream("GET", blob) as response:
            assert response.status_code == 200
            next(response.iter_raw())  # one chunk, then the connection goes
        again = client.get(blob)
        assert again.status_code == 200
        assert _sha(again.content) == image.layers[0].digest
    assert upstream.faults.count("GET", "blob", 200) == 1


def test_a_manifest_the_registry_cannot_keep_is_the_upstreams_fault(
    upstream: Upstream, public_repo: str, start_registry: Start, tmp_path: Path
) -> None:
    """Distribution takes a manifest nested 150 levels deep in a field it ignores; this
    registry keeps none deeper than 100: the pull is a 503 naming the upstream, not a 400."""
    image = upstream.push_image(public_repo, "v1")
    doc = json.loads(image.manifest)
    deep: list[object] = []
    for _ in range(150):
        deep = [deep]
    doc["x-deep"] = deep
    upstream.put_manifest(public_repo, "deep", json.dumps(doc).encode(), OCI_MANIFEST)
    caching = _caching(start_registry, tmp_path, Cache(upstream.url))
    with caching.server.client() as client:
        refused = _manifest(client, f"up/{public_repo}", "deep")
        assert refused.status_code == 503, refused.text
        assert error_codes(refused) == ["UNAVAILABLE"]
        assert "upstream up sent a manifest this registry cannot keep" in refused.text
        assert _manifest(client, f"up/{public_repo}", "v1").status_code == 200
