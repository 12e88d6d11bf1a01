"""The test upstream works: real HTTP through the fault proxy to the real Distribution, with
tokens from the test issuer. The pull-through cache's tests rely on each of these."""

from __future__ import annotations

import datetime
import hashlib
import json

import httpx
import jwt
import pytest

from tests.proxy.bearer import BearerAuth, challenge
from tests.proxy.content import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, sha256
from tests.proxy.faults import kind_of
from tests.proxy.upstream import Upstream

ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))


def client(upstream: Upstream, *, anonymous: bool = False, timeout: float = 30) -> httpx.Client:
    """A client of the proxy (what the cache sees) running the token dance."""
    auth = BearerAuth() if anonymous else BearerAuth(upstream.username, upstream.password)
    return httpx.Client(base_url=upstream.url, auth=auth, timeout=timeout)


def get_manifest(http: httpx.Client, repo: str, reference: str) -> httpx.Response:
    return http.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})


def granted(upstream: Upstream, index: int = -1) -> list[tuple[str, str, tuple[str, ...]]]:
    """The `access` of the token the issuer handed out in its request `index`."""
    return [(a.type, a.name, a.actions) for a in upstream.tokens.requests[index].granted]


# --- auth


def test_authenticated_pull_runs_the_token_dance(upstream: Upstream, repo: str) -> None:
    image = upstream.push_image(repo, "v1")
    with client(upstream) as http:
        r = get_manifest(http, repo, "v1")
        assert r.status_code == 200, r.text
        assert r.content == image.manifest
        assert r.headers["Content-Type"] == OCI_MANIFEST
        assert r.headers["Docker-Content-Digest"] == image.digest
        for blob in image.blobs:
            got = http.get(f"/v2/{repo}/blobs/{blob.digest}")
            assert got.status_code == 200
            assert got.content == blob.data
    scope = f"repository:{repo}:pull"
    assert upstream.tokens.count(scope, user=upstream.username, status=200) == 1 + len(image.blobs)
    # Each request met a challenge first: 401 then 200, through the proxy.
    assert upstream.faults.count("GET", "manifest", 401) == 1
    assert upstream.faults.count("GET", "manifest", 200) == 1
    assert upstream.faults.count("GET", "blob", 200) == len(image.blobs)
    assert granted(upstream) == [("repository", repo, ("pull",))]


def test_the_challenge_names_the_issuer_not_the_proxy(upstream: Upstream, repo: str) -> None:
    r = httpx.get(f"{upstream.url}/v2/{repo}/manifests/latest")
    assert r.status_code == 401
    params = challenge(r.headers["WWW-Authenticate"])
    assert params["realm"] == upstream.tokens.realm
    assert params["service"] == upstream.service
    assert params["scope"] == f"repository:{repo}:pull"


def test_anonymous_pull_of_a_public_repository(upstream: Upstream, repo: str) -> None:
    image = upstream.push_image(repo, "v1")
    upstream.public.add(repo)
    with client(upstream, anonymous=True) as http:
        r = get_manifest(http, repo, "v1")
    assert r.status_code == 200, r.text
    assert r.content == image.manifest
    assert upstream.tokens.count(f"repository:{repo}:pull", user=None, status=200) == 1


def test_anonymous_pull_of_a_private_repository_is_refused(upstream: Upstream, repo: str) -> None:
    upstream.push_image(repo, "v1")
    with client(upstream, anonymous=True) as http:
        r = get_manifest(http, repo, "v1")
    # The issuer grants nothing (not a 401, like Docker Hub); Distribution refuses the token.
    assert r.status_code == 401
    assert challenge(r.headers["WWW-Authenticate"])["error"] == "insufficient_scope"
    assert upstream.tokens.count(status=200) == 1
    assert granted(upstream) == []


def test_anonymous_push_to_a_public_repository_is_refused(upstream: Upstream, repo: str) -> None:
    upstream.public.add(repo)
    with client(upstream, anonymous=True) as http:
        r = http.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 401
    assert granted(upstream) == [("repository", repo, ("pull",))]


