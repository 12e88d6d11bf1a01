"""The `Coordinator` and `Index` contracts, run on every implementation: the local coordinator
in a temporary directory and Redis on a real redis-server (see conftest.py).

A new coordinator is done when this suite passes on it: add it to `coords`' parameters (and
to `index`'s if it keeps an index; both fixtures are in conftest.py, shared with the garbage
collector's suite, test_coord_gc_conformance.py). Each "worker" is a coordinator object of
its own on the shared state (a directory, a Redis key prefix), as separate processes would
have. What only one implementation has (lock files, Redis leases, stalls, URLs) stays in its
own tests.
Waiting is on the lock itself or bounded by `asyncio.wait_for`; time passes for a session by
ageing its record, never by sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from registry.coord.base import Coordinator, Index, IndexNotReady, LockTimeout
from tests.backends.conftest import STORE, Coords

pytestmark = pytest.mark.anyio

SESSION = "0123456789abcdef0123456789abcdef"


async def test_implements_the_protocol(coords: Coords) -> None:
    coord: Coordinator = coords.make()
    assert coord.name == coords.name


# --- sessions


async def test_session_round_trip(coords: Coords) -> None:
    worker1, worker2 = coords.make(), coords.make()
    assert await worker1.get_session(SESSION) is None
    await worker1.put_session(SESSION, b'{"offset": 5}')
    assert await worker2.get_session(SESSION) == b'{"offset": 5}'
    await worker2.put_session(SESSION, b'{"offset": 9}')
    assert await worker1.get_session(SESSION) == b'{"offset": 9}'
    await worker1.delete_session(SESSION)
    assert await worker2.get_session(SESSION) is None
    await worker1.delete_session(SESSION)  # deleting what is gone is fine
    with pytest.raises(ValueError):
        await worker1.get_session("../x")


async def test_a_session_expires_and_a_put_starts_its_time_again(coords: Coords) -> None:
    worker1, worker2 = coords.make(), coords.make()
    await worker1.put_session(SESSION, b"a")
    await coords.expire(SESSION)
    assert await worker2.get_session(SESSION) is None
    await worker1.put_session(SESSION, b"b")
    assert await worker2.get_session(SESSION) == b"b"


# --- locks


async def test_lock_excludes_another_worker_until_released(coords: Coords) -> None:
    worker1, worker2 = coords.make(), coords.make()
    events: list[str] = []

    async def second() -> None:
        async with worker2.lock("upload:x", timeout=10):
            events.append("2 in")

    async with worker1.lock("upload:x"):
        events.append("1 in")
        waiter = asyncio.create_task(second())
        done, _ = await asyncio.wait({waiter}, timeout=0.3)
        assert not done, "the second worker got a lock the first one holds"
        events.append("1 out")
    await asyncio.wait_for(waiter, timeout=5)
    assert events == ["1 in", "1 out", "2 in"]
    # Other names are independent.
    async with worker1.lock("upload:x"), worker2.lock("upload:y", timeout=0.5):
        pass


async def test_lock_wait_times_out(coords: Coords) -> None:
    worker1, worker2 = coords.make(), coords.make()
    async with worker1.lock("upload:x"):
        start = time.monotonic()
        with pytest.raises(LockTimeout):
            async with worker2.lock("upload:x", timeout=0.2):
                pytest.fail("got a lock that is held")
        assert 0.2 <= time.monotonic() - start < 2.0
    async with worker2.lock("upload:x", timeout=0.5):  # free again
        pass


async def test_a_lock_is_released_when_its_block_raises(coords: Coords) -> None:
    worker1, worker2 = coords.make(), coords.make()
    with pytest.raises(RuntimeError):
        async with worker1.lock("upload:failing"):
            raise RuntimeError("released on errors too")
    async with worker2.lock("upload:failing", timeout=0.5):
        pass


async def test_cancelled_holder_gives_the_lock_back(coords: Coords) -> None:
    """A request cancelled while holding the lock (client went away) releases it at once,
    not after a lease; so does one cancelled while still waiting for it."""
    worker1, worker2 = coords.make(), coords.make()
    held = asyncio.Event()

    async def hold_forever() -> None:
        async with worker1.lock("upload:x"):
            held.set()
            await asyncio.Event().wait()

    holder = asyncio.create_task(hold_forever())
    await asyncio.wait_for(held.wait(), timeout=5)
    waiter = asyncio.create_task(hold_forever())  # waits behind the holder
    for task in (waiter, holder):
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    async with worker2.lock("upload:x", timeout=0.5):
        pass


async def test_concurrent_read_modify_write_loses_no_update(coords: Coords, tmp_path: Path) -> None:
    """40 increments from 4 workers, each a read then a write with a yield in between."""
    workers = [coords.make() for _ in range(4)]
    counter = tmp_path / "counter"

    async def increment(coord: Coordinator | None) -> None:
        if coord is None:
            value = int(counter.read_text() or 0)
            await asyncio.sleep(0)
            counter.write_text(str(value + 1))
            return
        async with coord.lock("counter", timeout=10):
            value = int(counter.read_text() or 0)
            await asyncio.sleep(0)
            counter.write_text(str(value + 1))

    # Without the lock this workload does lose updates, so the check below can fail.
    counter.write_text("0")
    await asyncio.gather(*(increment(None) for _ in range(40)))
    assert int(counter.read_text()) < 40

    counter.write_text("0")
    await asyncio.wait_for(
        asyncio.gather(*(increment(workers[i % 4]) for i in range(40))), timeout=15
    )
    assert int(counter.read_text()) == 40


# --- the index


async def test_an_index_only_where_listing_storage_is_costly(coords: Coords) -> None:
    """The embedded default walks its directory; a shared coordinator keeps an index."""
    index = coords.make().index(STORE)
    assert (index is None) == (coords.name == "local")


async def test_an_index_that_is_not_ready_does_not_answer(index: Callable[[], Index]) -> None:
    reader = index()
    assert not await reader.ready()
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: reader.tag("app", "v1"),
        lambda: reader.tags("app"),
        lambda: reader.repositories(None, 10),
        lambda: reader.linked("app", "sha256:aa"),
        lambda: reader.linked_many("app", ["sha256:aa"]),
    ]
    for read in reads:
        with pytest.raises(IndexNotReady):
            await read()


async def test_ready_only_when_nothing_changed_since_the_last_look(
    index: Callable[[], Index],
) -> None:
    writer = index()
    await writer.set_tag("app", "v1", b"record")  # while not ready: marks "app" dirty
    assert await writer.mark_ready() is False
    assert await writer.take_dirty() == ["app"]
    assert await writer.mark_ready() is True
    await writer.set_tag("app", "v2", b"record")  # ready now: nothing to mark
    assert await writer.take_dirty() == []
    await writer.invalidate()
    assert not await writer.ready()
    with pytest.raises(IndexNotReady):
        await writer.tag("app", "v1")


async def test_tags_links_and_repositories(index: Callable[[], Index]) -> None:
    writer, reader = index(), index()
    await writer.replace_repository("app", {"v1": b"r1"}, frozenset({"sha256:aa"}))
    await writer.take_dirty()
    assert await writer.mark_ready() is True
    assert await reader.ready()

    assert await reader.tag("app", "v1") == b"r1"
    assert await reader.tag("app", "nope") is None
    assert await reader.tags("app") == {"v1": b"r1"}
    assert await reader.tags("nothing") is None
    await writer.set_tag("app", "v2", b"r2")
    await writer.delete_tag("app", "v1")
    assert await reader.tags("app") == {"v2": b"r2"}

    await writer.add_link("app", "sha256:bb")
    assert await reader.linked("app", "sha256:bb")
    await writer.delete_link("app", "sha256:aa")
    assert await reader.linked_many("app", ["sha256:aa", "sha256:cc", "sha256:bb"]) == [
        False,
        False,
        True,
    ]

    await writer.add_link("layers-only", "sha256:aa")  # a link makes the repository exist
    await writer.add_repository("b")
    assert await reader.repositories(None, 10) == ["app", "b", "layers-only"]
    assert await reader.repositories("app", 1) == ["b"]
    assert await reader.repositories("layers-only", 10) == []

    await writer.replace_repository("app", {}, frozenset())  # rebuilt: exactly these
    assert await reader.tags("app") == {}
    assert not await reader.linked("app", "sha256:bb")
