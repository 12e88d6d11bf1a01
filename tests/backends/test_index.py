"""The tag and repository index in Redis, and the model's fallback to storage around it.

The model-level tests run `Registry` on a filesystem store with a real Redis (the index does
not care which store it mirrors, and a directory is quick to set up); a storage wrapper lets a
test change a tag at the exact moment a rebuild has read it. The server-level tests run the
scaled mode (moto + Redis) and show what the index buys: with S3 stopped, `HEAD` by tag, tag
lists and the catalog still answer, because none of them touches the object store.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from registry.coord.base import IndexNotReady
from registry.coord.redis import RedisCoordinator
from registry.model import paths
from registry.model.blobs import CHECK_BATCH
from registry.model.manifests import ManifestRef
from registry.model.registry import Registry
from registry.oci import mediatypes as mt
from registry.oci.digests import Digest
from registry.storage.filesystem import FilesystemDriver
from tests.backends.conftest import RedisProcess
from tests.backends.s3 import MotoServer
from tests.conftest import start_scaled
from tests.oci import digest_of, push_image

pytestmark = pytest.mark.anyio

STORE = "file:///index-test"
EMPTY = b"{}"
CONFIG = "application/vnd.oci.image.config.v1+json"
WAIT = 20.0  # seconds a bounded poll may take before the test fails


class HookedStorage(FilesystemDriver):
    """Runs `on_read(key)` after reading `key` and before returning it, once per hook."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.hooks: dict[str, Callable[[], Awaitable[None]]] = {}

    async def read(self, key: str) -> bytes:
        data = await super().read(key)
        hook = self.hooks.pop(key, None)
        if hook is not None:
            await hook()
        return data


@pytest.fixture
async def raw(redis_server: RedisProcess) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url())
    yield client
    await client.aclose()


@pytest.fixture
def storage(tmp_path: Path) -> HookedStorage:
    return HookedStorage(tmp_path / "data")


@pytest.fixture
def make_registry(
    make_coord: Callable[..., RedisCoordinator], storage: HookedStorage
) -> Callable[[], Registry]:
    """A registry process of its own (own Redis client, own memory) on the shared store."""
    return lambda: Registry(storage, make_coord(), STORE)


async def _push(registry: Registry, name: str, tag: str, config: bytes = EMPTY) -> Digest:
    """An image whose config is `config`: a different config makes a different manifest."""
    digest = Digest.of(config)
    await registry.storage.write(paths.blob(digest), config)
    await registry.blobs.link(name, digest)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(digest),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    return (await registry.manifests.put(name, tag, body, mt.OCI_MANIFEST)).ref.digest


async def _rebuilt(registry: Registry) -> None:
    """Build the index now. A lookup on an index that is not ready (a push checks blob links)
    starts a rebuild in the background, which may hold the lock: wait for it, bounded."""
    deadline = time.monotonic() + WAIT
    while not await registry.lookup.rebuild():
        assert time.monotonic() < deadline, "another rebuild did not finish"
        await asyncio.sleep(0.02)
    index = registry.coord.index(STORE)
    assert index is not None and await index.ready()


async def _unbuilt(registry: Registry) -> None:
    """No index, as on a fresh Redis, and no rebuild running."""
    await _rebuilt(registry)
    index = registry.coord.index(STORE)
    assert index is not None
    await index.invalidate()


async def _catalog(registry: Registry) -> list[str]:
    async def everyone(name: str) -> bool:
        return True

    return (await registry.listing.catalog(everyone, 1000, None)).items


