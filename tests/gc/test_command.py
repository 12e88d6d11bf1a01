"""`simple-registry gc` as a command: usage and exit statuses, the seed's spellings, a run
killed mid-sweep and the one after it, expired uploads and S3 leftovers, and the metrics a
real Prometheus Pushgateway receives."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.gc.conftest import S3_ENV, Store
from tests.gc.pushgateway import Pushgateway
from tests.oci import digest_of, push_blob, push_image
from tests.server import RunningRegistry

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024

# A collection that is killed (SIGKILL) as it is about to delete the first blobs' content:
# after their links went, before their bytes did.
_KILLED = """
import os, signal, sys
from registry.observe.storage import InstrumentedStorage

async def die(self, keys):
    os.kill(os.getpid(), signal.SIGKILL)

InstrumentedStorage.delete_blobs = die
from registry.cli import main
sys.exit(main(["gc", *sys.argv[1:]]))
"""


def _gc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLE_REGISTRY_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "registry", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def test_usage_mistakes_exit_2_with_one_line_each(tmp_path: Path) -> None:
    bad = _gc("gc", "-datadir", str(tmp_path), "-grace", "soon", "-uploads-older-than=-1s")
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert any(
        "-grace must be a duration such as 30s" in line and "'soon'" in line for line in lines
    )
    assert any("-uploads-older-than" in line for line in lines)
    assert "Traceback" not in bad.stderr
    assert _gc("gc", "-no-such-flag").returncode == 2
    missing = _gc("gc", "-datadir", str(tmp_path / "typo"))
    assert missing.returncode == 2
    assert f"no data directory {tmp_path / 'typo'}" in missing.stderr
    assert not (tmp_path / "typo").exists()


def test_help_lists_its_own_flags_and_the_seeds_spellings() -> None:
    done = _gc("garbage-collect", "-h")
    assert done.returncode == 0
    for flag in ("-dry-run", "-dryrun", "-untagged", "-delete-untagged", "-grace", "-last-access",
                 "-uploads-older-than", "-pushgateway", "-wait", "-json", "-datadir", "-s3bucket",
                 "-redisurl", "-cfgdir"):  # fmt: skip
        assert flag in done.stdout, flag
    assert "gc" in _gc("-h").stdout


def test_the_seeds_spelling_and_the_gc_section_of_a_configuration(
    fs_store: Store, tmp_path: Path
) -> None:
    store = fs_store
    with store.serve().client() as client:
        loose = push_image(client, "seed", "loose")
        assert client.delete("/v2/seed/manifests/loose").status_code == 202
    config = tmp_path / "config"
    config.mkdir()
    (config / "gc.yaml").write_text(
        "apiVersion: simple-registry.dev/v1\nkind: Configuration\nmetadata: {name: gc}\n"
        "spec:\n  gc: {grace: 0s, untagged: true}\n"
    )
    seed = _gc(
        "garbage-collect",
        *store.flags,
        "-dryrun",
        "-delete-untagged",
        "-last-access",
        "0s",
        "-json",
    )
    assert seed.returncode == 0, seed.stderr
    from_yaml = _gc("gc", *store.flags, "-cfgdir", str(config), "-dry-run", "-json")
    assert from_yaml.returncode == 0, from_yaml.stderr
    import json

    for done in (seed, from_yaml):
        report = json.loads(done.stdout)
        assert report["dry_run"] is True
        assert report["manifests"]["deleted"] == 1
        assert report["blobs"]["deleted"] == len(loose.blobs) + 1


def test_a_collection_killed_mid_sweep_is_completed_by_the_next(
    store: Store, served: RunningRegistry
) -> None:
    with served.client() as client:
        kept = push_image(client, "app", "kept", layers=2)
        dropped = push_image(client, "app", "dropped", layers=2)
        assert client.delete(f"/v2/app/manifests/{dropped.digest}").status_code == 202
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLE_REGISTRY_")}
        environment.update(store.env)
        killed = subprocess.run(
            [sys.executable, "-c", _KILLED, *store.flags, "-grace", "0s"],
            cwd=ROOT, capture_output=True, text=True, env=environment, timeout=300,
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, killed.stderr

        # Its claims died with it: a blob it was deleting can be pushed again at once (a
        # claim still held would make the commit wait, then answer 503).
        again = dropped.blobs[1]
        r = client.post(
            "/v2/app/blobs/uploads/", params={"digest": digest_of(again)}, content=again
        )
        assert r.status_code == 201
        assert client.get(f"/v2/app/blobs/{digest_of(again)}").content == again
        run = store.gc("-grace", "0s")

        # The rest: the dropped image's blobs (`again` too: unreferenced, and the window is
        # zero) and its manifest's content.
        assert run.report["outcome"] == "done"
        assert run.deleted("blobs") == len(dropped.blobs) + 1
        r = client.get(f"/v2/app/manifests/{kept.digest}")
        assert r.status_code == 200 and r.content == kept.body
        for blob in kept.blobs:
            assert client.get(f"/v2/app/blobs/{digest_of(blob)}").content == blob
        assert store.gc("-grace", "0s", "-dry-run").deleted("blobs") == 0


def test_expired_upload_sessions_go_with_their_data(fs_store: Store) -> None:
    """Session files of the local coordinator (Redis expires sessions itself: see the S3
    leftovers test for what an expired Redis session leaves)."""
    store = fs_store
    with store.serve().client() as client:
        location = _started_upload(client, b"x" * 1000)
        upload_id = location.rstrip("/").split("/")[-1]
        session = store.datadir / "_coord" / "sessions" / upload_id
        eight_days_ago = session.stat().st_mtime - 8 * 86400
        os.utime(session, (eight_days_ago, eight_days_ago))

        run = store.gc()

        assert run.report["upload_sessions"] == 1
        assert run.report["upload_bytes"] == 1000
        assert not (store.datadir / "_uploads" / upload_id).exists()
        assert client.patch(location, content=b"y").status_code == 404


def _started_upload(client: httpx.Client, data: bytes) -> str:
    r = client.post("/v2/up/blobs/uploads/")
    assert r.status_code == 202
    r = client.patch(
        r.headers["Location"], content=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert r.status_code == 202, r.text
    return str(r.headers["Location"])


@pytest.fixture
def s3(s3_store: Store) -> Iterator[Any]:
    store = s3_store
    endpoint = store.flags[store.flags.index("-s3endpoint") + 1]
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip
    yield client
    client.close()


def _bucket(store: Store) -> str:
    return store.flags[store.flags.index("-s3bucket") + 1]


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_s3_data_objects_no_alias_names_and_abandoned_multipart_uploads_go(
    s3_store: Store, s3: Any
) -> None:
    store = s3_store
    bucket = _bucket(store)
    with store.serve().client() as client:
        big = os.urandom(9 * MiB)  # a part and a tail: the blob becomes an alias
        location = _started_upload(client, big)
        r = client.put(location, params={"digest": digest_of(big)})
        assert r.status_code == 201, r.text
        [alias] = [k for k in _keys(s3, bucket, "blobs/") if k.endswith(digest_of(big)[7:])]
        assert s3.head_object(Bucket=bucket, Key=alias)["ContentLength"] == 0
        s3.delete_object(Bucket=bucket, Key=alias)  # as if a crash came before the alias
        assert len(_keys(s3, bucket, "_blobdata/")) == 1

        abandoned = _started_upload(client, os.urandom(9 * MiB))  # a multipart upload...
        upload_id = abandoned.rstrip("/").split("/")[-1]
        redis_url = store.flags[store.flags.index("-redisurl") + 1]
        import redis

        with redis.Redis.from_url(redis_url) as raw:
            assert (
                raw.delete(f"simple-registry:session:{upload_id}") == 1
            )  # ...whose session is gone

        run = store.gc("-grace", "0s", "-uploads-older-than", "0s")

        assert run.report["unnamed_objects"] == 1
        assert run.report["leftover_bytes"] >= 9 * MiB
        assert _keys(s3, bucket, "_blobdata/") == []
        assert run.report["upload_orphans"] + run.report["abandoned_multipart"] >= 1
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        push_blob(client, "up", big)  # the digest is free to be pushed again
        assert client.get(f"/v2/up/blobs/{digest_of(big)}").content == big


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[Pushgateway]:
    gateway = Pushgateway(tmp_path / "pushgateway")
    gateway.start()
    yield gateway
    gateway.stop()


def test_a_real_pushgateway_receives_each_runs_metrics(
    fs_store: Store, pushgateway: Pushgateway
) -> None:
    store = fs_store
    with store.serve().client() as client:
        dropped = push_image(client, "app", "x")
        assert client.delete(f"/v2/app/manifests/{dropped.digest}").status_code == 202

    store.gc("-grace", "0s", "-pushgateway", pushgateway.url)
    first = pushgateway.samples(f"file://{store.datadir}")
    documented = re.findall(
        r"^\| `(registry_gc_[a-z_]+)` \|", (ROOT / "docs" / "operations.md").read_text(), re.M
    )
    assert set(first) == set(documented)  # each documented metric is pushed, and only those
    assert first["registry_gc_success"] == 1
    assert first["registry_gc_deleted_blobs"] == len(dropped.blobs) + 1
    assert first["registry_gc_freed_bytes"] > 0
    succeeded = first["registry_gc_last_success_timestamp_seconds"]
    assert succeeded == first["registry_gc_last_run_timestamp_seconds"]

    # A run that fails (Redis is unreachable) says so, and keeps the last success.
    failed = store.gc(
        "-redisurl", "redis://127.0.0.1:1/0", "-pushgateway", pushgateway.url, expect=1
    )
    assert "failed" in failed.stderr
    second = pushgateway.samples(f"file://{store.datadir}")
    assert second["registry_gc_success"] == 0
    assert second["registry_gc_last_success_timestamp_seconds"] == succeeded
    assert second["registry_gc_last_run_timestamp_seconds"] >= succeeded
