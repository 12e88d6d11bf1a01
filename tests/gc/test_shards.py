"""The blob sweep split over processes: each prefix swept once, every process's counts
returned, and a process that failed failing the sweep once all have ended.

These fork this test process, as the collector forks itself; the sweeps are small functions
standing in for `Sweeper._counted_sweep`, whose real runs are in test_collect.py."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from registry.coord.base import LeadershipLost
from registry.gc.shards import Counts, sweep_split, sweepers

pytestmark = pytest.mark.anyio
PREFIXES = [f"blobs/sha256/{n:02x}" for n in range(256)]


async def _by_prefix(prefixes: Sequence[str]) -> Counts:
    """Counts that say which prefixes this process swept, and in which process."""
    return Counts(deleted=len(prefixes), freed=os.getpid(), touched=frozenset(prefixes))


@pytest.mark.parametrize("processes", [2, 3, 4])
async def test_each_prefix_is_swept_once_and_every_count_comes_back(processes: int) -> None:
    counted = await sweep_split(PREFIXES, processes, _by_prefix)
    assert len(counted) == processes
    assert counted[0].freed == os.getpid()  # the first share is this process's own
    assert len({c.freed for c in counted}) == processes  # the others, one process each
    swept = [prefix for counts in counted for prefix in counts.touched]
    assert sorted(swept) == PREFIXES
    assert sum(c.deleted for c in counted) == len(PREFIXES)


async def test_a_lost_leadership_in_another_process_is_raised_as_such() -> None:
    async def losing(prefixes: Sequence[str]) -> Counts:
        if os.getpid() != parent:
            raise LeadershipLost("the leader file was replaced")
        return Counts(deleted=len(prefixes))

    parent = os.getpid()
    with pytest.raises(LeadershipLost, match=r"a sweeping process failed: .*replaced"):
        await sweep_split(PREFIXES, 3, losing)


async def test_any_other_failure_of_another_process_is_named() -> None:
    async def failing(prefixes: Sequence[str]) -> Counts:
        if os.getpid() != parent:
            raise ValueError("broken")
        return Counts()

    parent = os.getpid()
    with pytest.raises(RuntimeError, match="a sweeping process failed: ValueError: broken"):
        await sweep_split(PREFIXES, 2, failing)


async def test_this_processs_failure_waits_for_the_others(tmp_path: Path) -> None:
    """The parent's own error propagates once every child was waited for: waiting for one
    again finds no such child."""

    async def failing_here(prefixes: Sequence[str]) -> Counts:
        if os.getpid() == parent:
            raise LeadershipLost("here")
        (tmp_path / str(os.getpid())).touch()
        return Counts()

    parent = os.getpid()
    with pytest.raises(LeadershipLost, match="here"):
        await sweep_split(PREFIXES, 3, failing_here)
    children = [int(path.name) for path in tmp_path.iterdir()]
    assert len(children) == 2
    for pid in children:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


async def test_a_process_that_dies_without_answering_fails_the_sweep() -> None:
    async def dying(prefixes: Sequence[str]) -> Counts:
        if os.getpid() != parent:
            os._exit(7)  # as a crash would: no answer on the pipe
        return Counts()

    parent = os.getpid()
    with pytest.raises(RuntimeError, match=r"ended without an answer \(exit 7\)"):
        await sweep_split(PREFIXES, 2, dying)


def test_scaled_stores_sweep_in_one_process() -> None:
    assert sweepers(8, scaled=True) == 1
    assert sweepers(0, scaled=True) == 1


def test_a_requested_count_wins_and_zero_is_the_cpus_and_one_more() -> None:
    assert sweepers(3, scaled=False) == 3
    assert sweepers(0, scaled=False) == min((os.cpu_count() or 1) + 1, 4)
