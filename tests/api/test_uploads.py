"""Uploads: monolithic, POST+PUT, chunked, status, cancel, mount, and every way to get it wrong."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import InProcessRegistry
from tests.oci import digest_of, error_codes, push_blob
from tests.server import RunningRegistry, basic_header


def _start(client: httpx.Client, repo: str) -> str:
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202
    assert r.headers["Range"] == "0-0"
    assert r.headers["Docker-Upload-UUID"]
    assert int(r.headers["OCI-Chunk-Min-Length"]) >= 1
    assert r.headers["Location"].startswith(f"/v2/{repo}/blobs/uploads/")
    return r.headers["Location"]


def _blob_is(client: httpx.Client, repo: str, data: bytes) -> None:
    r = client.get(f"/v2/{repo}/blobs/{digest_of(data)}")
    assert r.status_code == 200
    assert r.content == data


def test_monolithic_post(app_client: httpx.Client, repo: str) -> None:
    data = os.urandom(5000)
    r = app_client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest_of(data)}, content=data
    )
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/{repo}/blobs/{digest_of(data)}"
    assert r.headers["Docker-Content-Digest"] == digest_of(data)
    _blob_is(app_client, repo, data)


def test_monolithic_post_wrong_digest_stores_nothing(app_client: httpx.Client, repo: str) -> None:
    data = b"actual content"
    claimed = digest_of(b"other content")
    r = app_client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, content=data)
    assert r.status_code == 400
    assert error_codes(r) == ["DIGEST_INVALID"]
    assert app_client.head(f"/v2/{repo}/blobs/{claimed}").status_code == 404
    assert app_client.head(f"/v2/{repo}/blobs/{digest_of(data)}").status_code == 404


def test_post_then_put_with_body(app_client: httpx.Client, repo: str) -> None:
    data = os.urandom(4096)
    location = _start(app_client, repo)
    r = app_client.put(
        location,
        params={"digest": digest_of(data)},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201
    assert r.headers["Docker-Content-Digest"] == digest_of(data)
    _blob_is(app_client, repo, data)
    assert app_client.get(location).status_code == 404  # the session is gone


def test_chunked_upload_with_status_between_chunks(app_client: httpx.Client, repo: str) -> None:
    data = os.urandom(10_000)
    location = _start(app_client, repo)
    offset = 0
    for size in (1, 4000, 3999, 2000):
        chunk = data[offset : offset + size]
        r = app_client.patch(
            location,
            content=chunk,
            headers={
                "Content-Range": f"{offset}-{offset + size - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert r.status_code == 202
        offset += size
        assert r.headers["Range"] == f"0-{offset - 1}"
        status = app_client.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{offset - 1}"
        assert status.headers["Docker-Upload-UUID"] == r.headers["Docker-Upload-UUID"]
    r = app_client.put(location, params={"digest": digest_of(data)})
    assert r.status_code == 201
    _blob_is(app_client, repo, data)


def test_final_chunk_in_put(app_client: httpx.Client, repo: str) -> None:
    data = os.urandom(2048)
    location = _start(app_client, repo)
    assert app_client.patch(location, content=data[:1000]).status_code == 202
    r = app_client.put(location, params={"digest": digest_of(data)}, content=data[1000:])
    assert r.status_code == 201
    _blob_is(app_client, repo, data)


def test_empty_blob(app_client: httpx.Client, repo: str) -> None:
    location = _start(app_client, repo)
    r = app_client.put(location, params={"digest": digest_of(b"")})
    assert r.status_code == 201
    _blob_is(app_client, repo, b"")


def test_out_of_order_chunk_is_416_and_keeps_the_upload(
    app_client: httpx.Client, repo: str
) -> None:
    location = _start(app_client, repo)
    assert (
        app_client.patch(location, content=b"abc", headers={"Content-Range": "0-2"}).status_code
        == 202
    )
    for bad in ("0-2", "5-7", "2-4"):  # repeated, skipping ahead, overlapping
        r = app_client.patch(location, content=b"xyz", headers={"Content-Range": bad})
        assert r.status_code == 416, bad
        assert r.headers["Range"] == "0-2"
    r = app_client.patch(location, content=b"def", headers={"Content-Range": "3-5"})
    assert r.status_code == 202
    r = app_client.put(location, params={"digest": digest_of(b"abcdef")})
    assert r.status_code == 201


def test_content_range_must_match_body_length(app_client: httpx.Client, repo: str) -> None:
    location = _start(app_client, repo)
    r = app_client.patch(location, content=b"abcdef", headers={"Content-Range": "0-2"})
    assert r.status_code == 416
    r = app_client.patch(location, content=b"ab", headers={"Content-Range": "0-2"})
    assert r.status_code == 416
    assert app_client.get(location).headers["Range"] == "0-0"  # nothing was kept
    assert (
        app_client.patch(location, content=b"abc", headers={"Content-Range": "0-2"}).status_code
        == 202
    )


def test_malformed_content_range_is_416(app_client: httpx.Client, repo: str) -> None:
    location = _start(app_client, repo)
    r = app_client.patch(location, content=b"abc", headers={"Content-Range": "zero-two"})
    assert r.status_code == 416


def test_put_digest_mismatch_is_400_and_stores_nothing(app_client: httpx.Client, repo: str) -> None:
    location = _start(app_client, repo)
    app_client.patch(location, content=b"some bytes")
    wrong = digest_of(b"other bytes")
    r = app_client.put(location, params={"digest": wrong})
    assert r.status_code == 400
    assert error_codes(r) == ["DIGEST_INVALID"]
    assert app_client.head(f"/v2/{repo}/blobs/{wrong}").status_code == 404
    assert app_client.head(f"/v2/{repo}/blobs/{digest_of(b'some bytes')}").status_code == 404


@pytest.mark.parametrize("params", [{}, {"digest": "sha256:short"}, {"digest": "md5:" + "a" * 32}])
def test_put_without_valid_digest_is_400(
    app_client: httpx.Client, repo: str, params: dict[str, str]
) -> None:
    location = _start(app_client, repo)
    r = app_client.put(location, params=params)
    assert r.status_code == 400
    assert error_codes(r) == ["DIGEST_INVALID"]


def test_sha512_digest_on_session_upload(app_client: httpx.Client, repo: str) -> None:
    data = os.urandom(70_000)
    location = _start(app_client, repo)
    app_client.patch(location, content=data[:50_000])
    r = app_client.put(
        location, params={"digest": digest_of(data, "sha512")}, content=data[50_000:]
    )
    assert r.status_code == 201
    assert app_client.get(f"/v2/{repo}/blobs/{digest_of(data, 'sha512')}").content == data


@pytest.mark.parametrize(
    "upload_id",
    ["00000000000000000000000000000000", "not-a-uuid", "%2e%2e", "a" * 300],
)
def test_unknown_upload_is_404(app_client: httpx.Client, repo: str, upload_id: str) -> None:
    base = f"/v2/{repo}/blobs/uploads/{upload_id}"
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        params = {"digest": digest_of(b"")} if method == "PUT" else None
        r = app_client.request(
            method, base, params=params, content=b"x" if method != "GET" else None
        )
        assert r.status_code == 404, method
        assert error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"]


def test_upload_of_another_repository_is_unknown(app_client: httpx.Client, repo: str) -> None:
    location = _start(app_client, repo)
    upload_id = location.rsplit("/", 1)[1]
    r = app_client.get(f"/v2/{repo}-other/blobs/uploads/{upload_id}")
    assert r.status_code == 404
    assert error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"]


def test_cancel(app_client: httpx.Client, repo: str) -> None:
    location = _start(app_client, repo)
    app_client.patch(location, content=b"data")
    assert app_client.delete(location).status_code == 204
    assert app_client.get(location).status_code == 404
    assert app_client.delete(location).status_code == 404
    r = app_client.put(location, params={"digest": digest_of(b"data")})
    assert r.status_code == 404


def test_head_on_a_session_is_its_status_and_changes_nothing(
    app_client: httpx.Client, repo: str
) -> None:
    """HEAD is the status GET without a body: even with a digest that would complete the
    upload, it neither completes nor cancels it."""
    location = _start(app_client, repo)
    assert app_client.patch(location, content=b"data").status_code == 202
    r = app_client.head(location, params={"digest": digest_of(b"data")})
    assert r.status_code == 204
    assert r.headers["Range"] == "0-3"
    assert r.headers["Location"] == location
    assert app_client.head(f"/v2/{repo}/blobs/{digest_of(b'data')}").status_code == 404
    assert app_client.get(location).headers["Range"] == "0-3"  # still open, nothing lost
    r = app_client.put(location, params={"digest": digest_of(b"data")})
    assert r.status_code == 201
    _blob_is(app_client, repo, b"data")


def test_mount_from_repository(app_client: httpx.Client, repo: str) -> None:
    data = os.urandom(1234)
    digest = push_blob(app_client, f"{repo}-src", data)
    r = app_client.post(
        f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": f"{repo}-src"}
    )
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/{repo}/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    _blob_is(app_client, repo, data)


def test_mount_without_from_finds_a_readable_holder(app_client: httpx.Client, repo: str) -> None:
    data = os.urandom(999)
    digest = push_blob(app_client, f"{repo}-holder", data)
    r = app_client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest})
    assert r.status_code == 201
    _blob_is(app_client, repo, data)


def test_mount_of_unknown_blob_opens_a_session(app_client: httpx.Client, repo: str) -> None:
    missing = digest_of(b"nobody has this")
    r = app_client.post(
        f"/v2/{repo}/blobs/uploads/", params={"mount": missing, "from": "elsewhere"}
    )
    assert r.status_code == 202
    assert r.headers["Location"].startswith(f"/v2/{repo}/blobs/uploads/")
    r = app_client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": missing})
    assert r.status_code == 202


def test_mount_does_not_see_unlinked_blobs(app_client: httpx.Client, repo: str) -> None:
    data = os.urandom(100)
    digest = push_blob(app_client, f"{repo}-gone", data)
    assert app_client.delete(f"/v2/{repo}-gone/blobs/{digest}").status_code == 202
    r = app_client.post(
        f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": f"{repo}-gone"}
    )
    assert r.status_code == 202
    r = app_client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest})
    assert r.status_code == 202


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"mount": "sha256:nope", "from": "a"}, "DIGEST_INVALID"),
        ({"mount": digest_of(b"x"), "from": "../etc"}, "NAME_INVALID"),
        ({"mount": digest_of(b"x"), "from": "UPPER"}, "NAME_INVALID"),
    ],
)
def test_mount_bad_parameters(
    app_client: httpx.Client, repo: str, params: dict[str, str], code: str
) -> None:
    r = app_client.post(f"/v2/{repo}/blobs/uploads/", params=params)
    assert r.status_code == 400
    assert error_codes(r) == [code]


@pytest.mark.parametrize(
    "content_range",
    [b"0-" + b"9" * 5000, b"9" * 5000 + b"-0", b"\xb2-9", b"0-\xb9"],
    ids=["long-end", "long-start", "superscript-start", "superscript-end"],
)
def test_content_range_that_is_no_number_is_416(
    app_client: httpx.Client, repo: str, content_range: bytes
) -> None:
    location = _start(app_client, repo)
    r = app_client.patch(location, content=b"0123456789", headers={b"Content-Range": content_range})
    assert r.status_code == 416
    assert error_codes(r) == ["BLOB_UPLOAD_INVALID"]
    assert app_client.get(location).headers["Range"] == "0-0"  # nothing was taken


def test_head_of_a_session_needs_push_rights_like_its_status(
    app_server: InProcessRegistry, app_client: httpx.Client, repo: str
) -> None:
    """A token that may only pull the repository cannot learn about, finish or destroy an upload
    its user opened with push rights."""
    data = b"pushed with push rights"
    location = _start(app_client, repo)
    assert app_client.patch(location, content=data).status_code == 202
    token = app_client.get("/token", params={"scope": f"repository:{repo}:pull"}).json()["token"]
    pull_only = {"Authorization": f"Bearer {token}"}
    with app_server.client(auth=False) as bare:
        r = bare.head(location, params={"digest": digest_of(data)}, headers=pull_only)
        assert r.status_code == 401
        assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert app_client.get(location).headers["Range"] == f"0-{len(data) - 1}"
    assert app_client.put(location, params={"digest": digest_of(data)}).status_code == 201


# --- End to end, through the real server: bodies streamed without a Content-Length or in many
# small pieces (in-process a body arrives whole), truncated bodies and what becomes of the
# connection, written on raw sockets.


def test_streamed_patch_without_content_length(client: httpx.Client, repo: str) -> None:
    """docker and buildah send PATCH bodies chunked, with no Content-Length or Content-Range."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    location = _start(client, repo)

    def pieces() -> object:
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    r = client.patch(location, content=pieces())  # type: ignore[arg-type]
    assert r.status_code == 202
    assert r.headers["Range"] == f"0-{len(data) - 1}"
    r = client.put(location, params={"digest": digest_of(data)}, content=b"tail")
    assert r.status_code == 400  # the tail changes the digest...
    assert error_codes(r) == ["DIGEST_INVALID"]
    assert client.get(location).status_code == 404  # ...and a failed commit ends the session


