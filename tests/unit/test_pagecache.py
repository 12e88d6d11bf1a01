"""Page-cache residency (`registry.storage.pagecache`) and the blob reads that rely on it.

A file written in part and extended with `ftruncate` has a cached region (the written pages,
dirty in memory) and a hole (no pages at all): on any filesystem, tmpfs included, the first is
resident and the second is not, without needing root to drop caches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.storage import filesystem, pagecache
from registry.storage.filesystem import READ_CHUNK, FilesystemDriver

MiB = 1024 * 1024
WRITTEN = 2 * READ_CHUNK  # the first two read chunks are written, the rest is a hole
SIZE = 4 * READ_CHUNK


@pytest.fixture
def half_cached(tmp_path: Path) -> Iterator[int]:
    """An open file: WRITTEN bytes of a pattern, then a hole up to SIZE."""
    path = tmp_path / "blobs" / "half"
    path.parent.mkdir()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, _pattern(WRITTEN), 0)
        os.ftruncate(fd, SIZE)
        yield fd
    finally:
        os.close(fd)


def _ways() -> list[str]:
    """mincore always; cachestat too where this kernel has it (Linux 6.5 and later)."""
    calls = pagecache._calls
    if calls is None:
        return ["mincore"]  # test_available_on_linux fails for this case
    with open(os.devnull, "rb") as probe:
        has_cachestat = calls.cachestat(probe.fileno(), 0, 1) is not None
    return ["cachestat", "mincore"] if has_cachestat else ["mincore"]


@pytest.fixture(params=_ways())
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way of asking the kernel that this machine has."""
    calls = pagecache._calls
    assert calls is not None, "page-cache residency is expected to work on Linux"
    monkeypatch.setattr(calls, "cachestat_works", request.param == "cachestat")
    return str(request.param)


def _pattern(size: int) -> bytes:
    block = bytes(range(251)) * (MiB // 251 + 1)
    return (block * (size // len(block) + 1))[:size]


def test_available_on_linux() -> None:
    assert pagecache.available()


def test_written_pages_are_held(half_cached: int, way: str) -> None:
    assert pagecache.holds(half_cached, 0, WRITTEN)
    assert pagecache.holds(half_cached, 0, 1)
    assert pagecache.holds(half_cached, 4095, 2)  # unaligned, across a page boundary
    assert pagecache.holds(half_cached, WRITTEN - 1, 1)


def test_a_hole_is_not_held(half_cached: int, way: str) -> None:
    assert not pagecache.holds(half_cached, WRITTEN, READ_CHUNK)
    assert not pagecache.holds(half_cached, WRITTEN - 1, 2)  # one page in, one out
    assert not pagecache.holds(half_cached, 0, SIZE)


def test_empty_and_negative_ranges_are_not_held(half_cached: int, way: str) -> None:
    assert not pagecache.holds(half_cached, 0, 0)
    assert not pagecache.holds(half_cached, -1, 10)


def test_a_bad_descriptor_is_not_held(tmp_path: Path, way: str) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)  # a directory: neither call accepts it
    try:
        assert not pagecache.holds(fd, 0, 4096)
    finally:
        os.close(fd)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("start", "length"),
    [(0, SIZE), (0, WRITTEN), (WRITTEN - 3, 10), (READ_CHUNK + 5, 2 * READ_CHUNK), (7, 1)],
)
async def test_stream_reads_cached_chunks_inline_and_the_rest_in_a_thread(
    tmp_path: Path,
    half_cached: int,
    monkeypatch: pytest.MonkeyPatch,
    start: int,
    length: int,
) -> None:
    cold: list[int] = []
    read_cold = filesystem._read_cold

    def counting(fd: int, size: int, position: int, following: int) -> bytes:
        cold.append(position)
        return read_cold(fd, size, position, following)

    monkeypatch.setattr(filesystem, "_read_cold", counting)
    driver = FilesystemDriver(tmp_path)
    body = b"".join([chunk async for chunk in driver.stream("blobs/half", start, length)])

    expected = (_pattern(WRITTEN) + bytes(SIZE - WRITTEN))[start : start + length]
    assert body == expected
    assert all(position + READ_CHUNK > WRITTEN for position in cold)  # only chunks in the hole
    reaches_hole = start + length > WRITTEN
    assert bool(cold) == reaches_hole
