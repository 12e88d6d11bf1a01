"""The purge of expired uploads: their session records and what they left in storage.

An upload nobody touched for the session expiry (`DEFAULT_SESSION_TTL`, seven days since its
last chunk) is over: Redis drops its record, the local coordinator reads it as unknown, and a
client that comes back gets BLOB_UPLOAD_UNKNOWN. What remains is removed here, at start-up and
by garbage collection. This is maintenance, not a request path: it lists `_uploads/`, which
holds one entry per upload in progress (not per blob).

Two kinds of leftovers:
- an expired session whose record the coordinator still keeps (the local coordinator's
  files): the record and the upload's data go;
- upload data under `_uploads/<id>/` without a record (Redis expired it, or a crash came
  between deleting the data and the record): it goes once its newest object is older than the
  expiry. Data is written only after its record exists, so missing records mean an expired or
  ended upload; the age check keeps the purge safe where records live elsewhere (another
  registry sharing the store but not the coordinator).

Each upload is removed under its own lock, after checking again that its record is not live,
so a purge never races with a request on the same upload; an upload whose lock is busy is left
for the next run. The store's own upload state goes too (`StorageDriver.abort`: S3 finds and
aborts the upload's multipart uploads by listing them, so a lost record loses nothing).
S3 uploads that hold only whole parts have no object under `_uploads/<id>/`; once their
record is gone, nothing names them, and a bucket lifecycle rule that aborts incomplete
multipart uploads cleans them up (docs/production.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from registry.coord.base import DEFAULT_SESSION_TTL, Coordinator, LockTimeout
from registry.model import paths
from registry.model.uploads import discard, lock_name, valid_id
from registry.storage.base import StorageDriver

LOCK_TIMEOUT = 1.0  # a busy upload is being used: skip it rather than wait


@dataclass(slots=True)
class Purged:
    """What a purge removed, for its log line."""

    sessions: int = 0  # expired session records (each with whatever data it had)
    orphans: int = 0  # upload data without a record
    bytes: int = 0  # the size of the data removed, as far as storage lists it
    busy: int = 0  # uploads skipped because a request held their lock

    def __str__(self) -> str:
        return (
            f"{self.sessions} expired upload session(s), {self.orphans} upload(s) without a "
            f"session, {self.bytes} bytes; {self.busy} busy upload(s) left for the next run"
        )


async def purge_expired_uploads(
    storage: StorageDriver,
    coord: Coordinator,
    *,
    expiry: float = DEFAULT_SESSION_TTL,
    now: float | None = None,
    dry_run: bool = False,
) -> Purged:
    """Remove expired sessions and idle upload data without a session; see the module.
    `dry_run` counts what would go and removes nothing."""
    before = (time.time() if now is None else now) - expiry
    purged = Purged()
    expired = {i for i in await coord.expired_sessions() if valid_id(i)}
    for upload_id in expired:
        await _purge(storage, coord, upload_id, None, purged, dry_run)
    for upload_id in await storage.list(paths.UPLOADS):
        if valid_id(upload_id) and upload_id not in expired:  # a busy one counts once
            await _purge(storage, coord, upload_id, before, purged, dry_run)
    return purged


async def _purge(
    storage: StorageDriver,
    coord: Coordinator,
    upload_id: str,
    before: float | None,
    purged: Purged,
    dry_run: bool = False,
) -> None:
    """Remove one upload unless its record is live or (with `before`) its data is newer."""
    try:
        async with coord.lock(lock_name(upload_id), timeout=LOCK_TIMEOUT):
            if await coord.get_session(upload_id) is not None:
                return
            size = await _idle_size(storage, upload_id, before)
            if size is None:
                return
            if not dry_run:
                await discard(storage, coord, upload_id, None)
    except LockTimeout:
        purged.busy += 1
        return
    if before is None:
        purged.sessions += 1
    else:
        purged.orphans += 1
    purged.bytes += size


async def _idle_size(storage: StorageDriver, upload_id: str, before: float | None) -> int | None:
    """The size of the upload's objects, or None when one was written after `before`."""
    folder = paths.upload_dir(upload_id)
    total = 0
    for name in await storage.list(folder):
        key = f"{folder}/{name}"
        written = await storage.modified(key)
        if written is None:
            continue  # removed meanwhile
        if before is not None and written > before:
            return None
        total += await storage.size(key) or 0
    return total