def test_truncated_body_is_not_committed(
    registry_server: RunningRegistry, client: httpx.Client, repo: str
) -> None:
    """The client promises 1000 bytes, sends 10 and hangs up: nothing may become visible."""
    location = _start(client, repo)
    client.patch(location, content=b"0123456789")
    parts = urlsplit(registry_server.url)
    header = basic_header(registry_server)
    for request_line in (
        f"PATCH {location} HTTP/1.1",
        f"PUT {location}?digest={digest_of(b'0123456789' + b'x' * 1000)} HTTP/1.1",
        f"POST /v2/{repo}/blobs/uploads/?digest={digest_of(b'y' * 1000)} HTTP/1.1",
    ):
        with socket.create_connection((parts.hostname, parts.port)) as sock:
            sock.sendall(
                (
                    f"{request_line}\r\nHost: {parts.netloc}\r\nAuthorization: {header}\r\n"
                    "Content-Length: 1000\r\n\r\n"
                ).encode()
                + b"x" * 10
            )
            sock.shutdown(socket.SHUT_WR)
            sock.recv(65536)  # whatever the server says (if anything), it has seen the EOF
    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-9"  # the partial chunk was rolled back
    assert client.head(f"/v2/{repo}/blobs/{digest_of(b'y' * 1000)}").status_code == 404
    r = client.put(location, params={"digest": digest_of(b"0123456789")})
    assert r.status_code == 201


