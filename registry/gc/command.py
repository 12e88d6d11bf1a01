"""`simple-registry gc` (and the seed's `garbage-collect`): exit 0 when done (or a dry run
done), 3 when another collection holds the store, 1 when it failed (the store stays
consistent and the next run completes it), 2 for a usage error (raised as ConfigError to
the CLI, like every command's)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence

from registry.config.flags import parse_gc
from registry.config.gc_options import GcSettings
from registry.config.settings import ConfigError
from registry.coord.base import CoordinatorUnavailable, LeaderBusy, LeadershipLost
from registry.gc.report import Report
from registry.gc.run import collect
from registry.gc.shards import sweepers
from registry.storage.base import StorageUnavailable
from registry.wiring import Backends, build_backends

DONE, FAILED, BUSY = 0, 1, 3
PROG = "simple-registry"


def gc_main(argv: Sequence[str], command: str = "gc") -> int:
    settings, options = parse_gc(argv, prog=f"{PROG} {command}")
    if (settings.s3 is None or settings.redis is None) and not settings.datadir.is_dir():
        # A mistyped path would otherwise be made, and "collected", as an empty store.
        raise ConfigError(f"no data directory {settings.datadir}: gc collects an existing store")
    logging.basicConfig(level=logging.WARNING, format=f"{PROG} gc: %(message)s")
    backends = build_backends(settings)
    report = Report(dry_run=options.dry_run)
    scaled = settings.s3 is not None or settings.redis is not None
    processes = sweepers(options.processes, scaled)
    status = asyncio.run(_run(backends, options, report, processes))
    report.duration = report.duration or time.time() - report.started
    if status != BUSY:
        print(report.summary(), file=sys.stderr)
    if options.json_report:
        print(report.to_json())
    if options.pushgateway is not None:
        _push(report, options, backends.registry.store)
    return status


async def _run(backends: Backends, options: GcSettings, report: Report, processes: int) -> int:
    who = f"{socket.gethostname()} pid {os.getpid()}"
    try:
        await collect(backends.registry, backends.coord, options, who, report, processes=processes)
    except LeaderBusy as exc:
        report.outcome, report.error = "busy", _busy(exc)
        print(f"{PROG} gc: {report.error}", file=sys.stderr)
        return BUSY
    except (LeadershipLost, StorageUnavailable, CoordinatorUnavailable) as exc:
        return _failed(report, str(exc) or type(exc).__name__)
    except Exception as exc:  # a bug: said in one line, with the trace for the log
        logging.getLogger("registry.gc").exception("garbage collection failed")
        return _failed(report, f"{type(exc).__name__}: {exc}")
    finally:
        await backends.close()
    report.outcome = "done"
    return DONE


def _failed(report: Report, why: str) -> int:
    report.outcome, report.error = "failed", why
    print(f"{PROG} gc: failed, nothing is left half-deleted (run it again): {why}", file=sys.stderr)
    return FAILED


def _busy(exc: LeaderBusy) -> str:
    holder = exc.holder
    if holder is None:
        return "another garbage collection holds this store"
    since = datetime.datetime.fromtimestamp(holder.since, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M:%SZ"
    )
    return f"another garbage collection holds this store: {holder.who}, since {since}"


def _push(report: Report, options: GcSettings, store: str) -> None:
    assert options.pushgateway is not None
    try:
        report.push(options.pushgateway, store)
    except OSError as exc:
        print(f"{PROG} gc: could not push metrics to {options.pushgateway}: {exc}", file=sys.stderr)
