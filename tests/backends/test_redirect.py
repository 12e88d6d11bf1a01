"""Blob GETs answered with a redirect to a presigned S3 URL (`spec.storage.s3.redirect`).

The client follows the redirect to moto's HTTP server, which serves the object (and ranges of
it) the way S3 does. moto does not check signatures, so the tests check the URL's shape and
host, and that the bytes that come back are the blob's. The decision itself is the model's
(`Blobs.read`), tested here on an S3 driver without the HTTP layer too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from registry.coord.local import LocalCoordinator
from registry.model.blobs import Redirect
from registry.model.registry import Registry
from registry.oci.digests import Digest
from registry.oci.errors import BlobUnknown
from registry.storage.s3 import S3Driver
from tests.conftest import new_bucket, start_scaled
from tests.oci import digest_of
from tests.server import RunningRegistry

HEAD = "apiVersion: simple-registry.dev/v1\nkind: Configuration\nmetadata: {name: c}\n"


def _redirecting(services: tuple[str, str], tmp_path: Path, public: str | None) -> RunningRegistry:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    extra = f", publicEndpoint: '{public}'" if public else ""
    (cfg / "c.yaml").write_text(
        HEAD + f"spec: {{storage: {{s3: {{redirect: true, redirectSeconds: 600{extra}}}}}}}\n"
    )
    return start_scaled(services, tmp_path / "data", "-cfgdir", str(cfg))


@pytest.fixture(params=["same-endpoint", "public-endpoint"])
def server(
    request: pytest.FixtureRequest, scaled_services: tuple[str, str], tmp_path: Path
) -> Iterator[tuple[RunningRegistry, str]]:
    """The registry, and the host its redirects must point at."""
    endpoint = scaled_services[1]
    # The same moto server under another name, as a CDN or public DNS name would be.
    public = (
        endpoint.replace("127.0.0.1", "localhost") if request.param != "same-endpoint" else None
    )
    running = _redirecting(scaled_services, tmp_path, public)
    yield running, urlsplit(public or endpoint).netloc
    running.stop()


def test_get_redirects_to_a_presigned_url(server: tuple[RunningRegistry, str]) -> None:
    registry, host = server
    data = os.urandom(300_000)
    with registry.client() as http:
        r = http.post("/v2/app/blobs/uploads/", params={"digest": digest_of(data)}, content=data)
        assert r.status_code == 201
        r = http.get(f"/v2/app/blobs/{digest_of(data)}")
        assert r.status_code == 307
        assert r.headers["Docker-Content-Digest"] == digest_of(data)
        location = urlsplit(r.headers["Location"])
        assert location.netloc == host
        query = parse_qs(location.query)
        assert query["X-Amz-Expires"] == ["600"]
        assert "X-Amz-Signature" in query
        assert "Authorization" not in r.headers

        # What docker and containerd do: follow, without the registry's credentials.
        with httpx.Client(timeout=30) as plain:
            assert plain.get(r.headers["Location"]).content == data
            ranged = plain.get(r.headers["Location"], headers={"Range": "bytes=10-19"})
            assert ranged.status_code == 206 and ranged.content == data[10:20]

        # HEAD is answered here; unknown blobs and bad ranges are not redirected.
        assert http.head(f"/v2/app/blobs/{digest_of(data)}").status_code == 200
        assert http.get(f"/v2/app/blobs/{digest_of(b'none')}").status_code == 404
        r = http.get(f"/v2/app/blobs/{digest_of(data)}", headers={"Range": "bytes=999999999-"})
        assert r.status_code == 416
        assert http.get(f"/v2/other/blobs/{digest_of(data)}").status_code == 404


def test_a_blob_whose_object_is_gone_is_unknown_not_redirected(
    scaled_services: tuple[str, str], tmp_path: Path
) -> None:
    """Linked, but its S3 object was deleted behind the registry's back: 404, not a redirect
    to a URL that S3 would refuse, and not a 500."""
    endpoint = scaled_services[1]
    bucket = new_bucket(endpoint)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "c.yaml").write_text(HEAD + "spec: {storage: {s3: {redirect: true}}}\n")
    registry = start_scaled(scaled_services, tmp_path / "data", "-cfgdir", str(cfg), bucket=bucket)
    try:
        data = os.urandom(2000)
        digest = digest_of(data)
        with registry.client() as http:
            r = http.post("/v2/app/blobs/uploads/", params={"digest": digest}, content=data)
            assert r.status_code == 201
            hex_ = digest.split(":")[1]
            _raw_s3(endpoint).delete_object(Bucket=bucket, Key=f"blobs/sha256/{hex_[:2]}/{hex_}")
            r = http.get(f"/v2/app/blobs/{digest}")
            assert r.status_code == 404
            assert r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    finally:
        registry.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.mark.anyio
async def test_the_model_redirects_only_when_configured(
    make_s3_driver: Callable[..., S3Driver], s3_bucket: str, raw_s3: Any, tmp_path: Path
) -> None:
    """With `redirect_seconds` a read is a presigned URL valid that long; without, the bytes.
    A process that did not write the blob asks S3 before signing, so an object deleted
    behind the registry's back is BLOB_UNKNOWN rather than a URL that S3 would refuse."""
    data = os.urandom(5000)
    digest = Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())

    def registry(redirect_seconds: int | None) -> Registry:
        coord = LocalCoordinator(tmp_path / "_coord")
        return Registry(make_s3_driver(), coord, f"s3 {s3_bucket}", redirect_seconds)

    await registry(None).uploads.monolithic("app", digest, _body(data))

    streamed = await registry(None).blobs.read(digest, 0, len(data))
    assert not isinstance(streamed, Redirect)
    assert b"".join([chunk async for chunk in streamed]) == data

    redirected = await registry(600).blobs.read(digest, 0, len(data))
    assert isinstance(redirected, Redirect)
    assert parse_qs(urlsplit(redirected.url).query)["X-Amz-Expires"] == ["600"]
    async with httpx.AsyncClient(timeout=30) as plain:
        assert (await plain.get(redirected.url)).content == data

    await raw_s3.delete_object(Bucket=s3_bucket, Key=f"blobs/sha256/{digest.hex[:2]}/{digest.hex}")
    with pytest.raises(BlobUnknown):
        await registry(600).blobs.read(digest, 0, len(data))


def _raw_s3(endpoint: str) -> Any:
    """boto3 behind the registry's back (moto refuses unsigned deletes)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
