"""Blob GET/HEAD with ranges, and DELETE."""

from __future__ import annotations

import os
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import InProcessRegistry
from tests.oci import digest_of, error_codes, push_blob


@pytest.fixture
def blob(app_client: httpx.Client, repo: str) -> bytes:
    data = os.urandom(3000)
    push_blob(app_client, repo, data)
    return data


def test_get_and_head(app_client: httpx.Client, repo: str, blob: bytes) -> None:
    digest = digest_of(blob)
    r = app_client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == blob
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Length"] == str(len(blob))
    assert r.headers["Accept-Ranges"] == "bytes"
    head = app_client.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(blob))
    assert head.headers["Docker-Content-Digest"] == digest


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [("0-0", 0, 0), ("100-199", 100, 199), ("2990-", 2990, 2999), ("-10", 2990, 2999)],
)
def test_range(
    app_client: httpx.Client, repo: str, blob: bytes, spec: str, start: int, end: int
) -> None:
    r = app_client.get(f"/v2/{repo}/blobs/{digest_of(blob)}", headers={"Range": f"bytes={spec}"})
    assert r.status_code == 206
    assert r.content == blob[start : end + 1]
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/3000"
    assert r.headers["Content-Length"] == str(end - start + 1)


@pytest.mark.parametrize("spec", ["bytes=3000-", "bytes=10-5", "bytes=0-1,5-6", "lines=1-2"])
def test_bad_range_is_416(app_client: httpx.Client, repo: str, blob: bytes, spec: str) -> None:
    r = app_client.get(f"/v2/{repo}/blobs/{digest_of(blob)}", headers={"Range": spec})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */3000"


def test_unknown_blob(app_client: httpx.Client, repo: str) -> None:
    missing = digest_of(b"never pushed")
    r = app_client.get(f"/v2/{repo}/blobs/{missing}")
    assert r.status_code == 404
    assert error_codes(r) == ["BLOB_UNKNOWN"]
    assert app_client.head(f"/v2/{repo}/blobs/{missing}").status_code == 404


def test_blob_is_only_visible_where_linked(
    app_client: httpx.Client, repo: str, blob: bytes
) -> None:
    r = app_client.get(f"/v2/{repo}-other/blobs/{digest_of(blob)}")
    assert r.status_code == 404


@pytest.mark.parametrize(
    "digest", ["sha256:abc", "md5:" + "a" * 32, "sha256:" + "A" * 64, "nodigest"]
)
def test_invalid_digest_is_400(app_client: httpx.Client, repo: str, digest: str) -> None:
    r = app_client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 400
    assert error_codes(r) == ["DIGEST_INVALID"]


def test_delete(app_client: httpx.Client, repo: str, blob: bytes) -> None:
    digest = digest_of(blob)
    r = app_client.delete(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 202
    assert app_client.get(f"/v2/{repo}/blobs/{digest}").status_code == 404
    r = app_client.delete(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 404
    assert error_codes(r) == ["BLOB_UNKNOWN"]


def test_sha512_blob(app_client: httpx.Client, repo: str) -> None:
    data = os.urandom(777)
    digest = digest_of(data, "sha512")
    r = app_client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201
    assert r.headers["Docker-Content-Digest"] == digest
    assert app_client.get(f"/v2/{repo}/blobs/{digest}").content == data


def test_linked_blob_whose_content_is_gone(in_process: Callable[..., InProcessRegistry]) -> None:
    """The link says yes, the content is missing (a damaged or half-restored data directory):
    BLOB_UNKNOWN before any header of a 200 goes out, and the server goes on serving."""
    server = in_process()
    data = os.urandom(5000)
    with server.client() as http:
        push_blob(http, "app", data)
        digest = digest_of(data)
        algorithm, hex_ = digest.split(":")
        (server.datadir / "blobs" / algorithm / hex_[:2] / hex_).unlink()
        r = http.get(f"/v2/app/blobs/{digest}")
        assert r.status_code == 404
        assert error_codes(r) == ["BLOB_UNKNOWN"]
        assert http.get("/v2/").status_code == 200


@pytest.mark.parametrize(
    "spec",
    [
        b"bytes=\xb2-",  # "²" (Latin-1, as HTTP headers are read): isdigit() but not int()
        b"bytes=-\xb2",
        b"bytes=" + b"1" * 5000 + b"-",  # beyond int()'s 4,300 digits
        b"bytes=0-" + b"9" * 5000,
    ],
    ids=["superscript-start", "superscript-suffix", "long-start", "long-end"],
)
def test_range_that_is_no_number_is_416(
    app_client: httpx.Client, repo: str, blob: bytes, spec: bytes
) -> None:
    r = app_client.get(f"/v2/{repo}/blobs/{digest_of(blob)}", headers={b"Range": spec})
    assert r.status_code == 416
    assert error_codes(r) == ["BLOB_UPLOAD_INVALID"]
    assert r.headers["Content-Range"] == "bytes */3000"


@pytest.mark.parametrize("suffix", ["%0a", "%0d%0a", "%0A"])
def test_digest_with_a_trailing_newline_is_400(
    app_client: httpx.Client, repo: str, blob: bytes, suffix: str
) -> None:
    for method in ("GET", "HEAD", "DELETE"):
        r = app_client.request(method, f"/v2/{repo}/blobs/{digest_of(blob)}{suffix}")
        assert r.status_code == 400, method
        if method != "HEAD":
            assert error_codes(r) == ["DIGEST_INVALID"]
    assert app_client.get(f"/v2/{repo}/blobs/{digest_of(blob)}").content == blob