def test_a_wrong_password_gets_401_from_the_issuer(upstream: Upstream, repo: str) -> None:
    auth = BearerAuth(upstream.username, "wrong")
    with httpx.Client(base_url=upstream.url, auth=auth) as http:
        r = get_manifest(http, repo, "v1")
    assert r.status_code == 401
    assert str(r.url).startswith(upstream.tokens.realm)
    assert upstream.tokens.count(status=401) == 1


def test_a_pull_only_user_cannot_push(upstream: Upstream, repo: str) -> None:
    upstream.tokens.add_user("reader", "reader-pw", actions=("pull",))
    with httpx.Client(base_url=upstream.url, auth=BearerAuth("reader", "reader-pw")) as http:
        r = http.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 401
    assert granted(upstream) == [("repository", repo, ("pull",))]


@pytest.mark.parametrize("include", ["token", "access_token", "both"])
def test_the_token_answer_carries_the_chosen_fields(
    upstream: Upstream, repo: str, include: str
) -> None:
    upstream.tokens.include = include  # type: ignore[assignment]
    upstream.tokens.expires_in = 7
    r = httpx.get(
        upstream.tokens.realm,
        params={"service": upstream.service, "scope": f"repository:{repo}:pull"},
        auth=(upstream.username, upstream.password),
    )
    assert r.status_code == 200
    body = r.json()
    expected = {"token", "access_token"} if include == "both" else {include}
    assert set(body) == expected | {"expires_in", "issued_at"}
    assert body["expires_in"] == 7
    issued = datetime.datetime.fromisoformat(body["issued_at"])
    assert issued.tzinfo is not None
    token = body["access_token" if include == "access_token" else "token"]
    claims = jwt.decode(token, options={"verify_signature": False})  # Distribution verifies
    assert claims["aud"] == upstream.service
    assert claims["iss"] == upstream.tokens.issuer
    assert claims["sub"] == upstream.username
    assert claims["exp"] - claims["iat"] == 7


def test_an_answer_without_expires_in_leaves_it_out(upstream: Upstream) -> None:
    upstream.tokens.expires_in = None
    r = httpx.get(upstream.tokens.realm, params={"service": upstream.service})
    assert r.status_code == 200
    assert "expires_in" not in r.json()


# --- faults


def test_down_closes_the_connection_without_an_answer(upstream: Upstream, repo: str) -> None:
    upstream.faults.mode = "down"
    with client(upstream) as http, pytest.raises(httpx.TransportError):
        get_manifest(http, repo, "v1")
    assert upstream.faults.count("GET", "manifest", 0) == 1
    upstream.faults.mode = "pass"
    r = httpx.get(f"{upstream.url}/v2/")
    assert r.status_code == 401  # back up: Distribution answers again


def test_error500_answers_everything_500(upstream: Upstream, repo: str) -> None:
    upstream.push_image(repo, "v1")
    upstream.faults.mode = "error500"
    with client(upstream) as http:
        assert http.get("/v2/").status_code == 500
        assert get_manifest(http, repo, "v1").status_code == 500
        assert http.head(f"/v2/{repo}/manifests/v1").status_code == 500
    assert upstream.faults.count(status=500) == 3
    assert upstream.tokens.count() == 0  # no challenge ever reached the client


def test_ratelimit_refuses_manifest_gets_only(upstream: Upstream, repo: str) -> None:
    image = upstream.push_image(repo, "v1")
    upstream.faults.mode = "ratelimit"
    upstream.faults.retry_after = 17
    with client(upstream) as http:
        limited = get_manifest(http, repo, "v1")
        head = http.head(f"/v2/{repo}/manifests/v1", headers={"Accept": ACCEPT})
        blob = http.get(f"/v2/{repo}/blobs/{image.layers[0].digest}")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "17"
    assert [e["code"] for e in limited.json()["errors"]] == ["TOOMANYREQUESTS"]
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == image.digest
    assert blob.status_code == 200
    assert blob.content == image.layers[0].data


