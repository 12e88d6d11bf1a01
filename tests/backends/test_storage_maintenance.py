"""The maintenance calls of the `StorageDriver` contract (the garbage collector's: `walk`,
`delete_many`, `delete_blobs`, `sweep_leftovers`, `forget_cached`), run on every driver with
the `store` fixture of the conformance suite (see `tests.backends.stores`).

Then what only the filesystem does: walking a large tree without holding the event loop,
pruning folders, and writers that race the pruning. S3's sweep is in test_s3_sweep.py.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest

from registry import tempfiles
from registry.storage import filesystem_maintenance
from registry.storage.base import Leftovers, Listed, StorageDriver
from registry.storage.filesystem import FilesystemDriver
from registry.storage.s3_uploads import data_key
from tests.backends.stores import KEY, PART, UPLOAD, MiB, Store, append_all, write_many

pytestmark = pytest.mark.anyio


async def _walk(driver: StorageDriver, prefix: str) -> list[list[Listed]]:
    return [page async for page in driver.walk(prefix)]


def _flat(pages: list[list[Listed]]) -> dict[str, Listed]:
    found = {item.key: item for page in pages for item in page}
    assert len(found) == sum(len(page) for page in pages), "an object listed twice"
    return found


# --- walk


async def test_walk_lists_every_object_below_a_prefix(store: Store) -> None:
    objects = {
        "repositories/library/alpine/_manifests/tags/latest": b"sha256:" + b"a" * 64,
        "repositories/library/alpine/_layers/sha256/aa": b"",
        "repositories/library/busybox/_manifests/revisions/sha256/bb/link": b"x" * 1000,
        "repositories/top": b"top",
    }
    elsewhere = {"repositoriesX/not-below": b"no", "blobs/sha256/cc/cc": b"blob"}
    started = time.time()
    await write_many(store.driver, objects | elsewhere)

    pages = await _walk(store.driver, "repositories")
    assert all(0 < len(page) <= 1000 for page in pages)
    found = _flat(pages)
    assert {key: item.size for key, item in found.items()} == {
        key: len(data) for key, data in objects.items()
    }
    # A minute either side: the store's clock and this host's may differ a little.
    assert all(started - 60 <= item.modified <= time.time() + 60 for item in found.values())
    assert set(_flat(await _walk(store.driver, "repositories/library/alpine"))) == {
        "repositories/library/alpine/_manifests/tags/latest",
        "repositories/library/alpine/_layers/sha256/aa",
    }


async def test_walk_of_an_absent_prefix_or_an_object_yields_nothing(store: Store) -> None:
    await store.driver.write("repositories/top", b"an object, not a prefix")
    assert await _walk(store.driver, "nothing") == []
    assert await _walk(store.driver, "repositories/top") == []
    assert await _walk(store.driver, "repositories/to") == []  # a prefix of a name is no folder


async def test_thousands_of_objects_walk_in_pages_and_go_in_batches(store: Store) -> None:
    doomed = {f"many/{i % 7}/object-{i:04}": b"d" * (i % 5) for i in range(2500)}
    kept = {"many-not/kept": b"k", "other/kept": b"kk"}
    await write_many(store.driver, doomed | kept)

    pages = await _walk(store.driver, "many")
    assert len(pages) >= 3 and all(0 < len(page) <= 1000 for page in pages)
    found = _flat(pages)
    assert {key: item.size for key, item in found.items()} == {
        key: len(data) for key, data in doomed.items()
    }

    absent = ["many/absent", "nowhere/at/all"]
    await store.driver.delete_many([*found, *absent])
    assert await store.leftovers() == {key: len(data) for key, data in kept.items()}
    assert await _walk(store.driver, "many") == []
    assert await store.driver.list("many") == []  # no empty folder on the filesystem either


# --- delete_many and delete_blobs


async def test_delete_many_leaves_no_empty_folder_behind(store: Store) -> None:
    """A listing after the deletion is the same on every driver: the filesystem removes the
    folders its objects left empty, as a bucket's prefixes vanish with their last object."""
    gone = [
        "repositories/a/b/_layers/sha256/x",
        "repositories/a/b/_manifests/tags/latest",
        "repositories/c/_layers/sha256/y",
    ]
    kept = {"repositories/c/_manifests/tags/1": b"1"}
    await write_many(store.driver, dict.fromkeys(gone, b"g") | kept)

    await store.driver.delete_many(gone)
    assert await store.driver.list("repositories") == ["c"]
    assert await store.driver.list("repositories/c") == ["_manifests"]
    assert await store.leftovers() == {"repositories/c/_manifests/tags/1": 1}
    await store.driver.delete_many([])  # nothing to do, no error
    await store.driver.write("repositories/a/b/_layers/sha256/x", b"again")  # folders anew
    assert await store.driver.read("repositories/a/b/_layers/sha256/x") == b"again"


async def test_delete_blobs_returns_the_bytes_freed(store: Store) -> None:
    blobs = {
        "blobs/sha256/aa/aa01": b"a" * 1000,
        "blobs/sha256/aa/aa02": b"",
        "blobs/sha256/bb/bb01": b"b" * 77,
    }
    await write_many(store.driver, blobs | {"blobs/sha256/bb/bb02": b"kept"})

    freed = await store.driver.delete_blobs([*blobs, "blobs/sha256/cc/absent"])
    assert freed == 1077
    assert await store.leftovers() == {"blobs/sha256/bb/bb02": 4}
    assert await store.driver.list("blobs/sha256") == ["bb"]
    assert await store.driver.delete_blobs(list(blobs)) == 0  # gone already


