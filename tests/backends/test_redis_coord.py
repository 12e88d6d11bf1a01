"""What only RedisCoordinator does, against real redis-server processes (see conftest.py):
keys and TTLs, lock leases, Redis going away or stalling, URLs. The behaviour every
coordinator shares is in test_coord_conformance.py.

No test sleeps to synchronize: waiting is on the lock itself, on `asyncio.wait` with a
timeout (bounding how long a test may hang), or on a bounded poll of Redis state.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from registry.coord.base import CoordinatorUnavailable, LockTimeout
from registry.coord.redis import RedisCoordinator, Tuning
from tests.backends.conftest import RedisProcess, make_certificate

pytestmark = pytest.mark.anyio

SESSION = "0123456789abcdef0123456789abcdef"
MakeCoord = Callable[..., RedisCoordinator]


async def _poll_until_gone(coord: RedisCoordinator, session_id: str, within: float) -> float:
    """Bounded poll (every 10 ms, at most `within` s) until the session has expired."""
    start = time.monotonic()
    while await coord.get_session(session_id) is not None:
        assert time.monotonic() - start < within, "the session did not expire"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


# --- sessions


async def test_session_ttl_is_set_and_refreshed_by_put(
    make_coord: MakeCoord, raw: Redis, prefix: str
) -> None:
    coord = make_coord(session_ttl=1000)
    key = f"{prefix}session:{SESSION}"
    await coord.put_session(SESSION, b"a")
    assert await raw.get(key) == b"a"  # under the coordinator's prefix
    assert 990_000 < await raw.pttl(key) <= 1_000_000
    await raw.pexpire(key, 5_000)  # as if most of the TTL had passed
    assert await raw.pttl(key) <= 5_000
    await coord.put_session(SESSION, b"b")
    assert 990_000 < await raw.pttl(key) <= 1_000_000


async def test_session_expires(make_coord: MakeCoord) -> None:
    """A 100 ms TTL: the record is there at first and gone within a bounded poll."""
    coord = make_coord(session_ttl=0.1)
    await coord.put_session(SESSION, b"a")
    assert await coord.get_session(SESSION) == b"a"
    assert await _poll_until_gone(coord, SESSION, within=3.0) >= 0.05


# --- locks


async def test_release_never_deletes_another_owners_lock(
    make_coord: MakeCoord, raw: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Worker 1's 200 ms lease runs out (its renewal is switched off, as if the worker hung);
    worker 2 takes the lock; then worker 1 leaves its block: its release must leave worker 2's
    lock in place."""
    worker1, worker2 = make_coord(lock_ttl=0.2), make_coord()
    worker1._renew_every = 3600.0  # simulate a holder that stopped renewing
    key = f"{prefix}lock:upload:x"
    held, leave = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with worker1.lock("upload:x"):
            held.set()
            await leave.wait()

    holder = asyncio.create_task(first())
    await asyncio.wait_for(held.wait(), timeout=5)
    first_token = await raw.get(key)
    assert first_token is not None
    # Waiting for the lock is what waits for worker 1's lease to run out.
    async with worker2.lock("upload:x", timeout=5):
        second_token = await raw.get(key)
        assert second_token not in (None, first_token)
        with caplog.at_level(logging.WARNING, logger="registry.coord.redis"):
            leave.set()
            await asyncio.wait_for(holder, timeout=5)  # worker 1 releases now
        assert await raw.get(key) == second_token, "released someone else's lock"
        assert "no longer ours" in caplog.text
    assert await raw.get(key) is None  # worker 2's own release did delete it


async def test_lease_is_renewed_while_held(make_coord: MakeCoord, raw: Redis, prefix: str) -> None:
    """A 300 ms lease held for 1 s: renewal (every 100 ms) keeps others out the whole time.
    (Worker 2's own lease is long, as a waiter gives up after one lease of its own.)"""
    worker1, worker2 = make_coord(lock_ttl=0.3), make_coord()
    key = f"{prefix}lock:upload:x"
    async with worker1.lock("upload:x"):
        token = await raw.get(key)
        with pytest.raises(LockTimeout):
            async with worker2.lock("upload:x", timeout=1.0):
                pytest.fail("the lease ran out while the lock was held")
        assert await raw.get(key) == token
        assert 0 < await raw.pttl(key) <= 300
    assert await raw.get(key) is None
    async with worker2.lock("upload:x", timeout=0.5):
        pass