def test_slow_outlasts_a_short_client_timeout(upstream: Upstream, repo: str) -> None:
    upstream.faults.mode = "slow"
    upstream.faults.delay = 120  # far beyond the client's timeout; the reset below ends it
    with client(upstream, timeout=0.5) as http, pytest.raises(httpx.ReadTimeout):
        http.get("/v2/")
    upstream.faults.mode = "pass"
    with client(upstream, timeout=30) as http:
        assert http.get("/v2/").status_code == 200


def test_truncate_cuts_a_blob_body_under_its_full_length(upstream: Upstream, repo: str) -> None:
    image = upstream.push_image(repo, "v1", layer_sizes=(1024 * 1024,))
    layer = image.layers[0]
    upstream.faults.mode = "truncate"
    received = bytearray()
    with (
        client(upstream) as http,
        http.stream("GET", f"/v2/{repo}/blobs/{layer.digest}") as r,
    ):
        assert r.status_code == 200
        assert int(r.headers["Content-Length"]) == layer.size
        with pytest.raises(httpx.RemoteProtocolError):
            for data in r.iter_raw():
                received += data
    assert len(received) == layer.size // 2
    assert bytes(received) == layer.data[: layer.size // 2]


def test_truncate_leaves_manifests_whole(upstream: Upstream, repo: str) -> None:
    image = upstream.push_image(repo, "v1")
    upstream.faults.mode = "truncate"
    with client(upstream) as http:
        assert get_manifest(http, repo, "v1").content == image.manifest


def test_corrupt_changes_blob_bytes_but_not_their_length(upstream: Upstream, repo: str) -> None:
    image = upstream.push_image(repo, "v1", layer_sizes=(300 * 1024,))
    layer = image.layers[0]
    upstream.faults.mode = "corrupt"
    with client(upstream) as http:
        r = http.get(f"/v2/{repo}/blobs/{layer.digest}")
        manifest = get_manifest(http, repo, "v1")
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == layer.digest
    assert int(r.headers["Content-Length"]) == len(r.content) == layer.size
    assert sha256(r.content) != layer.digest
    assert manifest.content == image.manifest  # only blobs are corrupted


def test_an_unknown_mode_is_refused(upstream: Upstream) -> None:
    with pytest.raises(ValueError, match="unknown fault mode"):
        upstream.faults.mode = "flaky"  # type: ignore[assignment]


# --- counters


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("/v2/", "base"),
        ("/v2", "base"),
        ("/v2/_catalog?n=10", "catalog"),
        ("/v2/library/nginx/manifests/latest", "manifest"),
        ("/v2/a/b/c/manifests/sha256:" + "0" * 64, "manifest"),
        ("/v2/a/blobs/sha256:" + "0" * 64, "blob"),
        ("/v2/a/blobs/uploads/", "upload"),
        ("/v2/a/blobs/uploads/4f2c?_state=x", "upload"),
        ("/v2/a/b/tags/list?n=2&last=x", "tags"),
        ("/v2/a/referrers/sha256:" + "0" * 64, "referrers"),
        ("/token", "other"),
    ],
)
def test_requests_are_sorted_by_kind(target: str, kind: str) -> None:
    assert kind_of(target) == kind


def test_counters_count_and_reset(upstream: Upstream, repo: str) -> None:
    image = upstream.push_image(repo, "v1")
    with client(upstream) as http:
        assert http.get("/v2/").status_code == 200
        assert http.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
        # Distribution 2.8 has no referrers API: an unknown route, 404 before any challenge.
        assert http.get(f"/v2/{repo}/referrers/{image.digest}").status_code == 404
        http.head(f"/v2/{repo}/manifests/v1", headers={"Accept": ACCEPT})
    faults = upstream.faults
    assert faults.count("GET", "base") == 2  # the challenge, then with a token
    assert faults.count("GET", "tags", 200) == 1
    assert faults.count(kind="referrers") == faults.count("GET", "referrers", 404) == 1
    assert faults.count("HEAD", "manifest", 200) == 1
    assert faults.count("GET", "manifest") == 0
    assert faults.requests[-1].path == f"/v2/{repo}/manifests/v1"
    assert upstream.tokens.count() == 3  # /v2/ (no scope), tags, manifest
    upstream.reset()
    assert faults.requests == []
    assert upstream.tokens.requests == []


