"""The garbage collector's part of the `Coordinator` contract (vouches, leaderships, session
ids, dropping a repository from the index), run on every implementation with the `coords` and
`index` fixtures of conftest.py, as test_coord_conformance.py does for the rest.

Time passes without sleeping: a cutoff after `now()` makes every vouch "old", one before it
makes them "fresh". A leader dies for real: the local one is a subprocess that is killed
(the kernel drops its lock at once); the Redis one stops renewing a short lease, which Redis
then expires. Waits are bounded polls of state or `asyncio.wait` with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from registry.coord.base import Index, LeaderBusy, Leadership, LeadershipLost, Vouches
from registry.coord.local import LocalCoordinator
from registry.coord.redis import RedisCoordinator
from tests.backends.conftest import STORE, TTL, Coords

pytestmark = pytest.mark.anyio

A, B, C, D = (f"sha256:{c * 64}" for c in "abcd")
HOUR = 3600.0
ROOT = Path(__file__).resolve().parents[2]

# A leader in another process: prints its token, then holds until killed.
_LEADER = """
import asyncio, sys
from pathlib import Path
from registry.coord.local import LocalCoordinator

async def main():
    async with LocalCoordinator(Path(sys.argv[1])).leadership(sys.argv[2], "child") as lead:
        print(lead.token, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def _python(script: str, *args: str) -> asyncio.subprocess.Process:
    """Another process running `script` with this checkout's `registry`, talking by pipes."""
    pipe = asyncio.subprocess.PIPE
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args, cwd=ROOT, stdin=pipe, stdout=pipe
    )


async def _poll(condition: Callable[[], object], what: str, within: float = 5.0) -> None:
    """Bounded poll, every 10 ms, until `condition()` is true (awaited if it is a coroutine)."""
    deadline = time.monotonic() + within
    while True:
        found = condition()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


# --- vouch, pin, claim, release


async def test_pinned_and_fresh_are_not_claimed_old_ones_are(coords: Coords) -> None:
    worker, collector = coords.make(), coords.make()
    v, gc = worker.vouches(STORE), collector.vouches(STORE)
    assert await v.vouch([A]) == [True]
    assert await v.pin([B], HOUR) == [True]
    now = await gc.now()
    async with collector.leadership("gc", "test") as lead:
        assert await gc.claim([A, B], now - 100, lead.token) == []  # A's vouch is fresh
        assert await gc.claim([A, B], now + 1, lead.token) == [A]  # B is pinned
        assert await gc.claim([A], now + 1, lead.token) == [A]  # again: the same claim
        # Claimed: the registry treats it as gone; a pin neither protects nor extends it.
        assert await v.vouch([A, B]) == [False, True]
        assert await v.pin([A], HOUR) == [False]
        assert await gc.claim([A, B], now + 1, lead.token) == [A]  # still ours, B still pinned
        await gc.release([A])
        assert await v.vouch([A]) == [True]  # a new record, fresh
        assert await gc.claim([A], now - 100, lead.token) == []


async def test_pins_are_counted_and_unpinning_frees_at_once(coords: Coords) -> None:
    """Two writes pin one digest: the first to finish leaves it pinned by the other; once
    both are done, only the grace window (the vouch) holds it, not the pins' time."""
    worker, collector = coords.make(), coords.make()
    v, gc = worker.vouches(STORE), collector.vouches(STORE)
    assert await v.pin([A, B], HOUR) == [True, True]
    assert await v.pin([A], HOUR) == [True]
    await v.unpin([A, B])
    cutoff = await gc.now() + 1
    async with collector.leadership("gc", "test") as lead:
        assert await gc.claimable([A, B], cutoff) == [B]
        assert await gc.claim([A, B], cutoff, lead.token) == [B]  # A: one pin left
        await v.unpin([A])
        assert await gc.claim([A], cutoff, lead.token) == [A]
        await v.unpin([A])  # an unpin of a claimed digest changes nothing
        assert await v.vouch([A]) == [False]


