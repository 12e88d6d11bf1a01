"""The instrumenting wrappers, on the real local backends: calls are timed per action,
unavailability is counted as an error, a missing key is not, lock waits and timeouts count."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from registry.coord.base import LockTimeout
from registry.coord.local import LocalCoordinator
from registry.observe.coord import InstrumentedCoordinator
from registry.observe.storage import InstrumentedStorage
from registry.storage.base import Leftovers, ObjectNotFound, StorageDriver, StorageUnavailable
from registry.storage.filesystem import FilesystemDriver

pytestmark = pytest.mark.anyio


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class _Unreachable(FilesystemDriver):
    """A filesystem whose reads fail as an unreachable store would."""

    async def read(self, key: str) -> bytes:
        raise StorageUnavailable("the store is away")


async def test_storage_calls_are_timed_and_unavailability_counted(tmp_path: Path) -> None:
    storage: StorageDriver = InstrumentedStorage(FilesystemDriver(tmp_path))
    count = "registry_storage_action_seconds_count"
    before = {a: _value(count, driver="filesystem", action=a) for a in ("write", "read", "stream")}
    errors = _value("registry_storage_errors_total", driver="filesystem", action="read")

    await storage.write("a/b", b"hello")
    assert await storage.read("a/b") == b"hello"
    with pytest.raises(ObjectNotFound):
        await storage.read("a/missing")  # the store answered: not an error
    assert b"".join([chunk async for chunk in storage.stream("a/b", 1)]) == b"ello"

    assert _value(count, driver="filesystem", action="write") == before["write"] + 1
    assert _value(count, driver="filesystem", action="read") == before["read"] + 2
    assert _value(count, driver="filesystem", action="stream") == before["stream"] + 1
    assert _value("registry_storage_errors_total", driver="filesystem", action="read") == errors

    away = InstrumentedStorage(_Unreachable(tmp_path))
    with pytest.raises(StorageUnavailable):
        await away.read("a/b")
    assert _value("registry_storage_errors_total", driver="filesystem", action="read") == (
        errors + 1
    )


async def test_lock_waits_and_timeouts_are_counted(tmp_path: Path) -> None:
    coord = InstrumentedCoordinator(LocalCoordinator(tmp_path))
    waits = _value("registry_lock_wait_seconds_count", coordinator="local")
    timeouts = _value("registry_lock_timeouts_total", coordinator="local")
    held, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with coord.lock("upload:x"):
            held.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await held.wait()
    with pytest.raises(LockTimeout):
        async with coord.lock("upload:x", timeout=0.05):
            pass
    release.set()
    await task
    async with coord.lock("upload:x"):
        await coord.put_session("s1", b"record")
        assert await coord.get_session("s1") == b"record"

    assert _value("registry_lock_wait_seconds_count", coordinator="local") == waits + 3
    assert _value("registry_lock_timeouts_total", coordinator="local") == timeouts + 1
    assert _value("registry_coordinator_errors_total", coordinator="local", action="lock") == 0
    assert (
        _value(
            "registry_coordinator_action_seconds_count", coordinator="local", action="get_session"
        )
        >= 1
    )


async def test_the_collectors_storage_calls_are_forwarded_and_timed(tmp_path: Path) -> None:
    storage: StorageDriver = InstrumentedStorage(FilesystemDriver(tmp_path))
    count = "registry_storage_action_seconds_count"
    actions = ("walk", "delete_many", "delete_blobs", "sweep_leftovers")
    before = {a: _value(count, driver="filesystem", action=a) for a in actions}

    await storage.write("blobs/sha256/aa/aa", b"blob")
    await storage.write("repositories/a/_layers/sha256/aa", b"")
    pages = [page async for page in storage.walk("blobs")]
    assert [[item.key for item in page] for page in pages] == [["blobs/sha256/aa/aa"]]
    await storage.delete_many(["repositories/a/_layers/sha256/aa"])
    assert await storage.delete_blobs(["blobs/sha256/aa/aa"]) == 4
    assert await storage.sweep_leftovers([], 0.0, dry_run=True) == Leftovers()
    storage.forget_cached()

    assert await storage.list("repositories") == []
    for action in actions:
        assert _value(count, driver="filesystem", action=action) == before[action] + 1, action
