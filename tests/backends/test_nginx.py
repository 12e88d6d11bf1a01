"""Two registry instances sharing S3 and Redis behind one real nginx that streams request
bodies (`proxy_request_buffering off`), as in production: an answer the registry gives
before reading a body must reach the client as that answer, never as nginx's 502."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backends.nginx import NginxProcess
from tests.conftest import new_bucket, start_scaled
from tests.oci import digest_of, error_codes
from tests.server import ADMIN, PASSWORD

MIB = 1024 * 1024


@pytest.fixture
def proxy(scaled_services: tuple[str, str], tmp_path: Path) -> Iterator[NginxProcess]:
    bucket = new_bucket(scaled_services[1])
    instances = [
        start_scaled(scaled_services, tmp_path / name, "-trustforwarded", bucket=bucket)
        for name in ("one", "two")
    ]
    nginx = NginxProcess(tmp_path / "nginx", [instance.host for instance in instances])
    try:
        nginx.start()
        yield nginx
    finally:
        nginx.stop()
        for instance in instances:
            instance.stop()


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A generator body: httpx sends it chunked, in small writes, as docker does."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_an_unauthenticated_patch_gets_its_401_then_the_retry_completes(
    proxy: NginxProcess,
) -> None:
    data = os.urandom(8 * MIB + 4321)
    with httpx.Client(base_url=proxy.url, timeout=60) as http:
        auth = (ADMIN, PASSWORD)
        started = http.post("/v2/through/nginx/blobs/uploads/", auth=auth)
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        for _ in range(6):  # round robin: each instance answers unauthenticated chunks
            r = http.patch(location, content=_chunks(data))
            assert r.status_code == 401, proxy.error_log()[-2000:]
            assert error_codes(r) == ["UNAUTHORIZED"]
        r = http.patch(location, content=_chunks(data), auth=auth)
        assert r.status_code == 202, r.text
        assert r.headers["Range"] == f"0-{len(data) - 1}"
        r = http.put(location, params={"digest": digest_of(data)}, auth=auth)
        assert r.status_code == 201, r.text
        blob = http.get(f"/v2/through/nginx/blobs/{digest_of(data)}", auth=auth)
        assert blob.status_code == 200
        assert digest_of(blob.content) == digest_of(data)


@pytest.mark.parametrize("password", [None, "wrong-password"])
def test_an_early_answer_to_a_large_monolithic_push_passes_through(
    proxy: NginxProcess, password: str | None
) -> None:
    """A declared 20 MiB body refused at once (no credentials) or after a password check
    (wrong ones), on every instance."""
    data = os.urandom(20 * MIB)
    with httpx.Client(base_url=proxy.url, timeout=60) as http:
        for _ in range(6):
            r = http.post(
                "/v2/through/nginx/blobs/uploads/",
                params={"digest": digest_of(data)},
                content=_chunks(data),
                headers={"Content-Length": str(len(data))},
                auth=(ADMIN, password) if password else httpx.USE_CLIENT_DEFAULT,
            )
            assert r.status_code == 401, proxy.error_log()[-2000:]
