"""`/readyz` follows Redis and S3 going away and coming back, naming the failing check and
never showing where the backend is or its credentials."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.backends.conftest import RedisProcess
from tests.backends.s3 import MotoServer
from tests.conftest import new_bucket, start_scaled
from tests.observe.helpers import scrape, until_ready_status
from tests.oci import digest_of, push_image
from tests.server import start

REDIS_PASSWORD = "redis-Pa55-for-readiness"


def test_readiness_follows_redis(start_redis: Callable[..., RedisProcess], tmp_path: Path) -> None:
    redis = start_redis(password=REDIS_PASSWORD)
    server = start(tmp_path / "data", "-redisurl", redis.url(password=REDIS_PASSWORD))
    try:
        assert until_ready_status(server, 200)["checks"]["coordinator"] == {
            "backend": "redis",
            "status": "ok",
        }
        with server.client() as http:
            push_image(http, "ready/redis", "v1")
        redis.stop()
        body = until_ready_status(server, 503)
        assert body["status"] == "unavailable"
        assert body["failing"] == ["coordinator"]
        assert body["checks"]["coordinator"] == {
            "backend": "redis",
            "status": "fail",
            "reason": "unavailable",
        }
        assert body["checks"]["storage"]["status"] == "ok"
        with server.client() as http:
            assert http.post("/v2/ready/redis/blobs/uploads/").status_code == 503
            assert http.get("/v2/ready/redis/manifests/v1").status_code == 200  # no Redis needed
        metrics = scrape(server)
        assert metrics.value("registry_ready", check="coordinator") == 0
        assert metrics.value("registry_ready", check="storage") == 1
        assert metrics.value("registry_coordinator_errors_total", coordinator="redis") >= 1
        redis.start()
        assert until_ready_status(server, 200)["status"] == "ready"
        assert scrape(server).value("registry_ready", check="coordinator") == 1
    finally:
        server.stop()
    output = "".join(server.output)
    assert "readiness check coordinator (redis) failed" in output  # the cause, for operators
    assert REDIS_PASSWORD not in output


def test_readiness_follows_s3(scaled_services: tuple[str, str], tmp_path: Path) -> None:
    moto = MotoServer(tmp_path / "moto")
    moto.start()
    redis_url, _ = scaled_services
    bucket = new_bucket(moto.endpoint)
    server = start_scaled((redis_url, moto.endpoint), tmp_path / "data", bucket=bucket)
    try:
        assert until_ready_status(server, 200)["checks"]["storage"] == {
            "backend": "s3",
            "status": "ok",
        }
        moto.stop()
        body = until_ready_status(server, 503)
        assert body["failing"] == ["storage"]
        assert body["checks"]["storage"]["backend"] == "s3"
        assert body["checks"]["storage"]["status"] == "fail"
        assert body["checks"]["coordinator"]["status"] == "ok"
        assert moto.endpoint not in str(body) and bucket not in str(body)
        with server.client() as http:
            data = b"never stored"
            r = http.post(
                "/v2/ready/s3/blobs/uploads/", params={"digest": digest_of(data)}, content=data
            )
            assert r.status_code == 503
        metrics = scrape(server)
        assert metrics.value("registry_ready", check="storage") == 0
        assert metrics.value("registry_storage_errors_total", driver="s3") >= 1
        moto.start()  # moto forgets everything: the bucket comes back empty
        httpx.put(f"{moto.endpoint}/{bucket}").raise_for_status()
        assert until_ready_status(server, 200)["status"] == "ready"
        with server.client() as http:
            push_image(http, "ready/s3", "v1")
    finally:
        server.stop()
        moto.stop()
    assert "readiness check storage (s3) " in "".join(server.output)  # failed or timed out