def test_seeding_does_not_show_in_the_counters(upstream: Upstream, repo: str) -> None:
    upstream.push_image(repo, "v1")
    assert upstream.faults.requests == []
    assert upstream.tokens.requests == []


# --- seeded content


def pull_exact(http: httpx.Client, repo: str, reference: str, body: bytes, media_type: str) -> None:
    r = get_manifest(http, repo, reference)
    assert r.status_code == 200, r.text
    assert r.content == body
    assert r.headers["Content-Type"] == media_type
    assert r.headers["Docker-Content-Digest"] == sha256(body)


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-list"])
def test_a_multi_arch_index_pulls_back_byte_exact(
    upstream: Upstream, repo: str, docker: bool
) -> None:
    index = upstream.push_docker_list(repo, "v1") if docker else upstream.push_index(repo, "v1")
    assert index.media_type == (DOCKER_LIST if docker else OCI_INDEX)
    listed = json.loads(index.manifest)["manifests"]
    assert [m["platform"]["architecture"] for m in listed] == ["amd64", "arm64"]
    with client(upstream) as http:
        pull_exact(http, repo, "v1", index.manifest, index.media_type)
        for child in index.children:
            assert child.media_type == (DOCKER_MANIFEST if docker else OCI_MANIFEST)
            pull_exact(http, repo, child.digest, child.manifest, child.media_type)
            for blob in child.blobs:
                assert http.get(f"/v2/{repo}/blobs/{blob.digest}").content == blob.data


def test_moving_a_tag_points_it_at_a_new_image(upstream: Upstream, repo: str) -> None:
    old = upstream.push_image(repo, "v1")
    new = upstream.move_tag(repo, "v1")
    assert new.digest != old.digest
    with client(upstream) as http:
        pull_exact(http, repo, "v1", new.manifest, OCI_MANIFEST)
        pull_exact(http, repo, old.digest, old.manifest, OCI_MANIFEST)


def test_a_deleted_manifest_is_gone_upstream(upstream: Upstream, repo: str) -> None:
    image = upstream.push_image(repo, "v1")
    upstream.delete(repo, image.digest)
    with client(upstream) as http:
        assert get_manifest(http, repo, image.digest).status_code == 404


def test_a_big_layer_streams_through_the_proxy_intact(upstream: Upstream, repo: str) -> None:
    image = upstream.push_big(repo, "big")
    layer = image.layers[0]
    assert layer.size == 32 * 1024 * 1024
    digest = hashlib.sha256()
    with client(upstream) as http, http.stream("GET", f"/v2/{repo}/blobs/{layer.digest}") as r:
        assert r.status_code == 200
        for data in r.iter_raw():
            digest.update(data)
    assert f"sha256:{digest.hexdigest()}" == layer.digest


def test_a_push_goes_through_the_proxy(upstream: Upstream, repo: str) -> None:
    """Request bodies stream through too, sized and chunked; upload locations name the proxy
    (Distribution builds them from the forwarded Host)."""
    data = b"pushed through the proxy" * 1000
    headers = {"Authorization": f"Bearer {upstream.seed_token(repo)}"}
    with httpx.Client(base_url=upstream.url, headers=headers) as http:
        started = http.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202
        assert started.headers["Location"].startswith(f"{upstream.url}/v2/{repo}/blobs/uploads/")
        patched = http.patch(started.headers["Location"], content=data[:1000])
        assert patched.status_code == 202
        pieces = iter([data[1000:5000], data[5000:]])  # no length: sent chunked
        location = httpx.URL(patched.headers["Location"])
        done = http.put(location.copy_merge_params({"digest": sha256(data)}), content=pieces)
        assert done.status_code == 201, done.text
        assert http.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data
    assert upstream.faults.count("PUT", "upload", 201) == 1
