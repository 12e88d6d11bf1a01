"""oras-py (the `oras` library from PyPI) pushing and pulling an artifact over plain HTTP.

The artifact has two files with their own media types and a config with a custom media type.
It is pushed once as whole-blob PUTs and once as a chunked upload (POST, several PATCHes with
Content-Range, PUT) against a server with two worker processes, where consecutive chunks of one
upload may land on different workers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from oras.client import OrasClient  # type: ignore[import-untyped]
from oras.oci import Subject  # type: ignore[import-untyped]

from tests.server import RunningRegistry

pytestmark = pytest.mark.clients

CONFIG_TYPE = "application/vnd.example.simple-registry.config.v1+json"
TEXT_TYPE = "application/vnd.example.simple-registry.notes.v1+text"
DATA_TYPE = "application/vnd.example.simple-registry.data.v1"
CHUNK = 64 * 1024


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("chunked", "workers"), [(False, 1), (True, 2)], ids=["whole-blobs", "chunked-2-workers"]
)
def test_push_and_pull_artifact(
    chunked: bool,
    workers: int,
    registry_server: RunningRegistry,
    start_registry: Callable[..., RunningRegistry],
    repo: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = registry_server if workers == 1 else start_registry("-workers", str(workers))
    # oras reads credentials from the docker config too: keep it private and empty.
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    source = tmp_path / "source"
    source.mkdir()
    monkeypatch.chdir(source)  # oras only pushes files under the working directory
    notes = source / "notes.txt"
    notes.write_text(f"artifact for {repo}\n" * 50)
    data = source / "data.bin"
    data.write_bytes(os.urandom(5 * CHUNK + 1234))  # several chunks, the last one short
    config = source / "config.json"
    config.write_text(json.dumps({"purpose": "client test", "repo": repo}))

    client = OrasClient(hostname=server.host, insecure=True, auth_backend="basic")
    client.auth.set_basic_auth(str(server.username), str(server.password))
    if workers > 1:
        # A new connection per request, so the chunks are accepted by whichever worker is free
        # instead of all following one keep-alive connection to the same process.
        client.session.headers["Connection"] = "close"
    target = f"{server.host}/{repo}:artifact"

    response = client.push(
        target,
        files=[f"notes.txt:{TEXT_TYPE}", f"data.bin:{DATA_TYPE}"],
        manifest_config=f"config.json:{CONFIG_TYPE}",
        manifest_annotations={"org.example.test": repo},
        do_chunked=chunked,
        chunk_size=CHUNK,
        quiet=True,
    )
    assert response.status_code == 201, response.text
    manifest_digest = response.headers["Docker-Content-Digest"]

    manifest = client.get_manifest(target)
    assert manifest["config"]["mediaType"] == CONFIG_TYPE
    assert manifest["config"]["digest"] == sha256_file(config)
    assert manifest["annotations"]["org.example.test"] == repo
    layers = {
        layer["annotations"]["org.opencontainers.image.title"]: layer
        for layer in manifest["layers"]
    }
    assert layers["notes.txt"]["mediaType"] == TEXT_TYPE
    assert layers["data.bin"]["mediaType"] == DATA_TYPE
    assert layers["notes.txt"]["digest"] == sha256_file(notes)
    assert layers["data.bin"]["digest"] == sha256_file(data)
    assert layers["data.bin"]["size"] == data.stat().st_size

    with server.client() as http:
        got = http.get(
            f"/v2/{repo}/manifests/artifact",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert got.status_code == 200
        assert got.headers["docker-content-digest"] == manifest_digest
        assert "sha256:" + hashlib.sha256(got.content).hexdigest() == manifest_digest
        config_blob = http.get(f"/v2/{repo}/blobs/{manifest['config']['digest']}")
        assert config_blob.content == config.read_bytes()

    out = tmp_path / "pulled"
    out.mkdir()
    pulled = [Path(p) for p in client.pull(target, outdir=str(out))]
    assert sorted(p.name for p in pulled) == ["data.bin", "notes.txt"]
    assert (out / "notes.txt").read_bytes() == notes.read_bytes()
    assert (out / "data.bin").read_bytes() == data.read_bytes()


def test_artifact_with_subject_is_listed_as_referrer(
    registry_server: RunningRegistry, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An artifact pushed with `subject` (oras-py's referrers support) shows up in the subject's
    referrers index with its artifactType taken from the config media type."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "image.txt").write_text("the subject\n")
    (tmp_path / "signature.txt").write_text(f"signature for {repo}\n")
    client = OrasClient(hostname=registry_server.host, insecure=True, auth_backend="basic")
    client.auth.set_basic_auth(str(registry_server.username), str(registry_server.password))

    subject_push = client.push(
        f"{registry_server.host}/{repo}:subject", files=[f"image.txt:{TEXT_TYPE}"], quiet=True
    )
    subject_digest = subject_push.headers["Docker-Content-Digest"]
    with registry_server.client() as http:
        subject_bytes = http.get(
            f"/v2/{repo}/manifests/{subject_digest}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        ).content
    subject = Subject(
        mediaType="application/vnd.oci.image.manifest.v1+json",
        digest=subject_digest,
        size=len(subject_bytes),
    )

    referrer_push = client.push(
        f"{registry_server.host}/{repo}:signature",
        files=[f"signature.txt:{TEXT_TYPE}"],
        manifest_config=f"/dev/null:{CONFIG_TYPE}",
        subject=subject,
        quiet=True,
    )

    assert referrer_push.status_code == 201
    assert referrer_push.headers["OCI-Subject"] == subject_digest
    referrer_digest = referrer_push.headers["Docker-Content-Digest"]
    with registry_server.client() as http:
        listed = http.get(f"/v2/{repo}/referrers/{subject_digest}")
        assert listed.status_code == 200
        assert listed.headers["content-type"] == "application/vnd.oci.image.index.v1+json"
        entries = listed.json()["manifests"]
        assert [(e["digest"], e["artifactType"]) for e in entries] == [
            (referrer_digest, CONFIG_TYPE)
        ]
        filtered = http.get(
            f"/v2/{repo}/referrers/{subject_digest}", params={"artifactType": "other/type"}
        )
        assert filtered.status_code == 200
        assert filtered.headers["oci-filters-applied"] == "artifactType"
        assert filtered.json()["manifests"] == []
