"""Start-up cleaning: what crashed processes left is removed, what live ones use is kept.

"Live" files and folders are held by this test process exactly as a writer or a running
instance holds them (an flock on an open file); "dead" ones are made the way a killed process
leaves them. Ages are set with os.utime. The last test starts the real server on such leftovers.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from registry import tempfiles
from registry.coord.base import DEFAULT_SESSION_TTL
from registry.coord.local import LocalCoordinator
from registry.observe.exporter import OWNER_LOCK, PREFIX, sweep_metrics_dirs
from registry.storage.base import Incoming
from registry.storage.filesystem import FilesystemDriver
from tests.server import start

pytestmark = pytest.mark.anyio

HOUR = 3600.0
UPLOAD = "0123456789abcdef0123456789abcdef"


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _dead_temp(directory: Path, name: str, data: bytes = b"half a blob") -> Path:
    """A temp file whose writer was killed: nobody holds it, and it is old."""
    path = directory / name
    path.write_bytes(data)
    _age(path, HOUR)
    return path


def _live_temp(directory: Path) -> tuple[int, Path]:
    """A temp file being written (by this process), old as a long upload's would be."""
    fd, name = tempfiles.create(str(directory))
    _age(Path(name), HOUR)
    return fd, Path(name)


def _metrics_dir(parent: Path, name: str, *, held: bool) -> tuple[Path, int | None]:
    path = parent / f"{PREFIX}{name}"
    path.mkdir()
    (path / "counter_4242.db").write_bytes(b"\0" * 16)
    fd = os.open(path / OWNER_LOCK, os.O_RDONLY | os.O_CREAT, 0o600)
    if held:
        fcntl.flock(fd, fcntl.LOCK_SH)
        return path, fd
    os.close(fd)
    return path, None


def test_the_temp_sweep_removes_only_what_no_writer_holds(tmp_path: Path) -> None:
    storage = FilesystemDriver(tmp_path)
    coord = LocalCoordinator(tmp_path / "_coord")
    dead = _dead_temp(tmp_path / "_tmp", "0" * 32)
    dead_session = _dead_temp(tmp_path / "_coord" / "tmp", "1" * 32, b"{}")
    young = tmp_path / "_tmp" / ("2" * 32)  # just created: its writer may not hold it yet
    young.write_bytes(b"")
    fd, live = _live_temp(tmp_path / "_tmp")
    try:
        swept = storage.sweep_temp() + coord.sweep_temp()
        assert (swept.files, swept.bytes) == (2, len(b"half a blob") + len(b"{}"))
        assert not dead.exists() and not dead_session.exists()
        assert live.exists() and young.exists()
    finally:
        os.close(fd)
    _age(young, HOUR)
    assert storage.sweep_temp().files == 2  # the writer let go of `live`; `young` aged


async def test_a_write_in_progress_keeps_its_temp_file(tmp_path: Path) -> None:
    storage = FilesystemDriver(tmp_path)
    halfway, go_on = asyncio.Event(), asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"first half, "
        halfway.set()
        await go_on.wait()  # a client that stalls
        yield b"second half"

    write = asyncio.ensure_future(storage.write_verified("blobs/x", Incoming(body()), lambda: None))
    await asyncio.wait_for(halfway.wait(), timeout=30)
    (temp,) = (tmp_path / "_tmp").iterdir()
    _age(temp, 24 * HOUR)
    assert storage.sweep_temp().files == 0
    go_on.set()
    assert await asyncio.wait_for(write, timeout=30) == len(b"first half, second half")
    assert await storage.read("blobs/x") == b"first half, second half"
    assert list((tmp_path / "_tmp").iterdir()) == []


def test_metrics_folders_of_stopped_instances_are_removed(tmp_path: Path) -> None:
    dead, _ = _metrics_dir(tmp_path, "dead", held=False)
    live, fd = _metrics_dir(tmp_path, "live", held=True)
    older = tmp_path / f"{PREFIX}older"  # an older version's: no lock file, left alone
    older.mkdir()
    assert fd is not None
    try:
        assert sweep_metrics_dirs(tmp_path) == 1
        assert not dead.exists()
        assert (live / "counter_4242.db").exists() and older.exists()
    finally:
        os.close(fd)
    assert sweep_metrics_dirs(tmp_path) == 1
    assert not live.exists()


@pytest.fixture
def held() -> Iterator[list[int]]:
    """Descriptors this test holds locks with, closed at the end."""
    fds: list[int] = []
    yield fds
    for fd in fds:
        os.close(fd)


def _cleaning_line(output: list[str], within: float = 60.0) -> dict[str, object]:
    """The server's start-up cleaning log line (a bounded poll of its output)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for line in list(output):
            if "start-up cleaning" in line:
                record: dict[str, object] = json.loads(line)
                return record
        time.sleep(0.05)
    raise AssertionError("no start-up cleaning line:\n" + "".join(output))


def test_the_server_cleans_leftovers_at_start(tmp_path: Path, held: list[int]) -> None:
    datadir, temp = tmp_path / "data", tmp_path / "tmp"
    (datadir / "_tmp").mkdir(parents=True)
    (datadir / "_coord" / "sessions").mkdir(parents=True)
    (datadir / "_uploads" / UPLOAD).mkdir(parents=True)
    temp.mkdir()
    dead_temp = _dead_temp(datadir / "_tmp", "0" * 32)
    fd, live_temp = _live_temp(datadir / "_tmp")
    held.append(fd)
    dead_metrics, _ = _metrics_dir(temp, "dead", held=False)
    live_metrics, live_fd = _metrics_dir(temp, "live", held=True)
    assert live_fd is not None
    held.append(live_fd)
    record = datadir / "_coord" / "sessions" / UPLOAD
    record.write_text('{"name": "a", "owner": "admin", "started": 0, "offset": 3}')
    (datadir / "_uploads" / UPLOAD / "data").write_bytes(b"abc")
    _age(record, DEFAULT_SESSION_TTL + HOUR)
    _age(datadir / "_uploads" / UPLOAD / "data", DEFAULT_SESSION_TTL + HOUR)

    server = start(datadir, env={"TMPDIR": str(temp)})
    try:
        line = _cleaning_line(server.output)
        running = {p for p in temp.iterdir() if p.name.startswith(PREFIX)}
        assert len(running - {live_metrics}) == 1  # the server's own, kept
    finally:
        server.stop()
    assert line["temp_files"] == 1 and line["temp_bytes"] == len(b"half a blob")
    assert line["metrics_dirs"] == 1
    assert line["expired_sessions"] == 1 and line["upload_bytes"] == 3
    assert not dead_temp.exists() and live_temp.exists()
    assert not dead_metrics.exists() and live_metrics.exists()
    assert not record.exists() and not (datadir / "_uploads" / UPLOAD).exists()


def test_an_expired_upload_answers_blob_upload_unknown(tmp_path: Path) -> None:
    server = start(tmp_path / "data")
    try:
        with server.client() as http:
            r = http.post("/v2/library/app/blobs/uploads/")
            assert r.status_code == 202
            location = r.headers["Location"]
            assert http.patch(location, content=b"abc").status_code == 202
            upload_id = r.headers["Docker-Upload-UUID"]
            _age(tmp_path / "data" / "_coord" / "sessions" / upload_id, DEFAULT_SESSION_TTL + 1)
            for answer in (http.get(location), http.patch(location, content=b"def")):
                assert answer.status_code == 404
                assert answer.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    finally:
        server.stop()
