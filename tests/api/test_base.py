"""`/v2/`, authentication for now, routing errors and the headers every answer carries."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import pytest

from tests.oci import error_codes
from tests.server import RunningRegistry


def test_ping_with_credentials(client: httpx.Client) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert r.json() == {}


def test_ping_without_credentials_is_challenged(registry_server: RunningRegistry) -> None:
    with registry_server.client(auth=False) as anonymous:
        r = anonymous.get("/v2/")
    assert r.status_code == 401
    host = registry_server.host
    assert r.headers["WWW-Authenticate"] == (f'Bearer realm="http://{host}/token",service="{host}"')
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert error_codes(r) == ["UNAUTHORIZED"]


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"admin:wrong").decode(),
        "Basic " + base64.b64encode(b"root:s3cret-Pa55").decode(),
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic !!!not-base64!!!",
        "Bearer abc.def.ghi",
        "Digest username=admin",
    ],
)
def test_bad_credentials_are_401_everywhere(
    registry_server: RunningRegistry, authorization: str
) -> None:
    with registry_server.client(auth=False) as http:
        for method, path in [
            ("GET", "/v2/"),
            ("GET", "/v2/_catalog"),
            ("GET", "/v2/x/tags/list"),
            ("HEAD", "/v2/x/manifests/latest"),
            ("POST", "/v2/x/blobs/uploads/"),
            ("DELETE", "/v2/x/manifests/latest"),
        ]:
            r = http.request(method, path, headers={"Authorization": authorization})
            assert r.status_code == 401, (method, path)
            assert "WWW-Authenticate" in r.headers


def test_unauthenticated_requests_change_nothing(
    registry_server: RunningRegistry, client: httpx.Client, repo: str
) -> None:
    with registry_server.client(auth=False) as anonymous:
        r = anonymous.post(f"/v2/{repo}/blobs/uploads/", params={"digest": "sha256:" + "0" * 64})
        assert r.status_code == 401
        r = anonymous.put(f"/v2/{repo}/manifests/latest", content=b"{}")
        assert r.status_code == 401
    assert client.get(f"/v2/{repo}/tags/list").status_code == 404


def test_unknown_route_is_404_in_the_error_envelope(client: httpx.Client) -> None:
    for path in ["/v2/x/unknown", "/v3/", "/", "/v2/x/blobs"]:
        r = client.get(path)
        assert r.status_code == 404, path
        assert error_codes(r) == ["UNSUPPORTED"]


def test_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    r = client.post("/v2/x/manifests/latest")
    assert r.status_code == 405
    assert r.headers["Allow"] == "DELETE, GET, HEAD, PUT"
    assert error_codes(r) == ["UNSUPPORTED"]
    r = client.patch("/v2/_catalog")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"


def test_anonymous_mode_needs_no_credentials(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    server = start_registry("-anonymous", password=None)
    assert any("ANYONE" in line for line in server.output)
    with server.client(auth=False) as http:
        assert http.get("/v2/").status_code == 401  # the ping still says how to log in
        assert http.get("/v2/_catalog").status_code == 200
        r = http.post("/v2/open/repo/blobs/uploads/", params={"digest": _EMPTY}, content=b"")
        assert r.status_code == 201


_EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