async def test_a_pin_after_every_pin_ran_out_counts_afresh(coords: Coords) -> None:
    """A writer that died never unpins: its pin runs out at its time, and the next writer's
    pin and unpin free the digest again instead of adding to a stale count."""
    worker, collector = coords.make(), coords.make()
    v, gc = worker.vouches(STORE), collector.vouches(STORE)
    assert await v.pin([A], 0.001) == [True]  # a writer that dies: it runs out at once
    ran_out = await gc.now() + 0.01
    await _poll(lambda: _is_after(gc, ran_out), "the pin to run out")
    assert await v.pin([A], HOUR) == [True]
    await v.unpin([A])
    async with collector.leadership("gc", "test") as lead:
        assert await gc.claim([A], await gc.now() + 1, lead.token) == [A]


async def _is_after(vouches: Vouches, moment: float) -> bool:
    return await vouches.now() > moment


async def test_a_held_release_outlives_the_leadership_then_runs_out(coords: Coords) -> None:
    worker, collector = coords.make(), coords.make()
    v, gc = worker.vouches(STORE), collector.vouches(STORE)
    await v.vouch([A, B])
    async with collector.leadership("gc", "test") as lead:
        assert await gc.claim([A, B], await gc.now() + 1, lead.token) == [A, B]
        await gc.release([A], hold=0.5)
        await gc.release([B], hold=HOUR)
    assert await v.vouch([A, B]) == [False, False]  # held, though the collector is gone
    assert await v.pin([B], HOUR) == [False]
    ran_out = await gc.now() + 0.5
    await _poll(lambda: _is_after(gc, ran_out), "the hold to run out")
    assert await v.vouch([A, B]) == [True, False]
    await gc.release([B])
    assert await v.vouch([B]) == [True]


async def test_claimable_tells_without_claiming(coords: Coords) -> None:
    worker, collector = coords.make(), coords.make()
    v, gc = worker.vouches(STORE), collector.vouches(STORE)
    await v.vouch([A, B])
    await v.pin([B], HOUR)
    cutoff = await gc.now() + 1
    assert await gc.claimable([A, B, C], cutoff) == [A, C]  # C: no record, horizon long past
    assert await v.vouch([A]) == [True]  # nothing was claimed
    async with collector.leadership("gc", "test") as lead:
        assert await gc.claim([A], cutoff, lead.token) == [A]
        assert await gc.claimable([A], cutoff) == []  # claimed by a live leadership


async def test_another_leaders_claim_holds(coords: Coords) -> None:
    first, second = coords.make(), coords.make()
    v1, v2 = first.vouches(STORE), second.vouches(STORE)
    await v1.vouch([A, B])
    cutoff = await v1.now() + 1
    async with first.leadership("gc-1", "one") as one, second.leadership("gc-2", "two") as two:
        assert one.token != two.token
        assert await v1.claim([A], cutoff, one.token) == [A]
        assert await v2.claim([A, B], cutoff, two.token) == [B]


async def test_a_claim_is_void_once_its_leadership_ended(coords: Coords) -> None:
    worker, collector = coords.make(), coords.make()
    v, gc = worker.vouches(STORE), collector.vouches(STORE)
    await v.vouch([A])
    cutoff = await v.now() + 1
    async with collector.leadership("gc", "test") as lead:
        assert await gc.claim([A], cutoff, lead.token) == [A]
        assert await v.vouch([A]) == [False]
    assert await gc.claim([A], cutoff, lead.token) == []  # a token that no longer leads
    assert await v.vouch([A]) == [True]  # and its old claim counts as absent
    async with collector.leadership("gc", "next") as lead:
        assert await gc.claim([A], await v.now() + 1, lead.token) == [A]


@contextlib.asynccontextmanager
async def _mortal_leader(
    coords: Coords, make_coord: Callable[..., RedisCoordinator], raw: Redis, prefix: str
) -> AsyncIterator[tuple[str, Callable[[], Awaitable[None]]]]:
    """A leader of "gc" that can die: (its token, a coroutine function that kills it and
    returns once its death shows)."""
    if coords.root is not None:
        async with _leader_process(coords.root) as leader:
            yield leader
        return
    holder = make_coord(lock_ttl=1.0, session_ttl=TTL)
    holder._renew_every = HOUR  # it stops renewing: as good as dead once the lease ran out

    async def expired() -> None:
        await _poll(lambda: _gone(raw, f"{prefix}leader:gc"), "the lease did not run out")

    async with holder.leadership("gc", "mortal") as lead:
        yield lead.token, expired


