"""Two server processes sharing S3 and Redis, as replicas behind a load balancer would."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import new_bucket, start_scaled
from tests.oci import Pushed, digest_of, error_codes, push_image
from tests.server import RunningRegistry

MIB = 1024 * 1024


@pytest.fixture
def replicas(
    scaled_services: tuple[str, str], tmp_path: Path
) -> Iterator[tuple[RunningRegistry, RunningRegistry]]:
    bucket = new_bucket(scaled_services[1])
    first = start_scaled(scaled_services, tmp_path / "one", "-service", "registry", bucket=bucket)
    second = start_scaled(scaled_services, tmp_path / "two", "-service", "registry", bucket=bucket)
    yield first, second
    first.stop()
    second.stop()


def test_one_upload_alternating_between_replicas(
    replicas: tuple[RunningRegistry, RunningRegistry],
) -> None:
    """Chunks under and over S3's 5 MiB part minimum, and a final chunk in the PUT."""
    data = os.urandom(17 * MIB + 12345)
    sizes = [1 * MIB, 6 * MIB, 100, 5 * MIB, 3 * MIB]  # the rest goes with the PUT
    first, second = replicas
    with first.client() as a, second.client() as b:
        location = a.post("/v2/shared/blobs/uploads/").headers["Location"]
        offset = 0
        for i, size in enumerate(sizes):
            worker = (a, b)[i % 2]
            chunk = data[offset : offset + size]
            r = worker.patch(
                location, content=chunk, headers={"Content-Range": f"{offset}-{offset + size - 1}"}
            )
            assert r.status_code == 202, r.text
            offset += size
            assert r.headers["Range"] == f"0-{offset - 1}"
        r = b.put(location, params={"digest": digest_of(data)}, content=data[offset:])
        assert r.status_code == 201, r.text
        for worker in (a, b):
            assert worker.get(f"/v2/shared/blobs/{digest_of(data)}").content == data


def test_concurrent_pushes_of_one_blob_and_tag_on_both_replicas(
    replicas: tuple[RunningRegistry, RunningRegistry],
) -> None:
    data = os.urandom(300_000)

    def push(i: int) -> str:
        with replicas[i % 2].client() as http:
            r = http.post(
                "/v2/race/blobs/uploads/", params={"digest": digest_of(data)}, content=data
            )
            assert r.status_code == 201
            return push_image(http, "race", "same").digest

    with ThreadPoolExecutor(6) as pool:
        digests = set(pool.map(push, range(6)))
    with replicas[0].client() as a, replicas[1].client() as b:
        assert a.get(f"/v2/race/blobs/{digest_of(data)}").content == data
        tagged = a.head("/v2/race/manifests/same").headers["Docker-Content-Digest"]
        assert tagged in digests
        assert b.head("/v2/race/manifests/same").headers["Docker-Content-Digest"] == tagged
        for digest in digests:
            assert b.head(f"/v2/race/manifests/{digest}").status_code == 200
        assert b.get("/v2/race/tags/list").json()["tags"] == ["same"]


def test_tokens_and_pulls_cross_replicas(
    replicas: tuple[RunningRegistry, RunningRegistry],
) -> None:
    first, second = replicas
    with first.client() as a:
        pushed = push_image(a, "crossing", "v1")
        token = a.get("/token", params={"scope": "repository:crossing:pull"}).json()["token"]
    with httpx.Client(base_url=second.url, headers={"Authorization": f"Bearer {token}"}) as b:
        r = b.get("/v2/crossing/manifests/v1")
        assert r.status_code == 200
        assert r.content == pushed.body


def test_s3_unreachable_is_503_and_leaves_nothing(
    scaled_services: tuple[str, str], tmp_path: Path
) -> None:
    from tests.backends.s3 import MotoServer

    moto = MotoServer(tmp_path / "moto")
    moto.start()
    redis_url, _ = scaled_services
    server = start_scaled((redis_url, moto.endpoint), tmp_path / "data")
    try:
        with server.client() as http:
            push_image(http, "fault", "v1")
            location = http.post("/v2/fault/blobs/uploads/").headers["Location"]
            assert http.patch(location, content=b"abc").status_code == 202
            moto.stop()
            data = b"never stored"
            r = http.post(
                "/v2/fault/blobs/uploads/", params={"digest": digest_of(data)}, content=data
            )
            assert r.status_code == 503, r.text
            assert error_codes(r) == ["UNAVAILABLE"]
            assert http.get("/v2/fault/manifests/v1").status_code == 503
            r = http.put(location, params={"digest": digest_of(b"abcdef")}, content=b"def")
            assert r.status_code == 503
    finally:
        server.stop()
        moto.stop()


