"""What a collection did: counted as it goes, told as a human summary on stderr, as one JSON
object on stdout (`-json`), one line per item (`-v`), and as metrics pushed to a Prometheus
Pushgateway (`-pushgateway`, job `registry_gc`)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

JOB = "registry_gc"
PROGRESS_EVERY = 5.0  # seconds between progress lines while marking


@dataclass(slots=True)
class Counted:
    """Items of one kind: how many were deleted (or would be, in a dry run) and their bytes."""

    deleted: int = 0
    bytes: int = 0
    kept_recent: int = 0  # unreferenced, but written or vouched for within the grace window


@dataclass(slots=True)
class Report:
    dry_run: bool
    started: float = field(default_factory=time.time)
    duration: float = 0.0
    outcome: str = "running"  # done | busy | failed
    error: str | None = None
    repositories: int = 0
    manifests_marked: int = 0
    digests_marked: int = 0
    missing_manifests: int = 0  # revisions whose content was already gone
    blobs: Counted = field(default_factory=Counted)
    manifests: Counted = field(default_factory=Counted)
    links: int = 0  # repository links of deleted blobs
    empty_repositories: int = 0
    upload_sessions: int = 0  # expired sessions, with their data
    upload_orphans: int = 0  # upload data without a session
    upload_bytes: int = 0
    unnamed_objects: int = 0  # S3 data objects that no blob named
    abandoned_multipart: int = 0  # S3 multipart uploads of no live upload
    leftover_bytes: int = 0
    vouches_pruned: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def freed(self) -> int:
        return self.blobs.bytes + self.manifests.bytes + self.upload_bytes + self.leftover_bytes

    def summary(self) -> str:
        """The closing lines for a person: what was marked, deleted (or deletable), freed."""
        verb = "would delete" if self.dry_run else "deleted"
        lines = [
            f"marked {self.digests_marked} digests from {self.manifests_marked} manifests in "
            f"{self.repositories} repositories"
            + (
                f" ({self.missing_manifests} revisions without content)"
                if self.missing_manifests
                else ""
            ),
            f"{verb} {self.blobs.deleted} blobs and {self.manifests.deleted} manifests "
            f"({self.links} repository links, {self.empty_repositories} empty repositories); "
            f"kept {self.blobs.kept_recent + self.manifests.kept_recent} unreferenced items "
            "that are within the grace window",
            f"{verb} {self.upload_sessions} expired upload sessions and {self.upload_orphans} "
            f"upload folders without a session; {self.unnamed_objects} unnamed data objects, "
            f"{self.abandoned_multipart} abandoned multipart uploads",
            f"{'would free' if self.dry_run else 'freed'} {human_bytes(self.freed)} "
            f"in {self.duration:.1f}s",
        ]
        return "\n".join(lines)

    def item(self, out: TextIO, kind: str, what: str) -> None:
        """`-v`: one line per deleted (or deletable) item, written and flushed whole: the
        processes of a split sweep (`shards`) share the stream, and a line written in one
        piece of under PIPE_BUF bytes is never interleaved with another's."""
        verb = "would delete" if self.dry_run else "deleted"
        out.write(f"{verb} {kind} {what}\n")
        out.flush()

    def push(self, url: str, store: str) -> None:
        """Push the run's metrics to a Pushgateway. Only the metrics of this run are
        replaced (POST), so `registry_gc_last_success_timestamp_seconds` survives a failed run
        and an alert can tell how long ago the last good one was."""
        from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

        registry = CollectorRegistry()

        def gauge(name: str, doc: str, value: float) -> None:
            Gauge(name, doc, registry=registry).set(value)

        ended = self.started + self.duration
        gauge("registry_gc_last_run_timestamp_seconds", "When the last run ended.", ended)
        gauge("registry_gc_success", "1 if the last run completed, else 0.", self.outcome == "done")
        gauge("registry_gc_dry_run", "1 if the last run was a dry run.", self.dry_run)
        gauge("registry_gc_duration_seconds", "How long the last run took.", self.duration)
        if self.outcome == "done":
            gauge("registry_gc_last_success_timestamp_seconds", "When a run last completed.", ended)
        for name, doc, value in self._counts():
            gauge(f"registry_gc_{name}", doc, value)
        pushadd_to_gateway(
            url, job=JOB, registry=registry, grouping_key={"store": store}, timeout=10
        )

    def _counts(self) -> list[tuple[str, str, float]]:
        return [
            ("marked_digests", "Digests the last run kept.", self.digests_marked),
            ("marked_manifests", "Manifests the last run read.", self.manifests_marked),
            ("repositories", "Repositories the last run found.", self.repositories),
            ("deleted_blobs", "Blobs the last run deleted.", self.blobs.deleted),
            ("deleted_manifests", "Manifests the last run deleted.", self.manifests.deleted),
            ("freed_bytes", "Bytes the last run freed.", self.freed),
            (
                "kept_recent",
                "Unreferenced items kept by the grace window.",
                self.blobs.kept_recent + self.manifests.kept_recent,
            ),
            (
                "deleted_uploads",
                "Upload sessions and folders the last run removed.",
                self.upload_sessions + self.upload_orphans,
            ),
        ]


class Progress:
    """Lines on stderr while marking a large store, at most every PROGRESS_EVERY seconds."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self._out = out
        self._next = time.monotonic() + PROGRESS_EVERY

    def __call__(self, repositories: int, manifests: int) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + PROGRESS_EVERY
            print(
                f"marking: {repositories} repositories, {manifests} manifests seen", file=self._out
            )


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def as_dict(report: Report) -> dict[str, Any]:
    return asdict(report)
