"""One garbage collection: lead, mark, sweep, report (docs/gc.md).

The cutoff is taken from the coordinator's clock when the mark starts, less the grace window:
anything vouched for after it is kept. Because it is no later than the mark's start, a
manifest that the mark missed (pushed after its repository was read) vouched for everything
it names after the cutoff, and the claims refuse them.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from registry.config.gc_options import GcSettings
from registry.coord.base import Coordinator, Leadership
from registry.gc.mark import Marker
from registry.gc.report import Progress, Report
from registry.gc.sweep import Sweeper
from registry.model.registry import Registry


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
) -> None:
    """Run one collection into `report`. LeaderBusy when another one holds the store;
    LeadershipLost, StorageUnavailable or CoordinatorUnavailable stop it part way, with the
    store consistent (see `sweep`)."""
    name = leadership_name(registry.store)
    async with coord.leadership(name, who, wait=options.wait) as leadership:
        await _collect(registry, coord, leadership, options, report, out)


async def _collect(
    registry: Registry,
    coord: Coordinator,
    leadership: Leadership,
    options: GcSettings,
    report: Report,
    out: TextIO,
) -> None:
    started = time.monotonic()
    cutoff = await registry.vouches.now() - options.grace
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
    await sweeper.blobs(marked)
    await sweeper.uploads()
    await sweeper.leftovers()
    await sweeper.repositories()
    if not options.dry_run:
        leadership.check()
        report.vouches_pruned = await registry.vouches.prune(cutoff)
    report.duration = time.monotonic() - started