async def test_a_fresh_index_is_built_from_storage_and_then_answers(
    make_registry: Callable[[], Registry], raw: Redis, prefix: str
) -> None:
    before = make_registry()  # pushes while there is no index yet: storage answers
    one = await _push(before, "a", "v1")
    await _push(before, "a/b", "v1", b'{"x":1}')
    await before.blobs.link("layers-only", Digest.of(EMPTY))
    assert await _catalog(before) == ["a", "a/b", "layers-only"]

    worker = make_registry()
    await _rebuilt(worker)
    assert await _catalog(worker) == ["a", "a/b", "layers-only"]
    assert (await worker.manifests.resolve("a", "v1")).digest == one
    assert (await worker.listing.tags("a", None, None)).items == ["v1"]
    # Everything now comes from Redis: a tag only the index knows is served.
    ghost = ManifestRef(Digest.of(b"ghost"), mt.OCI_MANIFEST, 5).encode()
    index = worker.coord.index(STORE)
    assert index is not None
    await index.set_tag("a", "ghost", ghost)
    assert (await worker.manifests.resolve("a", "ghost")).digest == Digest.of(b"ghost")
    # Two stores sharing one Redis keep apart.
    other = worker.coord.index("file:///another-store")
    assert other is not None and not await other.ready()


async def test_catalog_pages_through_the_index(make_registry: Callable[[], Registry]) -> None:
    registry = make_registry()
    await _rebuilt(registry)
    names = [f"repo{i:03d}" for i in range(250)] + ["z/nested"]
    for name in names:
        await registry.blobs.link(name, Digest.of(EMPTY))

    async def odd_only(name: str) -> bool:
        return name.startswith("repo") and int(name[4:]) % 2 == 1

    seen: list[str] = []
    last = None
    while True:
        page = await registry.listing.catalog(odd_only, 40, last)
        seen += page.items
        if page.next_last is None:
            break
        last = page.next_last
    assert seen == [name for name in names if name.startswith("repo") and int(name[4:]) % 2]


@pytest.mark.parametrize("change", ["retag", "untag"])
async def test_a_change_during_the_rebuild_is_not_lost(
    make_registry: Callable[[], Registry], storage: HookedStorage, change: str
) -> None:
    """The rebuild reads tag v1, then (before it writes what it read to the index) another
    worker changes v1. The index must end up with the change, not the rebuild's stale copy."""
    first = make_registry()
    await _push(first, "app", "v1")
    await _unbuilt(first)
    other = make_registry()
    retagged: list[Digest] = []

    async def meanwhile() -> None:
        if change == "retag":
            retagged.append(await _push(other, "app", "v1", b'{"new":true}'))
        else:
            await other.manifests.delete("app", "v1")

    storage.hooks[paths.tag("app", "v1")] = meanwhile
    rebuilder = make_registry()
    await _rebuilt(rebuilder)
    assert not storage.hooks, "the rebuild never read the tag"
    tags = await rebuilder.lookup.tags("app")
    if change == "retag":
        assert tags is not None and list(tags) == ["v1"]
        assert (await rebuilder.manifests.resolve("app", "v1")).digest == retagged[0]
    else:
        assert tags == {}


async def test_only_one_worker_rebuilds_at_a_time(
    make_registry: Callable[[], Registry], storage: HookedStorage
) -> None:
    first = make_registry()
    await _push(first, "app", "v1")
    await _unbuilt(first)
    release = asyncio.Event()
    reading = asyncio.Event()

    async def hold() -> None:
        reading.set()
        await release.wait()

    storage.hooks[paths.tag("app", "v1")] = hold
    busy = asyncio.create_task(make_registry().lookup.rebuild())
    await asyncio.wait_for(reading.wait(), WAIT)
    assert await make_registry().lookup.rebuild() is False  # someone else is at it
    release.set()
    assert await asyncio.wait_for(busy, WAIT) is True


