"""The options of `simple-registry gc`, declared once: `spec.gc` of a Configuration and the
flags and variables of the command (docs/gc.md).

`gc` also takes every storage, coordination and manifest option of `serve` (`-datadir`,
`-s3bucket` …, `-redisurl`, `-cfgdir`), so one configuration serves both; those are declared
where `serve` declares them. The seed project's spellings (`-dryrun`, `-delete-untagged`,
`-last-access`) are aliases of the flags here.
"""

from __future__ import annotations

from pydantic import BaseModel

from registry.options import STRICT, Seconds, Text, option

HOUR = 3600.0


class GcSettings(BaseModel):
    """What one garbage collection does; `spec.gc` holds the options a schedule keeps."""

    model_config = STRICT

    grace: Seconds = option(
        HOUR,
        "grace",
        "nothing that was written or vouched for (an upload completed, a `HEAD` answered 200, "
        "a mount) more recently than this is deleted, so that a manifest naming it can still "
        "arrive",
        flag="grace",
        aliases=("last-access",),
        metavar="DURATION",
        ge=0,
        type_doc="seconds or duration",
        unit="s",
        default_doc="1h",
        help="keep anything written or vouched for more recently than this (default 1h)",
    )
    untagged: bool = option(
        False,
        "untagged",
        "also delete manifests that no tag reaches (never a child of a kept index, never a "
        "referrer of a kept manifest)",
        flag="untagged",
        aliases=("delete-untagged",),
        switch=True,
        help="also delete manifests that no tag reaches",
    )
    uploads_older_than: Seconds = option(
        24 * HOUR,
        "uploadsOlderThan",
        "upload data with no live session is removed once it is this old (sessions themselves "
        "expire after seven days without a chunk)",
        flag="uploads-older-than",
        metavar="DURATION",
        ge=0,
        type_doc="seconds or duration",
        unit="s",
        default_doc="24h",
        help="remove upload data without a live session once this old (default 24h)",
    )
    processes: int = option(
        0,
        "processes",
        "processes that sweep the blobs of a filesystem store at once, each taking every Nth "
        "fan-out folder of `blobs/` (one process deletes about as fast as one core allows); "
        "0: one more than the CPUs, at most 4. With S3 or Redis the sweep stays in one "
        "process, whose work is concurrent network round trips",
        flag="processes",
        metavar="N",
        ge=0,
        le=64,
        help="processes sweeping a filesystem store's blobs (default 0: CPUs + 1, at most 4)",
    )
    pushgateway: Text | None = option(
        None,
        "pushgateway",
        "push the run's metrics to this Prometheus Pushgateway (job `registry_gc`)",
        flag="pushgateway",
        metavar="URL",
        help="push the run's metrics to this Pushgateway URL (job registry_gc)",
    )
    dry_run: bool = option(
        False,
        None,
        "delete nothing; report what would be deleted",
        flag="dry-run",
        aliases=("dryrun",),
        switch=True,
    )
    wait: Seconds = option(
        0.0,
        None,
        "when another collection holds the store, wait this long for it instead of exiting 3",
        flag="wait",
        metavar="DURATION",
        ge=0,
        type_doc="seconds or duration",
        unit="s",
        default_doc="0s",
    )
    json_report: bool = option(
        False,
        None,
        "print the report as one JSON object on stdout",
        flag="json",
        switch=True,
    )
    verbose: bool = option(
        False,
        None,
        "one line on stderr per deleted (or, in a dry run, deletable) item",
        flag="v",
        switch=True,
        env=False,
    )
