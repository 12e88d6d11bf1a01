"""The registry with `-redisurl`: upload sessions shared through Redis, 503 while it is away."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.backends.conftest import RedisProcess
from tests.oci import OCI_MANIFEST, digest_of, error_codes, image_manifest, push_image
from tests.server import RunningRegistry, start


def test_chunks_alternate_between_workers_through_redis(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    server = start(tmp_path / "data", "-workers", "3", "-redisurl", redis_server.url(db=5))
    try:
        data = os.urandom(30 * 1000)
        with server.client() as http:
            location = http.post("/v2/r/blobs/uploads/").headers["Location"]
        for i in range(0, len(data), 1000):
            with server.client() as fresh:  # a new connection: possibly another worker
                r = fresh.patch(
                    location,
                    content=data[i : i + 1000],
                    headers={"Content-Range": f"{i}-{i + 999}"},
                )
                assert r.status_code == 202
        with server.client() as http:
            assert http.put(location, params={"digest": digest_of(data)}).status_code == 201
            assert http.get(f"/v2/r/blobs/{digest_of(data)}").content == data
            push_image(http, "r", "v1")
        assert not (tmp_path / "data" / "_coord" / "sessions").exists()  # sessions lived in Redis
    finally:
        server.stop()


def test_redis_away_is_503_then_recovers(
    start_redis: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    redis = start_redis()
    server: RunningRegistry = start(tmp_path / "data", "-redisurl", redis.url())
    try:
        with server.client() as http:
            location = http.post("/v2/r/blobs/uploads/").headers["Location"]
            assert http.patch(location, content=b"abc").status_code == 202
            redis.stop()
            r = http.post("/v2/r/blobs/uploads/")
            assert r.status_code == 503
            assert error_codes(r) == ["UNAVAILABLE"]
            r = http.patch(location, content=b"def")
            assert r.status_code == 503
            redis.start()  # an empty Redis: the old session is gone, a new upload works
            assert http.patch(location, content=b"def").status_code == 404
            fresh = http.post("/v2/r/blobs/uploads/")
            assert fresh.status_code == 202
            r = http.put(
                fresh.headers["Location"], params={"digest": digest_of(b"x")}, content=b"x"
            )
            assert r.status_code == 201
    finally:
        server.stop()


@pytest.mark.parametrize("source", ["flag", "yaml"])
def test_redis_url_from_flag_or_configuration(source: str, tmp_path: Path) -> None:
    from registry.config.flags import parse_serve

    argv = ["-adminpwd", "pw"]
    if source == "flag":
        argv += ["-redisurl", "redis://127.0.0.1:6399/1"]
    else:
        cfg = tmp_path / "cfg"
        cfg.mkdir()
        (cfg / "c.yaml").write_text(
            "apiVersion: simple-registry.dev/v1\nkind: Configuration\nmetadata: {name: c}\n"
            "spec:\n  redis: {url: 'redis://127.0.0.1:6399/1'}\n"
        )
        argv += ["-cfgdir", str(cfg)]
    redis = parse_serve(argv, environ={}).redis
    assert redis is not None and redis.url == "redis://127.0.0.1:6399/1"


def test_token_secret_is_shared_through_redis(
    start_redis: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    """Two servers with separate data directories accept each other's tokens."""
    import httpx

    redis = start_redis()
    common = ("-redisurl", redis.url(), "-service", "registry.test")
    first = start(tmp_path / "one", *common)
    second = start(tmp_path / "two", *common)
    try:
        r = httpx.get(
            f"{first.url}/token",
            auth=(first.username or "", first.password or ""),
            params={"scope": "repository:x:pull"},
        )
        token = r.json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{second.url}/v2/", headers=bearer).status_code == 200
        assert not (tmp_path / "two" / "_secrets").exists()
    finally:
        first.stop()
        second.stop()


def test_unreachable_redis_at_start_is_a_clear_error(
    start_redis: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    import subprocess
    import sys

    redis = start_redis()
    url = redis.url()
    redis.stop()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "registry",
            "serve",
            "-adminpwd",
            "pw",
            "-addr",
            "127.0.0.1:0",
            "-datadir",
            str(tmp_path / "d"),
            "-redisurl",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unreachable" in result.stderr and "-tokensecret" in result.stderr
    assert "Traceback" not in result.stderr


def test_registry_through_sentinel(
    start_redis: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    """`redis+sentinel://` finds the primary; the token secret and sessions live there."""
    master = start_redis()
    sentinel = start_redis(sentinel_of=master)
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/2"
    server = start(tmp_path / "data", "-redisurl", url)
    try:
        with server.client() as http:
            location = http.post("/v2/s/blobs/uploads/").headers["Location"]
            assert http.patch(location, content=b"abc").status_code == 202
            r = http.put(location, params={"digest": digest_of(b"abc")})
            assert r.status_code == 201
    finally:
        server.stop()
    import redis

    direct = redis.Redis.from_url(master.url(db=2))
    with direct:
        assert direct.exists("simple-registry:secret:token-secret") == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h:6379/0", None),
        (
            "redis+sentinel://:pw@a:26379,b:26380/mymaster/3",
            ([("a", 26379), ("b", 26380)], "mymaster", 3, "pw"),
        ),
        ("redis+sentinel://a:26379/svc", ([("a", 26379)], "svc", 0, None)),
    ],
)
def test_sentinel_urls(url: str, expected: tuple[object, ...] | None) -> None:
    from registry.coord.redis_options import parse_sentinel_url

    parsed = parse_sentinel_url(url)
    if expected is None:
        assert parsed is None
    else:
        assert parsed is not None
        assert (parsed.sentinels, parsed.service, parsed.db, parsed.password) == expected


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://a:26379",
        "redis+sentinel://a/svc",
        "redis+sentinel://a:26379/svc/x",
        "redis+sentinel://a:\u00b2/svc",  # a digit to str.isdigit, not to int()
        "redis+sentinel://a:26379/svc/\u00b2",
    ],
)
def test_bad_sentinel_urls(url: str) -> None:
    from registry.coord.redis_options import parse_sentinel_url

    with pytest.raises(ValueError):
        parse_sentinel_url(url)