async def test_a_lost_index_is_rebuilt_by_the_next_request(
    make_registry: Callable[[], Registry], raw: Redis, prefix: str
) -> None:
    registry = make_registry()
    digest = await _push(registry, "app", "v1")
    await _rebuilt(registry)
    for key in await raw.keys(f"{prefix}*index:*"):
        await raw.delete(key)  # what a Redis without persistence looks like after a restart

    # Answered from storage, and the request starts a rebuild in the background.
    assert (await registry.manifests.resolve("app", "v1")).digest == digest
    index = registry.coord.index(STORE)
    assert index is not None
    deadline = time.monotonic() + WAIT
    while not await index.ready():
        assert time.monotonic() < deadline, "the index was not rebuilt"
        await asyncio.sleep(0.02)
    assert await index.tag("app", "v1") is not None
    assert await index.repositories(None, 10) == ["app"]


async def test_deleting_an_unknown_tag_adds_no_repository(
    make_registry: Callable[[], Registry],
) -> None:
    registry = make_registry()
    await _rebuilt(registry)
    with pytest.raises(Exception, match="manifest unknown"):
        await registry.manifests.delete("nothing-here", "v1")
    assert await _catalog(registry) == []


async def test_blob_links_come_from_the_index(
    make_registry: Callable[[], Registry], storage: HookedStorage
) -> None:
    before = make_registry()  # linked while there is no index: storage answers
    config = Digest.of(EMPTY)
    await storage.write(paths.blob(config), EMPTY)
    await before.blobs.link("app", config)
    assert await before.blobs.linked("app", config)
    sha512 = Digest.of(b"x", "sha512")
    await storage.write(paths.blob(sha512), b"x")
    await before.blobs.link("app", sha512)

    worker = make_registry()
    await _rebuilt(worker)
    index = worker.coord.index(STORE)
    assert index is not None
    assert await index.linked("app", str(config))
    assert await index.linked("app", str(sha512))  # every algorithm's links are read
    assert not await index.linked("other", str(config))
    # Answered from Redis: a link only storage has is not seen, one only the index has is.
    await storage.write(paths.layer_link("storage-only", config), str(config).encode())
    assert not await worker.blobs.linked("storage-only", config)
    await index.add_link("index-only", str(config))
    assert await worker.blobs.linked("index-only", config)
    assert await worker.blobs.size("index-only", config) == len(EMPTY)

    await worker.blobs.unlink("app", config)
    assert not await index.linked("app", str(config))
    assert not await make_registry().blobs.linked("app", config)
    assert await storage.size(paths.layer_link("app", config)) is None


async def test_many_links_are_checked_in_batches_from_the_index_or_storage(
    make_registry: Callable[[], Registry], storage: HookedStorage
) -> None:
    """What a manifest PUT asks: the first blob of a list the repository does not hold. Ready,
    the index answers (one round trip per batch); not ready, storage does, just as right."""
    blobs = [Digest.of(str(i).encode()) for i in range(CHECK_BATCH * 2 + 5)]
    worker = make_registry()
    for digest in blobs:
        await storage.write(paths.blob(digest), str(digest).encode())
        await worker.blobs.link("app", digest)
    missing = Digest.of(b"never linked")
    storage_only = Digest.of(b"only in storage")
    await storage.write(paths.blob(storage_only), b"only in storage")
    await storage.write(paths.layer_link("app", storage_only), str(storage_only).encode())
    index = worker.coord.index(STORE)
    assert index is not None

    await _rebuilt(worker)
    await index.delete_link("app", str(storage_only))  # so the two sources disagree
    assert await index.linked_many("app", []) == []
    assert await worker.blobs.first_missing("app", blobs * 2) is None
    assert await worker.blobs.first_missing("app", [*blobs, missing, storage_only]) == missing
    assert await make_registry().blobs.first_missing("app", [*blobs, storage_only]) == storage_only

    await _unbuilt(worker)
    fresh = make_registry()  # knows no sizes: checks content too
    assert await fresh.blobs.first_missing("app", [*blobs, storage_only]) is None
    assert await fresh.blobs.first_missing("app", [*blobs, missing]) == missing
    await storage.delete(paths.blob(blobs[-1]))  # linked, but its content is gone
    assert await make_registry().blobs.first_missing("app", blobs) == blobs[-1]


