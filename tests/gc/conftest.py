"""A registry with content, on each backend, and `simple-registry gc` run against its store as
its own process, exactly as a CronJob runs it (see `Store.gc`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import new_bucket, scaled_flags
from tests.server import RunningRegistry, start

ITEM = re.compile(r"(deleted|would delete) (blob|manifest) ")
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass
class GcRun:
    returncode: int
    report: dict[str, Any]
    stderr: str

    def deleted(self, kind: str) -> int:
        return int(self.report[kind]["deleted"])

    def items(self) -> list[str]:
        """The `-v` lines: one per deleted (or deletable) item."""
        return sorted(line for line in self.stderr.splitlines() if ITEM.match(line) is not None)


@dataclass
class Store:
    """One store (a data directory, or a bucket with a Redis), the registries serving it,
    and the flags with which `gc` finds it."""

    kind: str
    datadir: Path
    flags: list[str]
    env: dict[str, str] = field(default_factory=dict)
    servers: list[RunningRegistry] = field(default_factory=list)

    def serve(self, *extra: str) -> RunningRegistry:
        server = start(self.datadir, *self.flags[2:], *extra, env=self.env)
        self.servers.append(server)
        return server

    def gc(self, *flags: str, expect: int | None = 0) -> GcRun:
        """Run `simple-registry gc` with `-json`; the status must be `expect` (None: any)."""
        args = [sys.executable, "-m", "registry", "gc", *self.flags, "-json", *flags]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLE_REGISTRY_")}
        environment.update(self.env)
        done = subprocess.run(args, capture_output=True, text=True, env=environment, timeout=300)
        if expect is not None:
            assert done.returncode == expect, done.stderr
        lines = done.stdout.strip().splitlines()
        report = json.loads(lines[-1]) if lines else {}
        return GcRun(done.returncode, report, done.stderr)


def _store(kind: str, tmp_path: Path, services: tuple[str, str]) -> Store:
    datadir = tmp_path / "data"
    if kind == "filesystem":
        return Store("filesystem", datadir, ["-datadir", str(datadir)])
    bucket = new_bucket(services[1])
    flags = ["-datadir", str(datadir), *scaled_flags(services, bucket)]
    return Store("scaled", datadir, flags, dict(S3_ENV))


def _serving(store: Store) -> Iterator[Store]:
    yield store
    for server in store.servers:
        server.stop()


@pytest.fixture(params=["filesystem", "scaled"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, scaled_services: tuple[str, str]
) -> Iterator[Store]:
    """A store on the filesystem (local coordination) or on S3 (moto) with Redis."""
    yield from _serving(_store(request.param, tmp_path, scaled_services))


@pytest.fixture
def fs_store(tmp_path: Path) -> Iterator[Store]:
    """For what only the filesystem has (session files), or what no backend changes."""
    yield from _serving(_store("filesystem", tmp_path, ("", "")))


@pytest.fixture
def s3_store(tmp_path: Path, scaled_services: tuple[str, str]) -> Iterator[Store]:
    """For what only S3 has (aliases, multipart uploads)."""
    yield from _serving(_store("scaled", tmp_path, scaled_services))


@pytest.fixture
def served(store: Store) -> RunningRegistry:
    return store.serve()


Serve = Callable[..., RunningRegistry]