async def _gone(raw: Redis, key: str) -> bool:
    return not await raw.exists(key)


@contextlib.asynccontextmanager
async def _leader_process(root: Path) -> AsyncIterator[tuple[str, Callable[[], Awaitable[None]]]]:
    proc = await _python(_LEADER, str(root), "gc")
    try:
        assert proc.stdout is not None
        token = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode().strip()
        assert token, "the leader process did not start"

        async def kill() -> None:
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), timeout=10)

        yield token, kill
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_claim_is_void_once_its_holder_died(
    coords: Coords, make_coord: Callable[..., RedisCoordinator], raw: Redis, prefix: str
) -> None:
    worker = coords.make()
    v = worker.vouches(STORE)
    await v.vouch([A, B])
    cutoff = await v.now() + 1
    async with _mortal_leader(coords, make_coord, raw, prefix) as (token, kill):
        assert await v.claim([A], cutoff, token) == [A]
        assert await v.vouch([A, B]) == [False, True]
        with pytest.raises(LeaderBusy):
            async with worker.leadership("gc", "successor"):
                pytest.fail("led while the first leader lived")
        await kill()
        assert await v.vouch([A]) == [True]
        async with worker.leadership("gc", "successor") as lead:
            assert await v.claim([A], await v.now() + 1, lead.token) == [A]


# --- horizon, prune, generation


async def test_a_fresh_store_protects_digests_without_a_record(coords: Coords) -> None:
    coord = coords.make()
    v = coord.vouches(STORE)
    before = await v.now()
    horizon = await v.horizon()  # set by this first use of the store's records
    assert before - 1 <= horizon <= await v.now()
    assert await coords.make().vouches(STORE).horizon() == horizon  # and kept
    async with coord.leadership("gc", "test") as lead:
        assert await v.claim([D], horizon - 1, lead.token) == []
        assert await v.claim([D], horizon, lead.token) == [D]
        assert await v.vouch([D]) == [False]


async def test_the_first_use_of_any_kind_sets_the_horizon(coords: Coords) -> None:
    v = coords.make().vouches(STORE)
    await v.generation()  # a serve process's first look
    after = await v.now()
    assert await coords.make().vouches(STORE).horizon() <= after


async def test_prune_forgets_old_records_only_and_raises_the_horizon(coords: Coords) -> None:
    worker, collector = coords.make(), coords.make()
    v, gc = worker.vouches(STORE), collector.vouches(STORE)
    old, pinned, claimed, fresh = A, B, C, D
    async with collector.leadership("gc", "test") as lead:
        await v.vouch([old, claimed])
        await v.pin([pinned], HOUR)
        assert await gc.claim([claimed], await gc.now() + 1, lead.token) == [claimed]
        before = await gc.now()
        await v.vouch([fresh])  # after `before`
        assert await gc.prune(before) == 1
        assert await gc.horizon() >= before
        # `old` has no record now: what the horizon says goes, and it says "too recent".
        assert await gc.claim([old], before - 1, lead.token) == []
        assert await gc.claim([old], before, lead.token) == [old]
        assert await gc.claim([fresh], before, lead.token) == []  # its record is kept
        assert await gc.claim([pinned], before + 1, lead.token) == []  # still pinned
        assert await v.vouch([claimed]) == [False]  # still claimed
        assert await gc.prune(before) == 0  # none of those goes
    # The claims are void now: all but the pinned one go.
    assert await gc.prune(await gc.now() + 1) == 3
    assert await v.vouch([claimed]) == [True]


async def test_the_generation_advances_for_every_worker(coords: Coords) -> None:
    reader, collector = coords.make().vouches(STORE), coords.make().vouches(STORE)
    first = await reader.generation()
    advanced = await collector.advance()
    assert advanced != first
    assert await reader.generation() == advanced
    assert await collector.advance() > advanced
    assert await coords.make().vouches("file:///another").generation() != advanced


