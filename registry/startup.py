"""Start-up cleaning: what crashed processes left behind, removed once per `serve`.

It runs in a background thread of the serving process while the workers start, so a big store
never delays the "listening on" line, and it is safe with other processes writing: another
`serve` on the same data directory, or this one's workers, which are already answering.
- temp files of interrupted writes (the filesystem driver's `_tmp/`, the local coordinator's
  session temp files), only those no writer holds any more (`registry.tempfiles`);
- metrics directories of instances that have no process left (`registry.observe.exporter`);
- expired upload sessions and their data (`registry.model.purge`, which garbage collection
  runs too).
One log line reports what was removed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

from registry.config.settings import Settings
from registry.coord.local import LocalCoordinator
from registry.model.purge import Purged, purge_expired_uploads
from registry.observe.exporter import sweep_metrics_dirs
from registry.storage.filesystem import FilesystemDriver
from registry.tempfiles import Swept
from registry.wiring import build_backends

log = logging.getLogger("registry.startup")


@dataclass(frozen=True, slots=True)
class Cleaned:
    temp: Swept
    metrics_dirs: int
    uploads: Purged


def clean_in_background(settings: Settings) -> threading.Thread:
    thread = threading.Thread(target=_clean_and_log, args=(settings,), daemon=True)
    thread.name = "start-up cleaning"
    thread.start()
    return thread


def _clean_and_log(settings: Settings) -> None:
    try:
        cleaned = asyncio.run(clean(settings))
    except Exception as exc:  # the registry serves anyway; the next start tries again
        log.warning("start-up cleaning failed: %s", exc)
        return
    log.info(
        "start-up cleaning removed %d temp file(s) (%d bytes), %d metrics folder(s) of "
        "stopped instances, %s",
        cleaned.temp.files,
        cleaned.temp.bytes,
        cleaned.metrics_dirs,
        cleaned.uploads,
        extra={
            "fields": {
                "temp_files": cleaned.temp.files,
                "temp_bytes": cleaned.temp.bytes,
                "metrics_dirs": cleaned.metrics_dirs,
                "expired_sessions": cleaned.uploads.sessions,
                "orphan_uploads": cleaned.uploads.orphans,
                "upload_bytes": cleaned.uploads.bytes,
                "busy_uploads": cleaned.uploads.busy,
            }
        },
    )


async def clean(settings: Settings) -> Cleaned:
    backends = build_backends(settings)
    try:
        temp = Swept()
        if isinstance(backends.storage, FilesystemDriver):
            temp += backends.storage.sweep_temp()
        if isinstance(backends.coord, LocalCoordinator):
            temp += backends.coord.sweep_temp()
        metrics_dirs = sweep_metrics_dirs()
        uploads = await purge_expired_uploads(backends.storage, backends.coord)
    finally:
        await backends.close()
    return Cleaned(temp, metrics_dirs, uploads)
