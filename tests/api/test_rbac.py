"""RBAC, static tokens and the Docker token flow, over HTTP to the application in-process
(see `serve_in_process` in conftest.py); the challenges built from raw `Host` headers go to
the real server, through a socket.

One server per backend with manifests for: an admin (flags), alice (group team-a, pushes
`team-a/*`), bob (group readers, pulls `library/*` and sees the catalog), anonymous (pulls
`library/*`), a CI robot with a static token that pushes `ci/*`, and dave (pulls `a/one`,
`c/three` and `e/five` and sees the catalog; also with a static token), whose repositories are
interleaved with ones he may not see. Every route is tried by every identity.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import httpx
import jwt
import pytest

from tests.conftest import InProcessRegistry, serve_in_process, serve_in_process_on
from tests.oci import OCI_MANIFEST, digest_of, follow_pages, image_manifest, push_image
from tests.server import PASSWORD, RunningRegistry, raw_request

SECRET = "a-test-token-secret-of-enough-length-0123456789"
ROBOT_TOKEN = "robot-static-token-value"
EXPIRED_TOKEN = "an-expired-robot-token"
DAVE_TOKEN = "dave-static-token-value"
DAVES = ["a/one", "c/three", "e/five"]
NOT_DAVES = ["b/two", "d/four"]


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def _manifests() -> str:
    docs = [
        ("User", "alice", {"passwordHash": _hash("alice-pw"), "groups": ["team-a"]}),
        ("User", "bob", {"passwordHash": _hash("bob-pw"), "groups": ["readers"]}),
        ("User", "anonymous", {"groups": ["guests"]}),
        ("User", "robot", {}),
        ("User", "dave", {"passwordHash": _hash("dave-pw")}),
        (
            "Token",
            "dave",
            {"username": "dave", "valueSha256": hashlib.sha256(DAVE_TOKEN.encode()).hexdigest()},
        ),
        (
            "Token",
            "ci",
            {"username": "robot", "valueSha256": hashlib.sha256(ROBOT_TOKEN.encode()).hexdigest()},
        ),
        (
            "Token",
            "old-ci",
            {
                "username": "robot",
                "valueSha256": hashlib.sha256(EXPIRED_TOKEN.encode()).hexdigest(),
                "expiresAt": "2020-01-01T00:00:00Z",
            },
        ),
        (
            "Role",
            "reader",
            {"resources": ["catalog", "tags", "blobs", "manifests"], "verbs": ["GET"]},
        ),
        ("Role", "pusher", {"resources": ["*"], "verbs": ["pull", "push"]}),
        (
            "RoleBinding",
            "team-a",
            {
                "subjects": [{"kind": "Group", "name": "team-a"}],
                "roleRef": {"name": "pusher"},
                "scopes": ["^team-a/"],
            },
        ),
        (
            "RoleBinding",
            "readers",
            {
                "subjects": [{"kind": "Group", "name": "readers"}],
                "roleRef": {"name": "reader"},
                "scopes": ["^$", "^library/"],
            },
        ),
        (
            "RoleBinding",
            "guests",
            {
                "subjects": [{"kind": "Group", "name": "guests"}],
                "roleRef": {"name": "reader"},
                "scopes": ["^library/app$"],
            },
        ),
        (
            "RoleBinding",
            "robot",
            {
                "subjects": [{"kind": "User", "name": "robot"}],
                "roleRef": {"name": "pusher"},
                "scopes": ["^ci/"],
            },
        ),
        (
            "RoleBinding",
            "dave",
            {
                "subjects": [{"kind": "User", "name": "dave"}],
                "roleRef": {"name": "reader"},
                "scopes": ["^$", *(f"^{name}$" for name in DAVES)],
            },
        ),
    ]
    return "\n---\n".join(
        json.dumps(
            {"apiVersion": "simple-registry.dev/v1", "kind": k, "metadata": {"name": n}, "spec": s}
        )
        for k, n, s in docs
    )


REPOSITORIES = ["library/app", "team-a/app", "team-b/app", "ci/app", *DAVES, *NOT_DAVES]


@pytest.fixture(scope="module", params=["filesystem", "s3+redis"])
def rbac_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessRegistry]:
    root = tmp_path_factory.mktemp("rbac")
    (root / "cfg").mkdir()
    (root / "cfg" / "all.yaml").write_text(_manifests())
    flags = ("-cfgdir", str(root / "cfg"), "-tokensecret", SECRET)
    with serve_in_process_on(request.param, request, root / "data", *flags) as server:
        with server.client() as admin:
            for repo in REPOSITORIES:
                push_image(admin, repo, "v1")
        yield server


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


IDENTITIES: dict[str, dict[str, str]] = {
    "admin": _basic("admin", PASSWORD),
    "alice": _basic("alice", "alice-pw"),
    "bob": _basic("bob", "bob-pw"),
    "anonymous": {},
    "robot-bearer": {"Authorization": f"Bearer {ROBOT_TOKEN}"},
    "robot-basic": _basic("robot", ROBOT_TOKEN),
    "dave": _basic("dave", "dave-pw"),
}

# (identity, method, path, expected status). Pushes use a fresh upload each time.
CASES = [
    ("admin", "GET", "/v2/_catalog", 200),
    ("bob", "GET", "/v2/_catalog", 200),
    ("alice", "GET", "/v2/_catalog", 403),  # her binding's scopes do not match "" (the catalog)
    ("anonymous", "GET", "/v2/_catalog", 401),
    ("anonymous", "GET", "/v2/", 401),  # the ping always challenges (clients log in there)
    ("bob", "GET", "/v2/library/app/tags/list", 200),
    ("bob", "HEAD", "/v2/library/app/manifests/v1", 200),
    ("bob", "GET", "/v2/library/app/manifests/v1", 200),
    ("bob", "GET", "/v2/team-a/app/manifests/v1", 403),
    ("bob", "POST", "/v2/library/app/blobs/uploads/", 403),
    ("bob", "DELETE", "/v2/library/app/manifests/v1", 403),
    ("anonymous", "HEAD", "/v2/library/app/manifests/v1", 200),
    ("anonymous", "GET", "/v2/library/app/tags/list", 200),
    ("anonymous", "GET", "/v2/library/other/tags/list", 401),
    ("anonymous", "GET", "/v2/team-a/app/manifests/v1", 401),
    ("anonymous", "POST", "/v2/library/app/blobs/uploads/", 401),
    ("alice", "GET", "/v2/team-a/app/manifests/v1", 200),
    ("alice", "POST", "/v2/team-a/app/blobs/uploads/", 202),
    ("alice", "POST", "/v2/team-b/app/blobs/uploads/", 403),
    ("alice", "GET", "/v2/team-b/app/manifests/v1", 403),
    ("alice", "DELETE", "/v2/team-a/app/manifests/v1", 403),  # pusher has no delete
    ("robot-bearer", "POST", "/v2/ci/app/blobs/uploads/", 202),
    ("robot-bearer", "GET", "/v2/ci/app/manifests/v1", 200),
    ("robot-bearer", "POST", "/v2/team-a/app/blobs/uploads/", 403),  # a static token is final
    ("robot-basic", "POST", "/v2/ci/app/blobs/uploads/", 202),
    ("robot-basic", "POST", "/v2/library/app/blobs/uploads/", 403),
    ("admin", "DELETE", "/v2/team-b/app/manifests/nothing", 404),
]

# Every route x read/write/delete, for a reader (bob), a pusher (alice) and anonymous, on a
# repository where each is allowed and one where they are not. An allowed request on an unknown
# upload or blob gets 404: the check passed and only then was storage asked.
_UPLOAD = "0" * 32
_BLOB = "sha256:" + "0" * 64
ROUTES = [
    ("read", "GET", "/v2/{repo}/tags/list"),
    ("read", "GET", "/v2/{repo}/manifests/v1"),
    ("read", "HEAD", "/v2/{repo}/manifests/v1"),
    ("read", "GET", f"/v2/{{repo}}/blobs/{_BLOB}"),
    ("read", "HEAD", f"/v2/{{repo}}/blobs/{_BLOB}"),
    ("read", "GET", f"/v2/{{repo}}/referrers/{_BLOB}"),
    ("write", "PUT", "/v2/{repo}/manifests/v2"),
    ("write", "POST", "/v2/{repo}/blobs/uploads/"),
    ("write", "GET", f"/v2/{{repo}}/blobs/uploads/{_UPLOAD}"),
    ("write", "PATCH", f"/v2/{{repo}}/blobs/uploads/{_UPLOAD}"),
    ("write", "PUT", f"/v2/{{repo}}/blobs/uploads/{_UPLOAD}?digest={_BLOB}"),
    ("write", "DELETE", f"/v2/{{repo}}/blobs/uploads/{_UPLOAD}"),
    ("delete", "DELETE", "/v2/{repo}/manifests/v9"),
    ("delete", "DELETE", f"/v2/{{repo}}/blobs/{_BLOB}"),
]
_OK = {  # the status of an allowed request on this fixture's content
    ("GET", "/v2/{repo}/tags/list"): 200,
    ("GET", "/v2/{repo}/manifests/v1"): 200,
    ("HEAD", "/v2/{repo}/manifests/v1"): 200,
    ("GET", f"/v2/{{repo}}/blobs/{_BLOB}"): 404,
    ("HEAD", f"/v2/{{repo}}/blobs/{_BLOB}"): 404,
    ("GET", f"/v2/{{repo}}/referrers/{_BLOB}"): 200,
    ("PUT", "/v2/{repo}/manifests/v2"): 400,  # an empty body is not a manifest
    ("POST", "/v2/{repo}/blobs/uploads/"): 202,
    ("DELETE", "/v2/{repo}/manifests/v9"): 404,
    ("DELETE", f"/v2/{{repo}}/blobs/{_BLOB}"): 404,
}
# who may do what where: identity -> {repository: allowed kinds}
GRANTS = {
    "bob": {"library/app": {"read"}, "team-a/app": set()},
    "alice": {"team-a/app": {"read", "write"}, "team-b/app": set()},
    "anonymous": {"library/app": {"read"}, "team-a/app": set()},
    "admin": {"team-b/app": {"read", "write", "delete"}},
}
MATRIX = [
    (who, method, path.format(repo=repo), kind in kinds, _OK.get((method, path), 404))
    for who, repos in GRANTS.items()
    for repo, kinds in repos.items()
    for kind, method, path in ROUTES
]


@pytest.mark.parametrize(("identity", "method", "path", "allowed", "ok_status"), MATRIX)
def test_every_route_allows_or_denies(
    rbac_server: InProcessRegistry,
    identity: str,
    method: str,
    path: str,
    allowed: bool,
    ok_status: int,
) -> None:
    with rbac_server.client(auth=False) as http:
        r = http.request(method, path, headers=IDENTITIES[identity])
    if allowed:
        assert r.status_code == ok_status, r.text
    else:
        assert r.status_code == (401 if identity == "anonymous" else 403), r.text


@pytest.mark.parametrize(("identity", "method", "path", "expected"), CASES)
def test_route_by_identity(
    rbac_server: InProcessRegistry, identity: str, method: str, path: str, expected: int
) -> None:
    with rbac_server.client(auth=False) as http:
        r = http.request(method, path, headers=IDENTITIES[identity])
    assert r.status_code == expected, r.text
    if expected == 401:
        challenge = r.headers["WWW-Authenticate"]
        assert challenge.startswith(f'Bearer realm="{rbac_server.url}/token"')
        assert f'service="{rbac_server.host}"' in challenge
    if expected == 403:
        assert r.json()["errors"][0]["code"] == "DENIED"


def test_catalog_is_filtered_and_paginates(rbac_server: InProcessRegistry) -> None:
    with rbac_server.client(auth=False) as http:
        assert http.get("/v2/_catalog", headers=IDENTITIES["bob"]).json() == {
            "repositories": ["library/app"]
        }
        everything = http.get("/v2/_catalog", headers=IDENTITIES["admin"]).json()
        assert everything == {"repositories": sorted(REPOSITORIES)}
        page = http.get("/v2/_catalog", params={"n": 1}, headers=IDENTITIES["admin"])
        assert page.json() == {"repositories": ["a/one"]}
        assert "last=a%2Fone" in page.headers["Link"]


def test_expired_static_token_is_refused(rbac_server: InProcessRegistry) -> None:
    with rbac_server.client(auth=False) as http:
        r = http.get("/v2/ci/app/tags/list", headers={"Authorization": f"Bearer {EXPIRED_TOKEN}"})
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
        r = http.get("/v2/ci/app/tags/list", headers=_basic("robot", EXPIRED_TOKEN))
        assert r.status_code == 401


def _token(server: InProcessRegistry, headers: dict[str, str], *scopes: str) -> dict[str, object]:
    with server.client(auth=False) as http:
        r = http.get(
            "/token",
            params=[("service", server.host), *(("scope", s) for s in scopes)],
            headers=headers,
        )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_token_flow_downscopes(rbac_server: InProcessRegistry) -> None:
    body = _token(
        rbac_server, IDENTITIES["bob"], "repository:library/app:pull,push", "registry:catalog:*"
    )
    assert body["token"] == body["access_token"]
    assert isinstance(body["expires_in"], int) and body["expires_in"] >= 60
    assert isinstance(body["issued_at"], str)
    claims = jwt.decode(str(body["token"]), options={"verify_signature": False})
    assert claims["access"] == [
        {"type": "repository", "name": "library/app", "actions": ["pull"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    assert claims["sub"] == "bob"
    assert claims["aud"] == rbac_server.host
    for claim in ("iss", "exp", "nbf", "iat", "jti"):
        assert claim in claims
    bearer = {"Authorization": f"Bearer {body['token']}"}
    with rbac_server.client(auth=False, headers=bearer) as http:
        assert http.get("/v2/library/app/manifests/v1").status_code == 200
        assert http.get("/v2/_catalog").status_code == 200
        push = http.post("/v2/library/app/blobs/uploads/")
        assert push.status_code == 401
        assert 'error="insufficient_scope"' in push.headers["WWW-Authenticate"]
        assert 'scope="repository:library/app:pull,push"' in push.headers["WWW-Authenticate"]
        other = http.get("/v2/team-a/app/manifests/v1")
        assert other.status_code == 401  # the token is for another repository


def test_token_for_anonymous_and_bad_credentials(rbac_server: InProcessRegistry) -> None:
    body = _token(rbac_server, {}, "repository:library/app:pull", "repository:team-a/app:pull")
    claims = jwt.decode(str(body["token"]), options={"verify_signature": False})
    assert claims["sub"] == "anonymous"
    assert claims["access"] == [{"type": "repository", "name": "library/app", "actions": ["pull"]}]
    with rbac_server.client(auth=False) as http:
        r = http.get(
            "/token",
            params={"scope": "repository:library/app:pull"},
            headers=_basic("bob", "wrong"),
        )
        assert r.status_code == 401
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_oauth2_password_and_refresh(rbac_server: InProcessRegistry) -> None:
    with rbac_server.client(auth=False) as http:
        r = http.post(
            "/token",
            data={
                "grant_type": "password",
                "username": "alice",
                "password": "alice-pw",
                "service": rbac_server.host,
                "scope": "repository:team-a/app:pull,push",
                "client_id": "test",
                "access_type": "offline",
            },
        )
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["scope"] == "repository:team-a/app:pull,push"
        r = http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": first["refresh_token"],
                "service": rbac_server.host,
                "scope": "repository:team-a/app:pull",
            },
        )
        assert r.status_code == 200, r.text
        bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert http.get("/v2/team-a/app/manifests/v1", headers=bearer).status_code == 200
        # an access token is not a refresh token
        r = http.post(
            "/token", data={"grant_type": "refresh_token", "refresh_token": first["access_token"]}
        )
        assert r.status_code == 401
        r = http.post(
            "/token", data={"grant_type": "password", "username": "alice", "password": "nope"}
        )
        assert r.status_code == 401
        r = http.post("/token", data={"grant_type": "magic"})
        assert r.status_code == 405 or r.status_code == 400


def _forge(claims: dict[str, object], key: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def test_forged_tokens_are_invalid(rbac_server: InProcessRegistry) -> None:
    good = _token(rbac_server, IDENTITIES["bob"], "repository:library/app:pull")
    header, payload, signature = str(good["token"]).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered_claims = dict(
        claims, access=[{"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]}]
    )
    tampered_payload = base64.urlsafe_b64encode(json.dumps(tampered_claims).encode()).rstrip(b"=")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    expired = dict(
        claims,
        exp=int(time.time()) - 3600,
        iat=int(time.time()) - 7200,
        nbf=int(time.time()) - 7200,
    )
    bad = {
        "tampered": f"{header}.{tampered_payload.decode()}.{signature}",
        "alg none": f"{none_header}.{payload}.",
        "other key": _forge(claims, key="another-secret-of-enough-length-000000000000"),
        "expired": _forge(expired),
        "garbage": "not.a.jwt",
    }
    with rbac_server.client(auth=False) as http:
        for name, token in bad.items():
            r = http.get(
                "/v2/library/app/manifests/v1", headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 401, name
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"], name


def test_upload_of_another_principal_is_unknown(rbac_server: InProcessRegistry) -> None:
    with rbac_server.client(auth=False) as http:
        location = http.post(
            "/v2/ci/app/blobs/uploads/", headers=IDENTITIES["robot-bearer"]
        ).headers["Location"]
        r = http.patch(location, content=b"x", headers=IDENTITIES["admin"])
        assert r.status_code == 404
        assert r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
        assert http.get(location, headers=IDENTITIES["robot-bearer"]).status_code == 204


def test_mount_needs_pull_on_the_source(rbac_server: InProcessRegistry) -> None:
    with rbac_server.client(auth=False) as http:
        layer = http.get("/v2/team-b/app/manifests/v1", headers=IDENTITIES["admin"]).json()[
            "layers"
        ][0]["digest"]
        r = http.post(
            "/v2/team-a/app/blobs/uploads/",
            params={"mount": layer, "from": "team-b/app"},
            headers=IDENTITIES["alice"],
        )
        assert r.status_code == 403
        r = http.post(
            "/v2/team-a/app/blobs/uploads/",
            params={"mount": layer},
            headers=IDENTITIES["alice"],
        )
        assert r.status_code == 202  # no readable holder: a plain session, nothing linked
        assert (
            http.head(f"/v2/team-a/app/blobs/{layer}", headers=IDENTITIES["alice"]).status_code
            == 404
        )


def test_seed_pattern_allows_pulls_by_tag(tmp_path: Path) -> None:
    """The Go simple-registry matched `name:tag`, so `^team/app$` refused pulls by tag; we
    match the name too."""
    (tmp_path / "cfg").mkdir()
    docs = [
        {
            "apiVersion": "simple-registry.jlsalvador.online/v1beta1",
            "kind": "User",
            "metadata": {"name": "carol"},
            "spec": {"passwordHash": _hash("carol-pw")},
        },
        {
            "apiVersion": "simple-registry.jlsalvador.online/v1beta1",
            "kind": "Role",
            "metadata": {"name": "read"},
            "spec": {"resources": ["manifests"], "verbs": ["GET"]},
        },
        {
            "apiVersion": "simple-registry.jlsalvador.online/v1beta1",
            "kind": "RoleBinding",
            "metadata": {"name": "carol"},
            "spec": {
                "subjects": [{"kind": "User", "name": "carol"}],
                "roleRef": {"name": "read"},
                "scopes": ["^team/app$"],
            },
        },
    ]
    (tmp_path / "cfg" / "seed.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    with serve_in_process(tmp_path / "data", "-cfgdir", str(tmp_path / "cfg")) as server:
        with server.client() as admin:
            pushed = push_image(admin, "team/app", "v1")
        with server.client(auth=False, headers=_basic("carol", "carol-pw")) as http:
            r = http.head("/v2/team/app/manifests/v1")  # HEAD allowed by GET, by tag
            assert r.status_code == 200
            assert r.headers["Docker-Content-Digest"] == pushed.digest
            assert http.get(f"/v2/team/app/manifests/{pushed.digest}").status_code == 200
            assert (
                http.put(
                    "/v2/team/app/manifests/v2",
                    content=pushed.body,
                    headers={"Content-Type": OCI_MANIFEST},
                ).status_code
                == 403
            )
            assert http.get(f"/v2/team/app/blobs/{digest_of(b'x')}").status_code == 403


def test_head_only_role_allows_head_and_not_get(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    api = "simple-registry.dev/v1"
    docs = [
        {
            "apiVersion": api,
            "kind": "User",
            "metadata": {"name": "probe"},
            "spec": {"passwordHash": _hash("probe-pw")},
        },
        {
            "apiVersion": api,
            "kind": "Role",
            "metadata": {"name": "exists"},
            "spec": {"resources": ["manifests"], "verbs": ["HEAD"]},
        },
        {
            "apiVersion": api,
            "kind": "RoleBinding",
            "metadata": {"name": "probe"},
            "spec": {
                "subjects": [{"kind": "User", "name": "probe"}],
                "roleRef": {"name": "exists"},
                "scopes": [".*"],
            },
        },
    ]
    (tmp_path / "cfg" / "m.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    with serve_in_process(tmp_path / "data", "-cfgdir", str(tmp_path / "cfg")) as server:
        with server.client() as admin:
            push_image(admin, "x/y", "v1")
        with server.client(auth=False, headers=_basic("probe", "probe-pw")) as http:
            assert http.head("/v2/x/y/manifests/v1").status_code == 200
            assert http.get("/v2/x/y/manifests/v1").status_code == 403


def test_token_endpoint_limits(rbac_server: InProcessRegistry) -> None:
    with rbac_server.client(auth=False) as http:
        many = tuple(("scope", f"repository:library/r{i}:pull") for i in range(101))
        r = http.get("/token", params=many, headers=IDENTITIES["bob"])
        assert r.status_code == 400
        r = http.post(
            "/token",
            content=b"grant_type=password&x=" + b"a" * 70_000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 400
        assert r.json()["errors"][0]["code"] == "UNSUPPORTED"


def _bearer(server: InProcessRegistry, identity: str, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(server, IDENTITIES[identity], *scopes)['token']}"}


def test_catalog_token_of_an_admin_lists_every_repository(rbac_server: InProcessRegistry) -> None:
    """Clients ask for `registry:catalog:*` alone; the list is what the subject may pull."""
    bearer = _bearer(rbac_server, "admin", "registry:catalog:*")
    with rbac_server.client(auth=False, headers=bearer) as http:
        r = http.get("/v2/_catalog")
    assert r.status_code == 200, r.text
    assert r.json() == {"repositories": sorted(REPOSITORIES)}


def test_catalog_token_of_a_user_lists_what_the_user_may_pull(
    rbac_server: InProcessRegistry,
) -> None:
    for identity, expected in (("dave", DAVES), ("bob", ["library/app"])):
        # A repository claim in the same token neither adds to the list nor limits it.
        bearer = _bearer(rbac_server, identity, "registry:catalog:*", "repository:a/one:pull")
        with rbac_server.client(auth=False, headers=bearer) as http:
            assert http.get("/v2/_catalog").json() == {"repositories": expected}, identity


def test_catalog_token_pages_through_the_filtered_list(rbac_server: InProcessRegistry) -> None:
    bearer = _bearer(rbac_server, "dave", "registry:catalog:*")
    with rbac_server.client(auth=False, headers=bearer) as http:
        assert follow_pages(http, "/v2/_catalog", "repositories", 1) == DAVES
        assert follow_pages(http, "/v2/_catalog", "repositories", 2) == DAVES
        # `last` between visible names, on a hidden one, and at the end of the list.
        r = http.get("/v2/_catalog", params={"n": 1, "last": "a/one"})
        assert r.json() == {"repositories": ["c/three"]}
        assert r.headers["Link"] == '</v2/_catalog?last=c%2Fthree&n=1>; rel="next"'
        r = http.get("/v2/_catalog", params={"n": 1, "last": "d/four"})
        assert r.json() == {"repositories": ["e/five"]}
        assert "Link" not in r.headers
        r = http.get("/v2/_catalog", params={"last": "e/five"})
        assert r.json() == {"repositories": []}
        assert "Link" not in r.headers


def test_catalog_needs_the_catalog_scope(rbac_server: InProcessRegistry) -> None:
    """Without `registry:catalog:*` in the token (asked for, or granted) the client is sent for
    one: 401 insufficient_scope naming it."""
    for identity, scopes in (
        ("dave", ["repository:a/one:pull"]),
        ("alice", ["registry:catalog:*"]),
    ):
        with rbac_server.client(
            auth=False, headers=_bearer(rbac_server, identity, *scopes)
        ) as http:
            r = http.get("/v2/_catalog")
        assert r.status_code == 401, identity
        challenge = r.headers["WWW-Authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert 'scope="registry:catalog:*"' in challenge


def test_catalog_of_a_static_token_keeps_its_limits(rbac_server: InProcessRegistry) -> None:
    """A static token acts as its user, with nothing widened for the catalog."""
    for headers in ({"Authorization": f"Bearer {DAVE_TOKEN}"}, _basic("dave", DAVE_TOKEN)):
        with rbac_server.client(auth=False, headers=headers) as http:
            assert http.get("/v2/_catalog").json() == {"repositories": DAVES}
            assert follow_pages(http, "/v2/_catalog", "repositories", 1) == DAVES


_PULL_PUSH = 'scope="repository:library/app:pull,push"'
_DELETE = 'scope="repository:library/app:delete"'
WRITES = [
    ("POST", "/v2/library/app/blobs/uploads/", _PULL_PUSH),
    ("POST", f"/v2/library/app/blobs/uploads/?digest={_BLOB}", _PULL_PUSH),
    ("GET", f"/v2/library/app/blobs/uploads/{_UPLOAD}", _PULL_PUSH),
    ("PATCH", f"/v2/library/app/blobs/uploads/{_UPLOAD}", _PULL_PUSH),
    ("PUT", f"/v2/library/app/blobs/uploads/{_UPLOAD}?digest={_BLOB}", _PULL_PUSH),
    ("DELETE", f"/v2/library/app/blobs/uploads/{_UPLOAD}", _PULL_PUSH),
    (
        "POST",
        f"/v2/library/app/blobs/uploads/?mount={_BLOB}&from=team-a/app",
        'scope="repository:library/app:pull,push repository:team-a/app:pull"',
    ),
    ("PUT", "/v2/library/app/manifests/v2", _PULL_PUSH),
    ("DELETE", "/v2/library/app/manifests/v1", _DELETE),  # Distribution asks for delete alone
    ("DELETE", f"/v2/library/app/blobs/{_BLOB}", _DELETE),
]


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    WRITES,
    ids=[f"{m} {p.replace(_BLOB, 'D').replace(_UPLOAD, 'U')}" for m, p, _ in WRITES],
)
def test_write_challenges_ask_for_pull_and_push(
    rbac_server: InProcessRegistry, method: str, path: str, scope: str
) -> None:
    with rbac_server.client(auth=False) as http:
        r = http.request(method, path)  # anonymous may only read library/app
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge == (
        f'Bearer realm="{rbac_server.url}/token",service="{rbac_server.host}",{scope}'
    )


def _challenge_params(challenge: str) -> dict[str, str]:
    assert challenge.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', challenge))


def test_one_token_from_the_first_challenge_pushes_and_reads_back(
    rbac_server: InProcessRegistry,
) -> None:
    """A client that takes one token per operation (oras-py keeps it for good): the token from
    the push's first 401 must carry existence checks, the push and the read back, every step
    answered without a 401."""
    repo = "team-a/one-token"
    with rbac_server.client(auth=False) as http:
        first = http.post(f"/v2/{repo}/blobs/uploads/")
        assert first.status_code == 401
        params = _challenge_params(first.headers["WWW-Authenticate"])
        r = http.get(
            params["realm"],
            params={"service": params["service"], "scope": params["scope"]},
            headers=IDENTITIES["alice"],
        )
        assert r.status_code == 200, r.text
    bearer = {"Authorization": f"Bearer {r.json()['token']}"}
    with rbac_server.client(auth=False, headers=bearer) as http:
        layer = b"a layer pushed with one token"
        layer_digest = digest_of(layer)
        assert http.head(f"/v2/{repo}/blobs/{layer_digest}").status_code == 404
        started = http.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        assert http.patch(location, content=layer).status_code == 202
        done = http.put(location, params={"digest": layer_digest})
        assert done.status_code == 201, done.text
        assert http.head(f"/v2/{repo}/blobs/{layer_digest}").status_code == 200
        body, _ = image_manifest(http, repo)  # pushes its config and layer monolithically
        r = http.put(
            f"/v2/{repo}/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
        )
        assert r.status_code == 201, r.text
        assert http.get(f"/v2/{repo}/manifests/v1").content == body
        assert http.get(f"/v2/{repo}/blobs/{layer_digest}").content == layer


_CHALLENGE_PARAM = re.compile(r'([a-z]+)="([^"\\]*)"(?:,|$)')


def _challenge(header: str) -> dict[str, str]:
    """The parameters of a `Bearer` challenge, asserting it is well formed throughout."""
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer", header
    params = _CHALLENGE_PARAM.findall(rest)
    assert ",".join(f'{k}="{v}"' for k, v in params) == rest, header
    return dict(params)


@pytest.mark.parametrize(
    "host",
    ['a"b,c=d', "[", "a b", "x\\y", "", "host:port", "a/b"],
    ids=["quote-comma", "open-bracket", "space", "backslash", "empty", "bad-port", "slash"],
)
def test_challenge_for_a_bad_host_is_one_that_works(
    registry_server: RunningRegistry, repo: str, host: str
) -> None:
    """The `Host` is not copied into the challenge unless it is a host; instead the challenge
    names the address the client connected to, where the token endpoint answers."""
    with registry_server.client() as admin:
        push_image(admin, repo, "v1")
    r = raw_request(registry_server, "GET", f"/v2/{repo}/tags/list", {"Host": host}, auth=False)
    assert r.status == 401
    params = _challenge(r.headers["www-authenticate"])
    assert params == {
        "realm": f"{registry_server.url}/token",
        "service": registry_server.host,
        "scope": f"repository:{repo}:pull",
    }
    with httpx.Client() as http:
        token = http.get(
            params["realm"],
            params={"service": params["service"], "scope": params["scope"]},
            headers=_basic("admin", PASSWORD),
        ).json()["token"]
    bearer = {"Host": host, "Authorization": f"Bearer {token}"}
    r = raw_request(registry_server, "GET", f"/v2/{repo}/tags/list", bearer)
    assert r.status == 200, r.body
    assert json.loads(r.body)["name"] == repo


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("registry.example.com", "registry.example.com"),
        ("registry.example.com:5443", "registry.example.com:5443"),
        ("10.0.0.1:80", "10.0.0.1:80"),
        ("[2001:db8::1]:5000", "[2001:db8::1]:5000"),
    ],
)
def test_challenge_keeps_a_good_host(
    registry_server: RunningRegistry, host: str, expected: str
) -> None:
    r = raw_request(registry_server, "GET", "/v2/team-b/app/tags/list", {"Host": host}, auth=False)
    assert _challenge(r.headers["www-authenticate"]) == {
        "realm": f"http://{expected}/token",
        "service": expected,
        "scope": "repository:team-b/app:pull",
    }


def test_bad_forwarded_headers_fall_back(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    """Trusted or not, a forwarded host or scheme that is not one is not copied: the request's
    own `Host` and scheme are used instead, and with neither usable, the configured service."""
    server = start_registry("-trustforwarded")
    bad = {"X-Forwarded-Host": 'evil"x, y', "X-Forwarded-Proto": 'javascript"'}
    r = raw_request(server, "GET", "/v2/", bad, auth=False)
    assert _challenge(r.headers["www-authenticate"]) == {
        "realm": f"{server.url}/token",
        "service": server.host,
    }
    served = start_registry("-trustforwarded", "-service", "registry.example.com")
    r = raw_request(served, "GET", "/v2/", {**bad, "Host": "a b"}, auth=False)
    assert _challenge(r.headers["www-authenticate"]) == {
        "realm": "http://registry.example.com/token",
        "service": "registry.example.com",
    }