async def test_stores_keep_apart(coords: Coords) -> None:
    coord = coords.make()
    one, other = coord.vouches(STORE), coord.vouches("file:///another")
    await one.vouch([A])
    async with coord.leadership("gc", "test") as lead:
        assert await one.claim([A], await one.now() + 1, lead.token) == [A]
        assert await other.vouch([A]) == [True]


# --- leaderships


async def test_a_busy_leadership_says_who_holds_it(coords: Coords) -> None:
    first, second = coords.make(), coords.make()
    clock = first.vouches(STORE)
    start = await clock.now()
    async with first.leadership("gc", "host-a pid 1"):
        with pytest.raises(LeaderBusy) as busy:
            async with second.leadership("gc", "host-b pid 2"):
                pytest.fail("two leaders at once")
        assert busy.value.name == "gc"
        assert busy.value.holder is not None
        assert busy.value.holder.who == "host-a pid 1"
        assert start - 1 <= busy.value.holder.since <= await clock.now() + 1
        async with second.leadership("gc-other-store", "host-b pid 2"):
            pass  # other names are independent
    async with second.leadership("gc", "host-b pid 2") as lead:
        lead.check()


async def test_a_waiting_leader_leads_once_the_first_is_done(coords: Coords) -> None:
    first, second = coords.make(), coords.make()
    events: list[str] = []

    async def successor() -> None:
        async with second.leadership("gc", "second", wait=30) as lead:
            lead.check()
            events.append("2 in")

    async with first.leadership("gc", "first"):
        events.append("1 in")
        waiter = asyncio.create_task(successor())
        done, _ = await asyncio.wait({waiter}, timeout=0.3)
        assert not done, "the second leader did not wait"
        start = time.monotonic()
        with pytest.raises(LeaderBusy):
            async with second.leadership("gc", "third", wait=0.2):
                pytest.fail("two leaders at once")
        assert 0.2 <= time.monotonic() - start < 5
        events.append("1 out")
    await asyncio.wait_for(waiter, timeout=10)
    assert events == ["1 in", "1 out", "2 in"]


async def test_redis_check_fails_once_the_lease_is_lost(
    make_coord: Callable[..., RedisCoordinator], raw: Redis, prefix: str
) -> None:
    """Deleted or taken behind the holder's back: a renewal finds out, and `check` says so."""
    coord = make_coord(lock_ttl=1.5)  # renewed every 0.5 s, trusted for 0.75 s
    key = f"{prefix}leader:gc"
    sabotages: list[Callable[[], Awaitable[object]]] = [
        lambda: raw.delete(key),
        lambda: raw.set(key, b'{"token": "x", "who": "y", "since": 0}'),
    ]
    for sabotage in sabotages:
        async with coord.leadership("gc", "test") as lead:
            lead.check()
            await sabotage()
            await _poll(functools.partial(_lost, lead), "check() kept trusting a lost lease")
            with pytest.raises(LeadershipLost, match="gone or taken"):  # not just too old
                lead.check()


async def test_redis_confirm_asks_redis_at_once(
    make_coord: Callable[..., RedisCoordinator], raw: Redis, prefix: str
) -> None:
    """A lease lost behind the renewer's back (a failover to a replica without it) stops the
    holder at its next confirm, not a renewal later."""
    coord = make_coord()  # the default lease: renewals are seconds apart
    key = f"{prefix}leader:gc"
    async with coord.leadership("gc", "test") as lead:
        await lead.confirm()
        await raw.delete(key)
        lead.check()  # the renewer has not noticed yet
        with pytest.raises(LeadershipLost, match="gone or taken"):
            await lead.confirm()
        with pytest.raises(LeadershipLost):  # and from then on
            lead.check()


async def test_redis_check_fails_once_renewals_stop(
    make_coord: Callable[..., RedisCoordinator],
) -> None:
    """A holder whose renewals stopped (a long pause) stops trusting its lease after half of
    it, before it runs out."""
    coord = make_coord(lock_ttl=0.6)
    coord._renew_every = HOUR
    async with coord.leadership("gc", "test") as lead:
        start = time.monotonic()
        lead.check()
        await _poll(lambda: _lost(lead), "check() kept trusting a lease nobody renewed")
        assert time.monotonic() - start < 0.6