async def test_delete_blobs_frees_what_a_chunked_upload_made(store: Store) -> None:
    """A blob committed from parts (on S3 an alias of the upload's data object): deleting it
    frees its real size, and nothing of it is left."""
    bodies = [random.Random(1).randbytes(PART + 1), random.Random(2).randbytes(2 * MiB)]
    appended = await append_all(store.driver, bodies)
    await store.driver.complete(UPLOAD, appended.state, KEY)
    await store.driver.delete_prefix("_uploads")  # as the model ends an upload
    assert await store.driver.size(KEY) == appended.size
    assert await store.driver.read(KEY) == b"".join(bodies)  # remembered, on S3

    assert await store.driver.delete_blobs([KEY]) == appended.size
    assert await store.leftovers() == {}
    assert await store.driver.size(KEY) is None  # also for a driver that remembered it


# --- sweep_leftovers and forget_cached


async def test_a_sweep_keeps_what_live_uploads_and_blobs_need(store: Store) -> None:
    """Whatever a driver sweeps, a committed blob and an upload named live stay usable."""
    first = random.Random(3).randbytes(PART + 10)
    appended = await append_all(store.driver, [first])
    await store.driver.complete(UPLOAD, appended.state, KEY)
    await store.driver.delete_prefix("_uploads")
    live = "_uploads/fedcba9876543210fedcba9876543210/data"
    going = await append_all(store.driver, [random.Random(4).randbytes(PART + 20)], key=live)

    swept = await store.driver.sweep_leftovers([live], time.time() + 60)
    assert swept == Leftovers()  # nothing failed: nothing to sweep
    assert await store.driver.read(KEY) == first
    rest = await append_all(store.driver, [b"more"], going.size, going.state, key=live)
    await store.driver.complete(live, rest.state, "blobs/sha256/dd/dd")
    assert await store.driver.size("blobs/sha256/dd/dd") == PART + 24
    store.driver.forget_cached()
    assert await store.driver.read(KEY) == first  # asked afresh


# --- the filesystem only


@pytest.fixture
def files(tmp_path: Path) -> FilesystemDriver:
    return FilesystemDriver(tmp_path / "data")


async def test_a_large_tree_is_walked_without_holding_the_event_loop(
    files: FilesystemDriver,
) -> None:
    """20,000 files in 40 folders: pages of at most 1,000 come from worker threads, and the
    event loop keeps running between and during them."""
    for folder in range(40):
        path = Path(files.root, "blobs", "sha256", f"{folder:02x}")
        path.mkdir(parents=True)
        for name in range(500):
            (path / f"{name:04}").write_bytes(b"")
    gaps: list[float] = []

    async def heartbeat() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)  # a ticker that measures, not a synchronisation
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.ensure_future(heartbeat())
    try:
        pages = await _walk(files, "blobs")
    finally:
        ticker.cancel()
    assert len(_flat(pages)) == 20_000
    assert len(pages) >= 20 and all(len(page) <= 1000 for page in pages)
    assert gaps and max(gaps) < 0.5, max(gaps)


async def test_temp_files_are_no_objects(files: FilesystemDriver) -> None:
    fd, _ = tempfiles.create(files._tmp)  # a write in progress holds its temp file
    try:
        assert await _walk(files, "_tmp") == []
    finally:
        os.close(fd)


async def test_pruning_stops_below_the_top_level_folder(files: FilesystemDriver) -> None:
    await files.write("repositories/a/_layers/sha256/x", b"x")
    await files.write("blobs/sha256/aa/aa", b"blob")
    assert await files.delete_blobs(["blobs/sha256/aa/aa"]) == 4
    await files.delete_many(["repositories/a/_layers/sha256/x"])
    assert sorted(os.listdir(files.root)) == ["_tmp", "blobs", "repositories"]
    assert os.listdir(Path(files.root, "blobs")) == []
    assert os.listdir(Path(files.root, "repositories")) == []


async def test_a_write_survives_a_collector_removing_its_new_folder(
    files: FilesystemDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: a writer makes the folders of its new file, and before it renames the file
    into place, a collector removes them as empty (as `delete_many` does). The writer makes
    them again. The interleaving is forced by running the collector's pruning right after
    the writer's first makedirs."""
    made = os.makedirs
    raced: list[str] = []
    depth = [0]  # os.makedirs calls itself for the parents: the collector runs after the outer

    def makedirs_then_collector(path: str, mode: int = 0o777, exist_ok: bool = False) -> None:
        depth[0] += 1
        try:
            made(path, mode, exist_ok)
        finally:
            depth[0] -= 1
        if not raced and depth[0] == 0:
            raced.append(path)
            key = os.path.relpath(path, files.root)
            filesystem_maintenance.prune(files.root, [key])

    monkeypatch.setattr(os, "makedirs", makedirs_then_collector)
    await files.write("repositories/a/_layers/sha256/x", b"link")
    assert raced == [os.path.join(files.root, "repositories/a/_layers/sha256")]
    assert await files.read("repositories/a/_layers/sha256/x") == b"link"

    raced.clear()  # an upload's first append creates its file the same way
    appended = await append_all(files, [b"chunk"])
    assert raced == [os.path.dirname(os.path.join(files.root, UPLOAD))]
    assert appended.size == 5 and await files.read(UPLOAD) == b"chunk"


def test_the_model_folders_are_those_the_s3_sweep_scans() -> None:
    """`s3_maintenance` names the model's folders itself (the storage layer does not import
    the model): they must stay the same."""
    from registry.model import paths
    from registry.oci.digests import Digest
    from registry.storage import s3_maintenance

    assert s3_maintenance.UPLOADS == paths.UPLOADS + "/"
    digest = Digest.parse("sha256:" + "ab" * 32)
    assert paths.blob(digest).startswith(s3_maintenance.BLOBS + "/")
    assert data_key(paths.upload_data("x")).startswith("_blobdata/")
