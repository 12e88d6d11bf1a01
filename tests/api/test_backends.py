"""The behaviour suite runs on both backends; this checks each really is the one it claims."""

from __future__ import annotations

import os

import httpx

from tests.oci import push_blob
from tests.server import RunningRegistry


def test_content_lands_in_the_configured_backend(
    registry_server: RunningRegistry, client: httpx.Client, repo: str
) -> None:
    push_blob(client, repo, os.urandom(100))
    on_s3 = "-s3bucket" in list(map(str, registry_server.process.args))  # type: ignore[arg-type]
    assert (registry_server.datadir / "blobs").exists() is not on_s3
    assert (registry_server.datadir / "repositories").exists() is not on_s3
    assert (registry_server.datadir / "_coord" / "sessions").exists() is not on_s3
