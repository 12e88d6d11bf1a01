"""Invalid names and path traversal never reach storage, whatever the route or the encoding."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.oci import digest_of, error_codes, push_image
from tests.server import RunningRegistry, basic_header

DIGEST = digest_of(b"x")


def test_tag_with_traversal_is_tag_invalid(app_client: httpx.Client, repo: str) -> None:
    pushed = push_image(app_client, repo)
    r = app_client.put(
        f"/v2/{repo}/manifests/..%2F..%2Fx",
        content=pushed.body,
        headers={"Content-Type": pushed.media_type},
    )
    assert r.status_code in (400, 404)
    if r.status_code == 400:
        assert error_codes(r) == ["TAG_INVALID"]


def test_long_name_is_name_invalid(app_client: httpx.Client) -> None:
    r = app_client.get(f"/v2/{'a' * 256}/tags/list")
    assert r.status_code == 400
    assert error_codes(r) == ["NAME_INVALID"]


@pytest.mark.parametrize("suffix", ["%0a", "%0d%0a"])
def test_tag_with_a_trailing_newline_is_tag_invalid(
    app_client: httpx.Client, repo: str, suffix: str
) -> None:
    pushed = push_image(app_client, repo, "nl")
    r = app_client.put(
        f"/v2/{repo}/manifests/nl{suffix}",
        content=pushed.body,
        headers={"Content-Type": pushed.media_type},
    )
    assert r.status_code == 400
    assert error_codes(r) == ["TAG_INVALID"]
    assert app_client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["nl"]
    # Reading by a reference that is no valid tag finds nothing, as the conformance suite wants.
    r = app_client.get(f"/v2/{repo}/manifests/nl{suffix}")
    assert r.status_code == 404
    assert error_codes(r) == ["MANIFEST_UNKNOWN"]


# --- End to end, through the real server: requests written on a raw socket, with names no
# HTTP client would send as they are.


def _raw(server: RunningRegistry, method: str, path: str) -> tuple[int, bytes]:
    """Send the path byte for byte (httpx would normalise `..` away)."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(
            (
                f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Authorization: {basic_header(server)}\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "../..",
        "a/../b",
        "%2e%2e",
        "a/%2e%2e/b",
        "%2E%2E/%2E%2E/etc",
        "a%2f..%2fb",
        "UPPER",
        "_uploads",
        "a/_layers",
        "a//b",
        "a%00b",
    ],
)
def test_bad_names_are_rejected_before_storage(registry_server: RunningRegistry, name: str) -> None:
    for method, path in [
        ("GET", f"/v2/{name}/tags/list"),
        ("GET", f"/v2/{name}/manifests/latest"),
        ("PUT", f"/v2/{name}/manifests/latest"),
        ("GET", f"/v2/{name}/blobs/{DIGEST}"),
        ("POST", f"/v2/{name}/blobs/uploads/"),
        ("GET", f"/v2/{name}/referrers/{DIGEST}"),
    ]:
        status, body = _raw(registry_server, method, path)
        assert status in (400, 404), (method, path, body)
        if status == 400:
            assert b"NAME_INVALID" in body, (method, path, body)
    assert not any(Path("/").glob("etc/_layers"))


def test_no_file_is_created_outside_the_data_directory(
    registry_server: RunningRegistry, tmp_path: Path
) -> None:
    before = set(registry_server.datadir.parent.iterdir())
    for path in [
        "/v2/../../escape/blobs/uploads/",
        "/v2/%2e%2e/%2e%2e/escape/blobs/uploads/",
        "/v2/a/b/manifests/..%2f..%2fescape",
    ]:
        status, _ = _raw(registry_server, "POST" if "uploads" in path else "PUT", path)
        assert status in (400, 404)
    assert set(registry_server.datadir.parent.iterdir()) == before