@pytest.mark.parametrize("url", ["http://h:6379", "redis+sentinel://nohost"])
def test_bad_redis_url_is_a_config_error(url: str) -> None:
    from registry.config.flags import parse_serve
    from registry.config.settings import ConfigError

    with pytest.raises(ConfigError, match=r"Redis URL|redisurl"):
        parse_serve(["-adminpwd", "pw", "-redisurl", url], environ={})


def test_worker_killed_mid_patch_leaves_a_usable_session(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    """Two servers share a data directory and Redis; one dies while it streams a chunk (and
    holds the upload's lock). The other sees the upload as before that chunk and finishes it
    once the dead worker's lease (1 s here) runs out."""
    import threading

    import httpx

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "c.yaml").write_text(
        "apiVersion: simple-registry.dev/v1\nkind: Configuration\nmetadata: {name: c}\n"
        "spec: {redis: {lockLeaseSeconds: 1}}\n"
    )
    common = ("-redisurl", redis_server.url(db=6), "-cfgdir", str(cfg), "-service", "r")
    doomed = start(tmp_path / "shared", *common)
    survivor = start(tmp_path / "shared", *common)
    try:
        with survivor.client() as http:
            location = http.post("/v2/k/blobs/uploads/").headers["Location"]
            assert http.patch(location, content=b"first").status_code == 202
        first_chunk_sent, release = threading.Event(), threading.Event()

        def slow_body() -> object:
            yield b"x" * 1000
            first_chunk_sent.set()
            release.wait(timeout=60)
            yield b"never arrives"

        def patch_on_doomed() -> None:
            try:
                with doomed.client() as http:
                    http.patch(location, content=slow_body())  # type: ignore[arg-type]
            except httpx.HTTPError:
                pass  # the server died under it

        thread = threading.Thread(target=patch_on_doomed)
        thread.start()
        assert first_chunk_sent.wait(timeout=30)
        doomed.process.kill()
        doomed.process.wait()
        release.set()
        thread.join(timeout=60)
        with survivor.client() as http:
            status = http.get(location)
            assert status.status_code == 204
            assert status.headers["Range"] == "0-4"  # only the committed chunk
            assert http.patch(location, content=b"-second").status_code == 202
            r = http.put(location, params={"digest": digest_of(b"first-second")})
            assert r.status_code == 201, r.text
            assert http.get(f"/v2/k/blobs/{digest_of(b'first-second')}").content == b"first-second"
    finally:
        survivor.stop()
        doomed.stop()


def test_tag_pushes_after_a_redis_stall_do_not_wait_for_stale_locks(
    start_redis: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    """16 clients push their tag again and again; Redis stops meanwhile (until each client has
    had a 503) and resumes. Pushes caught holding a lock could not release it, and Redis
    carries out the lock SETs it had buffered when it resumes. Pushing the same tags again
    must then succeed at once, not wait (30 s, then 503) for those locks' leases to run out:
    the client allows 10 s."""
    import json
    import threading
    from concurrent.futures import ThreadPoolExecutor

    redis = start_redis()
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "c.yaml").write_text(
        "apiVersion: simple-registry.dev/v1\nkind: Configuration\nmetadata: {name: c}\n"
        f"spec:\n  redis: {{url: '{redis.url()}', timeoutSeconds: 0.5}}\n"
    )
    server = start(tmp_path / "data", "-cfgdir", str(cfg))
    try:
        with server.client() as http, ThreadPoolExecutor(16) as pool:
            template = json.loads(image_manifest(http, "r")[0])
            bodies = [
                json.dumps({**template, "annotations": {"n": str(i)}}).encode() for i in range(16)
            ]

            def push(i: int, timeout: float = 60) -> int:
                return http.put(
                    f"/v2/r/manifests/t{i}",
                    content=bodies[i],
                    headers={"Content-Type": OCI_MANIFEST},
                    timeout=timeout,
                ).status_code

            stop, seen = threading.Event(), threading.Condition()
            answers: dict[int, set[int]] = {i: set() for i in range(16)}

            def keep_pushing(i: int) -> None:
                while not stop.is_set():
                    status = push(i)
                    with seen:
                        answers[i].add(status)
                        seen.notify_all()

            def each_had(status: int) -> bool:
                return all(status in got for got in answers.values())

            pushers = [pool.submit(keep_pushing, i) for i in range(16)]
            try:
                with seen:
                    assert seen.wait_for(lambda: each_had(201), timeout=60)
                with redis.paused(), seen:
                    assert seen.wait_for(lambda: each_had(503), timeout=60)
            finally:
                stop.set()
                for pusher in pushers:
                    pusher.result()
            assert set().union(*answers.values()) == {201, 503}
            assert list(pool.map(push, range(16), [10.0] * 16)) == [201] * 16
    finally:
        server.stop()