def _raw_exchange(registry_server: RunningRegistry, head: str, body: bytes) -> bytes:
    """One request over a fresh socket, keeping the socket open; the answer's head."""
    parts = urlsplit(registry_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            piece = sock.recv(65536)
            assert piece, f"connection closed before an answer: {answer!r}"
            answer += piece
        return answer.split(b"\r\n\r\n", 1)[0].lower()


def test_an_error_before_a_body_too_long_to_drain_closes_the_connection(
    registry_server: RunningRegistry, repo: str
) -> None:
    """The server answers an unknown upload without reading the 100 MiB promised, more than
    it discards after an early answer, so the connection cannot be reused: the answer must
    say so, or the client's next request on it would be dropped. (A shorter rest is read
    and the connection kept: tests/api/test_early_answers.py.)"""
    parts = urlsplit(registry_server.url)
    head = (
        f"PATCH /v2/{repo}/blobs/uploads/{'0' * 32} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: {basic_header(registry_server)}\r\nContent-Length: {100 * 1024 * 1024}"
        "\r\n\r\n"
    )
    answer = _raw_exchange(registry_server, head, b"x" * 10)
    assert answer.startswith(b"http/1.1 404")
    assert b"\r\nconnection: close" in answer


def test_a_read_body_keeps_the_connection(
    registry_server: RunningRegistry, client: httpx.Client, repo: str
) -> None:
    location = _start(client, repo)
    parts = urlsplit(registry_server.url)
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: {basic_header(registry_server)}\r\nContent-Length: 10\r\n\r\n"
    )
    answer = _raw_exchange(registry_server, head, b"x" * 10)
    assert answer.startswith(b"http/1.1 202")
    assert b"connection: close" not in answer


def test_body_in_thousands_of_tiny_pieces(client: httpx.Client, repo: str) -> None:
    """Many small reads must not overflow a scatter-gather write."""
    data = os.urandom(30_000)

    def tiny() -> object:
        for i in range(0, len(data), 7):
            yield data[i : i + 7]

    location = _start(client, repo)
    r = client.patch(location, content=tiny())  # type: ignore[arg-type]
    assert r.status_code == 202
    r = client.put(location, params={"digest": digest_of(data)})
    assert r.status_code == 201
    _blob_is(client, repo, data)
