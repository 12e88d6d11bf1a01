"""One garbage collection: lead, mark, sweep, report (docs/gc.md).

The cutoff is taken from the coordinator's clock when the mark starts, less the grace window:
anything vouched for after it is kept. Because it is no later than the mark's start, a
manifest that the mark missed (pushed after its repository was read) vouched for everything
it names after the cutoff, and the claims refuse them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import TextIO

from registry.config.gc_options import GcSettings
from registry.coord.base import Coordinator, Leadership
from registry.gc.mark import Marker
from registry.gc.report import Progress, Report
from registry.gc.sweep import Sweeper
from registry.model.registry import Registry

RECORDS_KEPT = 24 * 3600.0  # seconds a vouch record outlives the cutoff (see `_collect`)


def leadership_name(store: str) -> str:
    """One collection at a time per store (registries sharing a Redis keep apart)."""
    return f"gc {store}"


async def collect(
    registry: Registry,
    coord: Coordinator,
    options: GcSettings,
    who: str,
    report: Report,
    out: TextIO = sys.stderr,
    processes: int = 1,
) -> None:
    """Run one collection into `report`, its blob sweep split over `processes` (filesystem
    stores only: see `shards`). LeaderBusy when another one holds the store;
    LeadershipLost, StorageUnavailable or CoordinatorUnavailable stop it part way, with the
    store consistent (see `sweep`)."""
    name = leadership_name(registry.store)
    async with coord.leadership(name, who, wait=options.wait) as leadership:
        await _collect(registry, coord, leadership, options, report, out, processes)


async def _collect(
    registry: Registry,
    coord: Coordinator,
    leadership: Leadership,
    options: GcSettings,
    report: Report,
    out: TextIO,
    processes: int,
) -> None:
    started = time.monotonic()
    cutoff = await registry.vouches.now() - options.grace
    # Forgetting records older than the cutoff changes no claim's outcome (the horizon rises
    # to the prune's time first, and a digest without a record is then claimable exactly
    # when an old record would have been), so it runs beside the mark and the sweep. It
    # forgets only records a day older than that (RECORDS_KEPT): a run then forgets about a
    # day of vouches, not every record of the store, and pays for the churn, not the size.
    forget_before = cutoff - RECORDS_KEPT
    pruning = (
        None if options.dry_run else asyncio.create_task(registry.vouches.prune(forget_before))
    )
    try:
        await _mark_and_sweep(registry, coord, leadership, options, report, out, cutoff, processes)
    except BaseException:
        if pruning is not None:
            pruning.cancel()
            with contextlib.suppress(BaseException):
                await pruning
        raise
    if pruning is not None:
        report.vouches_pruned = await pruning
    report.duration = time.monotonic() - started


async def _mark_and_sweep(
    registry: Registry,
    coord: Coordinator,
    leadership: Leadership,
    options: GcSettings,
    report: Report,
    out: TextIO,
    cutoff: float,
    processes: int,
) -> None:
    marker = Marker(
        registry.storage, registry.lookup, untagged=options.untagged, progress=Progress(out)
    )
    marked = await marker.mark()
    report.repositories = len(marked.repositories)
    report.manifests_marked = marked.manifests
    report.missing_manifests = marked.missing
    report.digests_marked = len(marked.keep)
    sweeper = Sweeper(
        registry.storage,
        coord,
        registry.lookup,
        registry.vouches,
        leadership,
        cutoff=cutoff,
        options=options,
        report=report,
        out=out,
    )
    if options.untagged:
        await sweeper.manifests(marked)
    await sweeper.blobs(marked, processes)
    await sweeper.uploads()
    await sweeper.leftovers()
    await sweeper.repositories()