async def test_redis_check_passes_while_renewed(
    make_coord: Callable[..., RedisCoordinator],
) -> None:
    coord = make_coord(lock_ttl=1.5)
    async with coord.leadership("gc", "test") as lead:
        deadline = time.monotonic() + 2.0  # longer than the lease: renewals keep it
        while time.monotonic() < deadline:
            lead.check()
            await asyncio.sleep(0.05)


async def test_local_check_fails_when_the_leader_file_is_gone(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    async with coord.leadership("gc", "test") as lead:
        lead.check()
        for path in (tmp_path / "leaders").iterdir():
            path.unlink()
        with pytest.raises(LeadershipLost):
            lead.check()


def _lost(lead: Leadership) -> bool:
    try:
        lead.check()
    except LeadershipLost:
        return True
    return False


# --- sessions, the index


async def test_session_ids_are_the_live_sessions(coords: Coords) -> None:
    worker, collector = coords.make(), coords.make()
    live, expired = "a" * 32, "b" * 32
    assert await collector.session_ids() == []
    await worker.put_session(live, b"{}")
    await worker.put_session(expired, b"{}")
    assert sorted(await collector.session_ids()) == [live, expired]
    await coords.expire(expired)
    assert await collector.session_ids() == [live]
    await worker.delete_session(live)
    assert await collector.session_ids() == []


async def test_redis_session_ids_take_the_prefix_literally(
    make_coord: Callable[..., RedisCoordinator], prefix: str
) -> None:
    """A prefix with glob characters lists its own sessions, not those of a prefix the
    characters would match as a pattern."""
    star, other = make_coord(prefix=f"{prefix}*[ab]?:"), make_coord(prefix=f"{prefix}xa!:")
    await star.put_session("a" * 32, b"{}")
    await other.put_session("b" * 32, b"{}")
    assert await star.session_ids() == ["a" * 32]
    assert await other.session_ids() == ["b" * 32]


async def test_drop_repository_only_when_empty(index: Callable[[], Index]) -> None:
    writer, collector = index(), index()
    await writer.replace_repository("tagged", {"v1": b"r"}, frozenset())
    await writer.replace_repository("linked", {}, frozenset({A}))
    await writer.replace_repository("empty", {}, frozenset())
    await writer.take_dirty()
    assert await writer.mark_ready()
    assert await collector.drop_repository("tagged") is False
    assert await collector.drop_repository("linked") is False
    assert await collector.drop_repository("empty") is True
    assert await writer.repositories(None, 10) == ["linked", "tagged"]
    await writer.delete_link("linked", A)
    assert await collector.drop_repository("linked") is True
    assert await writer.tags("linked") is None
    assert await writer.repositories(None, 10) == ["tagged"]
    assert await writer.take_dirty() == []  # ready: nothing marked


async def test_a_drop_while_not_ready_marks_the_repository_dirty(
    index: Callable[[], Index],
) -> None:
    writer = index()
    await writer.add_repository("gone")
    assert await writer.take_dirty() == ["gone"]
    assert await writer.drop_repository("gone") is True
    assert await writer.take_dirty() == ["gone"]


# --- races


async def test_a_claim_and_concurrent_pins_never_both_win(coords: Coords) -> None:
    """Workers pin and vouch 60 digests at random moments while the collector claims them
    all, in rounds, with a cutoff after every vouch. Each digest ends up either claimed, and
    then no pin of it ever succeeded and no vouch after the claim did, or pinned, and then
    never claimed."""
    digests = [f"sha256:{i:064x}" for i in range(60)]
    workers = [coords.make().vouches(STORE) for _ in range(4)]
    collector = coords.make()
    gc = collector.vouches(STORE)
    await workers[0].vouch(digests)  # every digest has an old record
    pinned: set[str] = set()
    claimed_at: dict[str, float] = {}
    vouched_at: dict[str, list[float]] = {d: [] for d in digests}  # starts of vouches that won
    rng = random.Random(7)

    async def work(v: Vouches, mine: list[str]) -> None:
        for digest in mine:
            await asyncio.sleep(rng.random() * 0.002)
            started = time.monotonic()
            if (await v.vouch([digest]))[0]:
                vouched_at[digest].append(started)
            if (await v.pin([digest], HOUR))[0]:
                pinned.add(digest)
            started = time.monotonic()
            if (await v.vouch([digest]))[0]:
                vouched_at[digest].append(started)

    async def collect(lead: Leadership) -> None:
        cutoff = await gc.now() + HOUR  # every vouch is "old": only pins protect
        for _ in range(20):
            batch = rng.sample(digests, 20)
            for digest in await gc.claim(batch, cutoff, lead.token):
                claimed_at.setdefault(digest, time.monotonic())
            await asyncio.sleep(rng.random() * 0.002)

    async with collector.leadership("gc", "test") as lead:
        tasks = [work(v, rng.sample(digests, len(digests))) for v in workers]
        await asyncio.wait_for(asyncio.gather(collect(lead), *tasks), timeout=60)
        for digest in digests:
            assert (digest in claimed_at) != (digest in pinned), digest
            if digest in claimed_at:
                late = [t for t in vouched_at[digest] if t > claimed_at[digest]]
                assert not late, f"{digest} was vouched for after it was claimed"
        assert claimed_at and pinned, "the race did not mix (change the seed)"
        later = await workers[1].vouch(list(claimed_at))
        assert not any(later)
        await gc.release(list(claimed_at))
        assert all(await workers[2].vouch(list(claimed_at)))


async def test_prune_goes_through_many_records(coords: Coords) -> None:
    """More records than one scan step takes (Redis pages through the hash)."""
    v = coords.make().vouches(STORE)
    many = [f"sha256:{i:064x}" for i in range(1200)]
    await v.vouch(many)
    await v.pin(many[:7], HOUR)
    assert await v.prune(await v.now() + 1) == len(many) - 7
    assert await v.prune(await v.now() + 1) == 0


# Reads digests (a line), says "ready", waits for "go", then pins every digest in a random
# order and prints those it pinned.
_PINNER = """
import asyncio, random, sys
from pathlib import Path
from registry.coord.local import LocalCoordinator

async def main():
    vouches = LocalCoordinator(Path(sys.argv[1])).vouches(sys.argv[2])
    digests = sys.stdin.readline().split()
    random.shuffle(digests)
    print("ready", flush=True)
    sys.stdin.readline()
    for digest in digests:
        if (await vouches.pin([digest], 3600))[0]:
            print(digest, flush=True)

asyncio.run(main())
"""


async def test_local_claims_and_pins_from_other_processes_never_both_win(
    tmp_path: Path,
) -> None:
    """Like the race above, with the pins in three other processes, so that the file locks,
    not the event loop, keep each record's changes apart."""
    root = tmp_path / "coord"
    coord = LocalCoordinator(root)
    v = coord.vouches(STORE)
    digests = [f"sha256:{i:064x}" for i in range(300)]
    await v.vouch(digests)
    rng = random.Random(7)
    claimed: set[str] = set()
    async with coord.leadership("gc", "test") as lead:
        cutoff = await v.now() + HOUR
        procs = [await _python(_PINNER, str(root), STORE) for _ in range(3)]
        for proc in procs:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(" ".join(digests).encode() + b"\n")
            ready = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert ready == b"ready\n"
        outputs = [asyncio.create_task(proc.communicate(b"go\n")) for proc in procs]
        deadline = time.monotonic() + 60
        while not all(task.done() for task in outputs):
            assert time.monotonic() < deadline, "the pinning processes did not finish"
            claimed.update(await v.claim(rng.sample(digests, 30), cutoff, lead.token))
            await asyncio.sleep(0)
        pinned = {line for task in outputs for line in task.result()[0].decode().split()}
        assert all(proc.returncode == 0 for proc in procs)
        assert claimed | pinned == set(digests)
        assert not claimed & pinned, "claimed and pinned both"
        assert claimed and pinned, "the race did not mix (change the seed)"