# --- Redis down, up again


async def test_unavailable_is_fast_and_recovers(
    start_redis: Callable[..., RedisProcess], make_coord: MakeCoord
) -> None:
    server = start_redis()
    coord = make_coord(server.url(), socket_timeout=1.0)
    await coord.put_session(SESSION, b"a")
    async with coord.lock("upload:x"):
        server.stop()  # dies while the lock is held: leaving the block must not raise
    operations: dict[str, Callable[[], Awaitable[object]]] = {
        "ping": coord.ping,
        "get": lambda: coord.get_session(SESSION),
        "put": lambda: coord.put_session(SESSION, b"b"),
        "delete": lambda: coord.delete_session(SESSION),
    }
    for name, operation in operations.items():
        start = time.monotonic()
        with pytest.raises(CoordinatorUnavailable, match="unreachable"):
            await operation()
        assert time.monotonic() - start < 1.0, name
    start = time.monotonic()
    with pytest.raises(CoordinatorUnavailable):
        async with coord.lock("upload:y", timeout=10):
            pytest.fail("locked without Redis")
    assert time.monotonic() - start < 1.0

    server.start()  # same port, empty (no persistence); the same coordinator object
    await coord.ping()
    assert await coord.get_session(SESSION) is None
    await coord.put_session(SESSION, b"c")
    assert await coord.get_session(SESSION) == b"c"
    async with coord.lock("upload:x", timeout=1):
        pass


STALL_LOCKS = [f"tag:r:t{i}" for i in range(16)]
STALL_LEASE = 10.0


