"""Vouch records of the local coordinator: a file per digest, changed under its flock(2).

Layout, under the store's folder (`<root>/vouches/<hash of the store>`):

    horizon                 the horizon (text seconds); created complete, by a link, when absent
    generation              the generation (text integer); absent means 0
    records/<xx>/<digest>   JSON {"last", "pinned", "pins", "claim": token or null}, in one
                            of 256 folders (`xx`: two hex digits of the digest's hash)

Every change of a file is a read and a write under an exclusive flock of the file (see
`flocks`). A record is only ever read under that lock too, so it is rewritten in place (a
file created per write would cost more than the rest of a vouch); its decoder ignores what
follows the JSON, so a process that died between writing and truncating leaves a whole
record. The horizon and the generation are read without a lock, every few seconds, so they
are replaced by a new file renamed over them: a reader sees the old or the new content,
never a part. A record that ends up empty (released, pruned, or never written) is removed
while the lock is still held. A claim is valid while the leadership that issued its token
is held (`local_leader.held`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from registry import tempfiles
from registry.coord import flocks, local_leader

T = TypeVar("T")
# A record's lock is held for microseconds; this only bounds a wait gone wrong.
LOCK_TIMEOUT = 30.0
READ_SIZE = 4096
YIELD_EVERY = 100  # records a bulk change handles between turns of the loop
_JSON = json.JSONDecoder()
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


@dataclass(frozen=True, slots=True)
class Record:
    last: float  # the last vouch; 0 when a claim made the record
    pinned: float  # pinned until then
    claim: str | None  # token of the leadership that claimed it
    pins: int = 0  # writes that pinned it and did not unpin yet

    def is_pinned(self, now: float) -> bool:
        return self.pins > 0 and self.pinned > now


class LocalVouches:
    def __init__(self, folder: Path, leaders: Path, tmp: Path) -> None:
        self._records = folder / "records"
        self._records_path = str(self._records)
        self._horizon = str(folder / "horizon")
        self._generation = str(folder / "generation")
        self._leaders = leaders
        self._tmp = str(tmp)
        self._horizon_exists = False
        self._records.mkdir(parents=True, exist_ok=True)

    async def now(self) -> float:
        return time.time()

    async def vouch(self, digests: Sequence[str]) -> list[bool]:
        return await self._vouch(digests, None)

    async def pin(self, digests: Sequence[str], seconds: float) -> list[bool]:
        return await self._vouch(digests, seconds)

    async def unpin(self, digests: Sequence[str]) -> None:
        await self._vouch(digests, None, unpin=True)

    async def _vouch(
        self, digests: Sequence[str], seconds: float | None, *, unpin: bool = False
    ) -> list[bool]:
        self._ensure_horizon()
        valid = _Claims(self._leaders)

        def change(record: Record | None) -> tuple[Record | None, bool]:
            if record is not None and valid(record.claim):
                return record, False
            now = time.time()
            pinned, pins = (0.0, 0) if record is None else (record.pinned, record.pins)
            if record is None or not record.is_pinned(now):
                pins = 0  # every earlier pin ran out
            if seconds is not None:
                pinned, pins = max(pinned, now + seconds), pins + 1
            elif unpin:
                pins = max(pins - 1, 0)
                pinned = pinned if pins else 0.0
            return Record(now, pinned, None, pins), True

        return [await self._change_record(digest, change) for digest in digests]

    async def claim(self, digests: Sequence[str], cutoff: float, token: str) -> list[str]:
        return await self._claim(digests, cutoff, token)

    async def claimable(self, digests: Sequence[str], cutoff: float) -> list[str]:
        return await self._claim(digests, cutoff, None)

    async def _claim(self, digests: Sequence[str], cutoff: float, token: str | None) -> list[str]:
        """Claim for `token`, or (None) only tell what a claim would take."""
        self._ensure_horizon()
        valid = _Claims(self._leaders)
        if token is not None and not valid(token):
            return []  # the leadership is over: a claim would be void anyway

        def change(record: Record | None) -> tuple[Record | None, bool]:
            if record is None:
                # Read now, not once: a prune raises the horizon before it forgets records.
                if self._read_horizon() > cutoff:
                    return None, False
                return (None if token is None else Record(0.0, 0.0, token)), True
            if token is not None and record.claim == token:
                return record, True
            if valid(record.claim) or record.is_pinned(time.time()) or record.last >= cutoff:
                return record, False
            if token is None:
                return record, True
            return Record(record.last, record.pinned, token, record.pins), True

        claimed = await self._change_records(digests, change)
        return [digest for digest, taken in zip(digests, claimed, strict=True) if taken]

    async def release(self, digests: Sequence[str], hold: float = 0.0) -> None:
        """Forget the records, or hold them claimed until `hold` from now (a token
        `@<until>`, valid until then whoever leads)."""
        self._ensure_horizon()
        held = Record(0.0, 0.0, f"@{time.time() + hold!r}") if hold > 0 else None

        def change(record: Record | None) -> tuple[Record | None, bool]:
            return held, True

        if held is None:  # nothing to forget where there is no record
            digests = [d for d in digests if os.path.exists(self._record_path(d))]
        await self._change_records(digests, change)

    async def prune(self, before: float) -> int:
        self._ensure_horizon()
        await self._update(self._horizon, lambda old: (_text(max(float(old), before)), None))
        valid = _Claims(self._leaders)

        def change(record: Record | None) -> tuple[Record | None, bool]:
            if record is None:
                return None, False  # an empty file: remove it, but it was no record
            if record.last >= before or record.is_pinned(time.time()) or valid(record.claim):
                return record, False
            return None, True

        # A record written since `before` is kept without being locked and read: its last
        # vouch may be that recent (keeping one that a claim rewrote is only less pruning).
        paths = await asyncio.to_thread(
            lambda: [path for path in self._record_files() if _unchanged_since(path, before)]
        )
        return sum(await self._update_many(paths, _on_records(change)))

    async def horizon(self) -> float:
        self._ensure_horizon()
        return self._read_horizon()

    async def generation(self) -> int:
        self._ensure_horizon()
        try:
            with open(self._generation, "rb") as file:
                return int(file.read() or 0)
        except FileNotFoundError:
            return 0

    async def advance(self) -> int:
        self._ensure_horizon()

        def change(old: bytes) -> tuple[bytes, int]:
            new = int(old or 0) + 1
            return str(new).encode(), new

        return await self._update(self._generation, change)

    # --- files

    def _ensure_horizon(self) -> None:
        """Create the horizon, as now, unless it exists: created complete (a link to a file
        already written), so a reader never sees it empty."""
        if self._horizon_exists:
            return
        if not os.path.exists(self._horizon):
            fd, tmp = tempfiles.create(self._tmp, 0o600)
            try:
                os.write(fd, _text(time.time()))
                with contextlib.suppress(FileExistsError):  # another was first
                    os.link(tmp, self._horizon)
            finally:
                os.unlink(tmp)
                os.close(fd)
        self._horizon_exists = True

    def _read_horizon(self) -> float:
        with open(self._horizon, "rb") as file:
            return float(file.read())

    def _record_path(self, digest: str) -> str:
        if not _DIGEST.fullmatch(digest) or len(digest) > 255:
            raise ValueError(f"not a digest: {digest!r}")
        fan = hashlib.sha256(digest.encode()).hexdigest()[:2]
        return os.path.join(self._records_path, fan, digest)

    def _record_files(self) -> Iterator[str]:
        """Every record file, one folder's listing at a time (a 256th of them)."""
        root = str(self._records)
        for folder in sorted(os.listdir(root)):
            folder_path = os.path.join(root, folder)
            try:
                names = os.listdir(folder_path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                yield os.path.join(folder_path, name)

    async def _change_record(
        self, digest: str, change: Callable[[Record | None], tuple[Record | None, bool]]
    ) -> bool:
        return await self._update(self._record_path(digest), _on_records(change), in_place=True)

    async def _update(
        self,
        path: str,
        change: Callable[[bytes], tuple[bytes | None, T]],
        *,
        in_place: bool = False,
    ) -> T:
        """Change the file at `path` (created empty if absent) under its lock: `change` maps
        the content to the new one (None: remove the file) and a result, which is returned.
        The new content is written `in_place` or renamed over the file (see the module)."""
        try:
            fd = await flocks.acquire(path, LOCK_TIMEOUT, path)
        except FileNotFoundError:  # a record's folder that does not exist yet
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = await flocks.acquire(path, LOCK_TIMEOUT, path)
        return self._change_locked(fd, path, change, in_place)

    async def _change_records(
        self,
        digests: Sequence[str],
        change: Callable[[Record | None], tuple[Record | None, bool]],
    ) -> list[bool]:
        """`change` of many records, one after the other (see `_update_many`)."""
        return await self._update_many(
            [self._record_path(digest) for digest in digests], _on_records(change)
        )

    async def _update_many(
        self, paths: Sequence[str], change: Callable[[bytes], tuple[bytes | None, T]]
    ) -> list[T]:
        """`_update` (in place) of many records, for the collector's claims, releases and
        prunes: each record whose lock is free at once is changed right away, with no
        coroutine or thread hop per record (a record's lock is held for microseconds); a
        busy one waits as `_update` does. The loop gets a turn every YIELD_EVERY records, so
        the leadership's renewal is never held up. Results come in the order of `paths`."""
        results = []
        for n, path in enumerate(paths, 1):
            fd = _lock_now(path)
            if fd is None:
                results.append(await self._update(path, change, in_place=True))
            else:
                results.append(self._change_locked(fd, path, change, True))
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        return results

    def _change_locked(
        self,
        fd: int,
        path: str,
        change: Callable[[bytes], tuple[bytes | None, T]],
        in_place: bool,
    ) -> T:
        """The body of `_update` once the lock is held on `fd`, which it closes."""
        try:
            old = _read_all(fd)
            new, result = change(old)
            if new is None:
                os.unlink(path)  # while held: see `flocks`
            elif new != old and in_place:
                os.pwrite(fd, new, 0)
                os.ftruncate(fd, len(new))
            elif new != old:
                self._replace(path, new)
            return result
        finally:
            os.close(fd)

    def _replace(self, path: str, content: bytes) -> None:
        fd, tmp = tempfiles.create(self._tmp, 0o600)
        try:
            os.write(fd, content)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            os.close(fd)


class _Claims:
    """Whether a claim's leadership is still held, asked once per token per operation."""

    def __init__(self, leaders: Path) -> None:
        self._leaders = leaders
        self._known: dict[str, bool] = {}

    def __call__(self, token: str | None) -> bool:
        if token is None:
            return False
        if token.startswith("@"):  # held after a release: valid until its time
            return float(token[1:]) > time.time()
        if token not in self._known:
            self._known[token] = local_leader.held(self._leaders, token)
        return self._known[token]


def _on_records(
    change: Callable[[Record | None], tuple[Record | None, T]],
) -> Callable[[bytes], tuple[bytes | None, T]]:
    """`change` of a record, as a change of the file's content."""

    def on_bytes(old: bytes) -> tuple[bytes | None, T]:
        before = _decode(old)
        after, result = change(before)
        if after is None:
            return None, result
        return (old if after == before else _encode(after)), result

    return on_bytes


def _unchanged_since(path: str, moment: float) -> bool:
    """Whether the file at `path` was last written before `moment` (False when it is gone)."""
    try:
        return os.stat(path).st_mtime < moment
    except FileNotFoundError:
        return False


def _lock_now(path: str) -> int | None:
    """The locked descriptor of the record file at `path` (created if absent) when its lock
    is free right now and the file is still linked; None otherwise (then wait as
    `flocks.acquire` does). A record is never replaced, only rewritten in place or removed
    under its lock, so a file that still has a link is the one the path names."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        return None  # no folder yet: `_update` makes it
    if flocks.try_lock(fd, fcntl.LOCK_EX) and os.fstat(fd).st_nlink > 0:
        return fd
    os.close(fd)
    return None


def _read_all(fd: int) -> bytes:
    """The whole content of the file at `fd`, from its start: one read for a record (a few
    dozen bytes), more only for a larger file."""
    chunks = [os.pread(fd, READ_SIZE, 0)]
    while len(chunks[-1]) == READ_SIZE:
        chunks.append(os.pread(fd, READ_SIZE, READ_SIZE * len(chunks)))
    return b"".join(chunks)


def _decode(content: bytes) -> Record | None:
    """None for an empty file (created by a lock, never written) or one that is not a record.
    What follows the JSON is ignored (see the module)."""
    try:
        doc, _ = _JSON.raw_decode(content.decode())
        return Record(float(doc["last"]), float(doc["pinned"]), doc["claim"], int(doc["pins"]))
    except (ValueError, TypeError, KeyError):
        return None


def _encode(record: Record) -> bytes:
    doc = {
        "last": record.last,
        "pinned": record.pinned,
        "pins": record.pins,
        "claim": record.claim,
    }
    return json.dumps(doc).encode()


def _text(seconds: float) -> bytes:
    return repr(seconds).encode()