async def test_a_link_during_the_rebuild_is_not_lost(
    make_registry: Callable[[], Registry], storage: HookedStorage
) -> None:
    """Another worker links a blob while the rebuild is reading the repository."""
    first = make_registry()
    await _push(first, "app", "v1")
    await _unbuilt(first)
    late = Digest.of(b'{"late":true}')
    await storage.write(paths.blob(late), b'{"late":true}')
    other = make_registry()

    async def meanwhile() -> None:
        await other.blobs.link("app", late)

    storage.hooks[paths.tag("app", "v1")] = meanwhile
    rebuilder = make_registry()
    await _rebuilt(rebuilder)
    assert not storage.hooks, "the rebuild never read the tag"
    index = rebuilder.coord.index(STORE)
    assert index is not None and await index.linked("app", str(late))


# --- the scaled server


def test_with_s3_down_tags_and_catalog_still_answer(
    start_s3: Callable[[], MotoServer], start_redis: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    moto, redis = start_s3(), start_redis()
    server = start_scaled((redis.url(), moto.endpoint), tmp_path / "data")
    try:
        with server.client() as http:
            image = push_image(http, "team/app", "v1")
            _poll_index_ready(redis, http)
            moto.stop()
            r = http.head("/v2/team/app/manifests/v1")
            assert r.status_code == 200
            assert r.headers["Docker-Content-Digest"] == image.digest
            assert http.get("/v2/team/app/tags/list").json()["tags"] == ["v1"]
            assert http.get("/v2/_catalog").json()["repositories"] == ["team/app"]
            assert http.head("/v2/team/app/manifests/v2").status_code == 404
            # A blob's link comes from the index and its size from memory: HEAD answers. Its
            # bytes need the object store, and the GET says so before sending any header.
            blob = f"/v2/team/app/blobs/{digest_of(image.blobs[0])}"
            assert http.head(blob).status_code == 200
            r = http.get(blob)
            assert r.status_code == 503
            assert r.json()["errors"][0]["code"] == "UNAVAILABLE"
    finally:
        server.stop()


def _poll_index_ready(redis: RedisProcess, http: httpx.Client) -> None:
    """Bounded poll of Redis until a rebuild (started by the requests so far) is done."""
    import redis as redis_sync

    client = redis_sync.Redis.from_url(redis.url())
    try:
        deadline = time.monotonic() + WAIT
        while not client.keys("*index:ready"):
            assert time.monotonic() < deadline, "the index was never built"
            http.get("/v2/_catalog")
            time.sleep(0.05)
    finally:
        client.close()


async def test_index_calls_are_timed_and_unavailability_counted(
    start_redis: Callable[..., RedisProcess],
) -> None:
    from prometheus_client import REGISTRY

    from registry.coord.base import CoordinatorUnavailable
    from registry.observe.coord import InstrumentedCoordinator

    def value(name: str, action: str) -> float:
        labels = {"coordinator": "redis", "action": action}
        return REGISTRY.get_sample_value(name, labels) or 0.0

    server = start_redis()
    redis = RedisCoordinator(server.url())
    index = InstrumentedCoordinator(redis).index(STORE)
    assert index is not None
    timed = "registry_coordinator_action_seconds_count"
    reads, writes = value(timed, "index_read"), value(timed, "index_write")
    errors = value("registry_coordinator_errors_total", "index_read")
    try:
        with pytest.raises(IndexNotReady):
            await index.tag("app", "v1")  # Redis answered: not an error
        await index.set_tag("app", "v1", b"record")
        assert value(timed, "index_read") == reads + 1
        assert value(timed, "index_write") == writes + 1
        server.stop()
        with pytest.raises(CoordinatorUnavailable):
            await index.tags("app")
        assert value("registry_coordinator_errors_total", "index_read") == errors + 1
    finally:
        await redis.close()