@dataclass
class Stall:
    """A private Redis to stall, a coordinator on it (10 s leases, 300 ms command timeout)
    and a plain client to look at the lock keys."""

    server: RedisProcess
    coord: RedisCoordinator
    raw: Redis
    keys: list[str]

    async def warm(self) -> None:
        """Take and give back every lock at once: the pool then has a connection per lock
        and the scripts are loaded, so in the stall each command goes out on a live one."""

        async def once(name: str) -> None:
            async with self.coord.lock(name, timeout=5):
                await asyncio.sleep(0)

        # A fresh redis-server on a busy machine may miss the 300 ms command timeout on a first
        # connect: try again, a bounded number of times, until every connection is live.
        for _ in range(20):
            results = await asyncio.gather(
                *(once(name) for name in STALL_LOCKS), return_exceptions=True
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if not failed:
                return
            assert all(isinstance(r, CoordinatorUnavailable) for r in failed), failed
        pytest.fail("no live connection to a fresh redis-server within 300 ms, 20 times")

    async def until_free(self, make_coord: MakeCoord) -> None:
        """Every lock key gone before its lease ran out, and every lock then taken at once
        by another coordinator."""
        await self.until_gone()
        other = make_coord(self.server.url())
        for name in STALL_LOCKS:
            async with other.lock(name, timeout=0.5):
                pass

    async def until_gone(self) -> None:
        """Bounded poll until no lock key is left. It fails as soon as a key still there has
        used up half of its lease: only a lock that nobody releases gets that far."""
        while True:
            ttls = [await self.raw.pttl(key) for key in self.keys]
            left = [ttl for ttl in ttls if ttl != -2]
            if not left:
                return
            assert min(left) > STALL_LEASE * 1000 / 2, "a lock is left for its lease to free"
            await asyncio.sleep(0.01)


@pytest.fixture
async def stall(
    start_redis: Callable[..., RedisProcess], make_coord: MakeCoord
) -> AsyncIterator[Stall]:
    server = start_redis()
    coord = make_coord(server.url(), socket_timeout=0.3, lock_ttl=STALL_LEASE)
    raw = Redis.from_url(server.url())
    rig = Stall(server, coord, raw, [f"{coord._prefix}lock:{name}" for name in STALL_LOCKS])
    await rig.warm()
    yield rig
    await raw.aclose()


async def test_releases_that_fail_in_a_stall_free_the_locks_when_redis_resumes(
    stall: Stall, make_coord: MakeCoord
) -> None:
    """16 holders leave their blocks while Redis pauses its clients (`CLIENT PAUSE`, which
    drops the commands of a client that hung up meanwhile): every release times out. When
    Redis answers again the locks are gone at once, not when their lease runs out."""
    leave = asyncio.Event()
    entered = asyncio.Semaphore(0)

    async def hold(name: str) -> None:
        async with stall.coord.lock(name, timeout=5):
            entered.release()
            await leave.wait()

    holders = [asyncio.create_task(hold(name)) for name in STALL_LOCKS]
    for _ in holders:
        await asyncio.wait_for(entered.acquire(), timeout=5)
    assert await stall.raw.exists(*stall.keys) == len(stall.keys)
    await stall.raw.execute_command("CLIENT", "PAUSE", "2000", "ALL")  # type: ignore[no-untyped-call]
    leave.set()
    # Each release fails after socket_timeout; leaving the block does not raise.
    await asyncio.wait_for(asyncio.gather(*holders), timeout=10)
    await stall.until_free(make_coord)


async def test_an_acquire_unanswered_in_a_stall_leaves_no_lock(
    stall: Stall, make_coord: MakeCoord
) -> None:
    """16 requests try to lock while Redis is stopped and give up (503). Redis still runs
    their SETs when it resumes: those locks belong to nobody and must go at once, not when
    their lease runs out."""

    async def try_lock(name: str) -> None:
        with pytest.raises(CoordinatorUnavailable):
            async with stall.coord.lock(name, timeout=5):
                pytest.fail("locked while Redis was stopped")

    with stall.server.paused():
        await asyncio.wait_for(
            asyncio.gather(*(try_lock(name) for name in STALL_LOCKS)), timeout=10
        )
    await stall.until_free(make_coord)


async def test_a_failed_renewal_is_retried_within_the_lease(
    start_redis: Callable[..., RedisProcess],
    make_coord: MakeCoord,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A holder's renewals are refused (its Redis user loses EVALSHA, as if Redis had failed
    them) three times, then allowed again. With a 3 s lease renewed every second, a holder
    that waited a whole interval after each failure would try again only after the lease
    ran out; retrying soon renews it in time and keeps the lock."""
    server = start_redis()
    admin = Redis.from_url(server.url())
    await admin.execute_command("ACL", "SETUSER", "holder", "on", ">pw", "~*", "&*", "+@all")  # type: ignore[no-untyped-call]
    url = server.url().replace("redis://", "redis://holder:pw@")
    coord = make_coord(url, lock_ttl=3.0)
    key = f"{coord._prefix}lock:upload:x"
    try:
        with caplog.at_level(logging.WARNING, logger="registry.coord.redis"):
            async with coord.lock("upload:x"):
                await admin.execute_command("ACL", "SETUSER", "holder", "-evalsha")  # type: ignore[no-untyped-call]
                for _ in range(1000):  # bounded poll: at most 10 s
                    if caplog.text.count("could not renew the lock") >= 3:
                        break
                    await asyncio.sleep(0.01)
                else:
                    pytest.fail("the renewals were not refused")
                await admin.execute_command("ACL", "SETUSER", "holder", "+evalsha")  # type: ignore[no-untyped-call]
                # Renewed again (a fresh lease) before the old one ran out.
                while (ttl := await admin.pttl(key)) <= 2500:
                    assert ttl > 0, "the lease ran out while the lock was held"
                    await asyncio.sleep(0.01)
    finally:
        await admin.aclose()


async def test_a_waiter_gives_up_after_one_lease(make_coord: MakeCoord) -> None:
    """A holder that keeps renewing a 300 ms lease: a waiter allowed 60 s gives up after
    about one lease (then a dead holder's lock would have expired), not after 60 s."""
    worker1, worker2 = make_coord(lock_ttl=0.3), make_coord(lock_ttl=0.3)

    async def wait_for_it() -> None:
        async with worker2.lock("upload:x", timeout=60):
            pytest.fail("got a lock that is held")

    async with worker1.lock("upload:x"):
        with pytest.raises(LockTimeout):
            await asyncio.wait_for(wait_for_it(), timeout=10)


async def test_a_server_that_does_not_answer_times_out(make_coord: MakeCoord) -> None:
    """A port that accepts connections but never replies: unavailable after socket_timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody ever reads or writes
        coord = make_coord(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", socket_timeout=0.3)
        start = time.monotonic()
        with pytest.raises(CoordinatorUnavailable, match="timed out"):
            await coord.ping()
        assert 0.25 <= time.monotonic() - start < 1.5


# --- URLs: password, database, TLS; Sentinel


async def test_password_and_database_in_url(
    start_redis: Callable[..., RedisProcess], make_coord: MakeCoord
) -> None:
    server = start_redis(password="s3cret-Pa55")
    coord = make_coord(server.url(password="s3cret-Pa55", db=3))
    await coord.ping()
    await coord.put_session(SESSION, b"a")
    async with coord.lock("upload:x", timeout=1):
        pass
    key = f"{coord._prefix}session:{SESSION}"
    for db, expected in ((3, 1), (0, 0)):
        raw = Redis.from_url(server.url(password="s3cret-Pa55", db=db))
        try:
            assert await raw.exists(key) == expected, f"database {db}"
        finally:
            await raw.aclose()

    wrong = make_coord(server.url(password="not-it"))
    with pytest.raises(CoordinatorUnavailable, match="rejected the credentials") as info:
        await wrong.ping()
    assert "not-it" not in str(info.value)
    missing = make_coord(server.url())
    with pytest.raises(CoordinatorUnavailable, match="rejected the credentials"):
        await missing.get_session(SESSION)


async def test_rediss_url_with_password(
    start_redis: Callable[..., RedisProcess],
    make_coord: MakeCoord,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tls = make_certificate(tmp_path_factory.mktemp("tls"))
    server = start_redis(password="s3cret-Pa55", tls=tls)
    url = server.url(password="s3cret-Pa55")
    assert url.startswith("rediss://")
    coord = make_coord(url)
    await coord.put_session(SESSION, b"over tls")
    assert await coord.get_session(SESSION) == b"over tls"
    # Plain Redis protocol against the TLS port does not get through.
    plain = make_coord(url.replace("rediss://", "redis://").split("?")[0], socket_timeout=1.0)
    with pytest.raises(CoordinatorUnavailable):
        await plain.ping()


async def test_sentinel_finds_the_master(
    start_redis: Callable[..., RedisProcess], prefix: str
) -> None:
    master = start_redis()
    sentinel = start_redis(sentinel_of=master)
    coord = RedisCoordinator.from_sentinel(
        [("127.0.0.1", sentinel.port)], "mymaster", tuning=Tuning(prefix, socket_timeout=1.0)
    )
    try:
        await coord.ping()
        await coord.put_session(SESSION, b"a")
        async with coord.lock("upload:x", timeout=1):
            pass
        direct = Redis.from_url(master.url())
        try:
            assert await direct.get(f"{prefix}session:{SESSION}") == b"a"
        finally:
            await direct.aclose()
    finally:
        await coord.close()
    missing = RedisCoordinator.from_sentinel(
        [("127.0.0.1", sentinel.port)], "nosuch", tuning=Tuning(prefix, socket_timeout=1.0)
    )
    try:
        with pytest.raises(CoordinatorUnavailable):
            await missing.ping()
    finally:
        await missing.close()


async def test_a_full_redis_is_unavailable_not_an_error(
    start_redis: Callable[..., RedisProcess], make_coord: Callable[..., RedisCoordinator]
) -> None:
    """Under `maxmemory` with `noeviction`, writes fail with OOM: retryable, so 503."""
    import redis.asyncio as aioredis

    server = start_redis()
    admin = aioredis.Redis.from_url(server.url())
    await admin.config_set("maxmemory", "1")
    await admin.config_set("maxmemory-policy", "noeviction")
    await admin.aclose()
    coord = make_coord(url=server.url())
    with pytest.raises(CoordinatorUnavailable, match="refused"):
        await coord.put_session("s1", b"x" * 1000)
