"""What only LocalCoordinator does: one lock file per name, exclusive across processes, lock
files that do not pile up, session files that expire by age and are listed for the purge.
The behaviour every coordinator shares is in tests/backends/test_coord_conformance.py.

Other processes are real ones (a subprocess, spawned workers); time is moved by setting a
session file's modification time, never by sleeping.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.coord.base import DEFAULT_SESSION_TTL, LockTimeout
from registry.coord.local import LocalCoordinator

pytestmark = pytest.mark.anyio

SESSION = "0123456789abcdef0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]

_HOLDER = """
import asyncio, sys
from pathlib import Path
from registry.coord.local import LocalCoordinator

async def main():
    async with LocalCoordinator(Path(sys.argv[1])).lock(sys.argv[2]):
        print("held", flush=True)
        sys.stdin.readline()

asyncio.run(main())
"""


def _names_sharing_a_stripe() -> tuple[str, str]:
    """Two upload lock names that the former 4,096 hashed lock files put in one file."""
    seen: dict[int, str] = {}
    for number in itertools.count():
        name = f"upload:{number:032x}"
        stripe = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % 4096
        if stripe in seen:
            return seen[stripe], name
        seen[stripe] = name
    raise AssertionError("unreachable")


async def test_two_names_never_wait_for_each_other(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    first, second = _names_sharing_a_stripe()
    # A stalled upload holding `first` must not block `second`: this fails with LockTimeout
    # where both names lead to the same lock file.
    async with coord.lock(first), coord.lock(second, timeout=2.0):
        pass


async def test_a_lock_excludes_another_process_and_leaves_no_file(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path), "upload:x"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(LockTimeout):
            async with coord.lock("upload:x", timeout=0.2):
                pass
        async with coord.lock("upload:y", timeout=2.0):
            pass  # another name is free meanwhile

        asked: list[bool] = []

        async def wait_for_it() -> None:
            async with coord.lock("upload:x", timeout=60):
                assert asked  # not before the holder was told to let go

        waiter = asyncio.ensure_future(wait_for_it())
        await asyncio.sleep(0)  # the waiter opens the holder's lock file and starts trying
        asked.append(True)
        holder.stdin.write("\n")
        holder.stdin.flush()
        await asyncio.wait_for(waiter, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert os.listdir(tmp_path / "locks") == []


def _count(root: str, rounds: int) -> None:
    asyncio.run(_count_here(Path(root), rounds))


async def _count_here(root: Path, rounds: int) -> None:
    """Two coroutines incrementing a counter file under the lock, read and write apart."""
    coord = LocalCoordinator(root / "coord")
    counter = root / "counter"

    async def increment() -> None:
        for _ in range(rounds):
            async with coord.lock("counter", timeout=60):
                value = int(counter.read_text())
                await asyncio.sleep(0)  # let the other coroutines try while this one holds
                counter.write_text(str(value + 1))

    await asyncio.gather(increment(), increment())


def test_exclusion_holds_while_lock_files_come_and_go(tmp_path: Path) -> None:
    """Holders remove their lock file as they release it; exclusion must survive that."""
    (tmp_path / "counter").write_text("0")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_count, args=(str(tmp_path), 150)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert (tmp_path / "counter").read_text() == str(3 * 2 * 150)
    assert os.listdir(tmp_path / "coord" / "locks") == []


async def test_lock_files_do_not_accumulate(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    for number in range(50):
        async with coord.lock(f"upload:{number}"):
            assert len(os.listdir(tmp_path / "locks")) == 1
    with pytest.raises(RuntimeError):
        async with coord.lock("upload:failing"):
            raise RuntimeError("released on errors too")
    assert os.listdir(tmp_path / "locks") == []


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


async def test_a_session_expires_after_its_ttl_since_the_last_put(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path, session_ttl=60)
    record = tmp_path / "sessions" / SESSION
    await coord.put_session(SESSION, b"{}")
    _age(record, 59)
    assert await coord.get_session(SESSION) == b"{}"
    assert await coord.expired_sessions() == []
    _age(record, 61)
    assert await coord.get_session(SESSION) is None
    assert await coord.expired_sessions() == [SESSION]
    await coord.put_session(SESSION, b"{}")  # a put starts the time again
    assert await coord.get_session(SESSION) == b"{}"
    assert await coord.expired_sessions() == []


async def test_the_default_expiry_is_the_redis_one(tmp_path: Path) -> None:
    from registry.coord import redis

    assert DEFAULT_SESSION_TTL == 7 * 24 * 3600
    assert vars(redis)["DEFAULT_SESSION_TTL"] is DEFAULT_SESSION_TTL  # imported, not exported
    coord = LocalCoordinator(tmp_path)
    await coord.put_session(SESSION, b"{}")
    _age(tmp_path / "sessions" / SESSION, DEFAULT_SESSION_TTL - 60)
    assert await coord.get_session(SESSION) == b"{}"
    _age(tmp_path / "sessions" / SESSION, DEFAULT_SESSION_TTL + 60)
    assert await coord.get_session(SESSION) is None