def test_slow_s3_answers_503_within_the_deadline(
    scaled_services: tuple[str, str], tmp_path: Path
) -> None:
    """A store that takes connections but does not answer (moto stopped with SIGSTOP): each
    request gives up at its deadline (`requestTimeoutSeconds: 1`) with 503, well before
    botocore's read timeout (60 s) on each of its attempts, and works again once S3 does.
    The client's timeout only catches a hang; it is not a measure of the deadline."""
    from tests.backends.s3 import MotoServer

    moto = MotoServer(tmp_path / "moto")  # its own: pausing the shared one would stall others
    moto.start()
    services = (scaled_services[0], moto.endpoint)
    bucket = new_bucket(moto.endpoint)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "s3.yaml").write_text(
        "apiVersion: simple-registry.dev/v1\nkind: Configuration\nmetadata: {name: c}\n"
        "spec: {storage: {s3: {requestTimeoutSeconds: 1}}}\n"
    )
    # Pushed by another instance, so the one under test remembers no size of it.
    writer = start_scaled(services, tmp_path / "writer", bucket=bucket)
    try:
        with writer.client() as http:
            pushed = push_image(http, "slow", "v1")
    finally:
        writer.stop()
    layer = digest_of(pushed.blobs[-1])
    server = start_scaled(services, tmp_path / "data", "-cfgdir", str(cfg), bucket=bucket)
    try:
        with server.client(timeout=30) as http:
            location = http.post("/v2/slow/blobs/uploads/").headers["Location"]
            with moto.paused():
                answers = _slow_requests(http, pushed, layer, location)
            assert [r.status_code for r in answers] == [503] * 4
            for r in answers[1:]:  # a HEAD has no body
                assert error_codes(r) == ["UNAVAILABLE"], r.text
            answers = _slow_requests(http, pushed, layer, location)
            assert [r.status_code for r in answers] == [200, 200, 201, 202]
            assert answers[1].content == pushed.blobs[-1]
    finally:
        server.stop()
        moto.stop()
    assert "did not finish within its deadline of 1 s" in "".join(server.output)


def _slow_requests(
    http: httpx.Client, pushed: Pushed, layer: str, location: str
) -> list[httpx.Response]:
    """A blob HEAD and GET, a manifest PUT and an upload PATCH, each needing S3."""
    return [
        http.head(f"/v2/slow/blobs/{layer}"),
        http.get(f"/v2/slow/blobs/{layer}"),
        http.put(
            "/v2/slow/manifests/v2",
            content=pushed.body,
            headers={"Content-Type": pushed.media_type},
        ),
        http.patch(location, content=b"some bytes", headers={"Content-Range": "0-9"}),
    ]


def test_finished_uploads_leave_no_scratch_data(
    scaled_services: tuple[str, str], tmp_path: Path
) -> None:
    """After chunked, monolithic, repeated and cancelled uploads, the bucket holds blobs,
    links and tags only: no `_uploads/` object, staged tail or open multipart upload."""
    import boto3

    endpoint = scaled_services[1]
    bucket = new_bucket(endpoint)
    server = start_scaled(scaled_services, tmp_path / "data", bucket=bucket)
    chunked = os.urandom(6 * MIB + 100)  # a whole part, then a tail
    small, large = os.urandom(1000), os.urandom(9 * MIB)  # one PutObject; a multipart upload
    try:
        with server.client() as http:
            for data in (chunked, chunked):  # the second finds the blob stored already
                location = http.post("/v2/tidy/blobs/uploads/").headers["Location"]
                r = http.patch(location, content=data[: 6 * MIB])
                assert r.status_code == 202
                r = http.put(
                    r.headers["Location"],
                    params={"digest": digest_of(data)},
                    content=data[6 * MIB :],
                )
                assert r.status_code == 201, r.text
            for data in (small, large):
                r = http.post(
                    "/v2/tidy/blobs/uploads/", params={"digest": digest_of(data)}, content=data
                )
                assert r.status_code == 201, r.text
            location = http.post("/v2/tidy/blobs/uploads/").headers["Location"]
            assert http.patch(location, content=os.urandom(6 * MIB)).status_code == 202
            assert http.delete(location).status_code == 204
            for data in (chunked, small, large):
                assert http.get(f"/v2/tidy/blobs/{digest_of(data)}").content == data
    finally:
        server.stop()
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys and not [
        k for k in keys if not k.startswith(("blobs/", "repositories/", "_holders/"))
    ]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
