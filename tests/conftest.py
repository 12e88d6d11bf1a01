"""Shared fixtures: a running registry (real hypercorn process) and unique repository names."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import RunningRegistry, start

_names = itertools.count()


@pytest.fixture(scope="session", params=["filesystem", "s3+redis"])
def registry_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningRegistry]:
    """One server per backend for the session, with the admin password; every test that uses
    it runs on the embedded default and on S3 (moto over HTTP) with Redis coordination."""
    datadir = tmp_path_factory.mktemp("data")
    if request.param == "filesystem":
        server = start(datadir)
    else:
        server = start_scaled(request.getfixturevalue("scaled_services"), datadir)
    yield server
    server.stop()


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (`pytest.mark.anyio`) run on asyncio only: the registry runs there."""
    return "asyncio"


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[Callable[..., RunningRegistry]]:
    """Start a dedicated server with extra flags; stopped at the end of the test."""
    started: list[RunningRegistry] = []

    def factory(*extra: str, password: str | None = "s3cret-Pa55") -> RunningRegistry:
        server = start(tmp_path / f"data{len(started)}", *extra, password=password)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def client(registry_server: RunningRegistry) -> Iterator[httpx.Client]:
    with registry_server.client() as http:
        yield http


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name no other test uses, nested to exercise multi-component names."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower()).strip("-")
    return f"test/{base[:60].strip('-')}-{next(_names)}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI every tool is installed, so any skip means a test silently did not run."""
    if os.environ.get("SIMPLE_REGISTRY_TEST_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and exitstatus == 0:
        print(f"\n{skipped} test(s) skipped, which CI does not allow (see the reasons above)")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def scaled_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real redis-server and moto's S3 server: (redis URL, S3 endpoint)."""
    from tests.backends.conftest import RedisProcess
    from tests.backends.s3 import MotoServer

    redis = RedisProcess(tmp_path_factory.mktemp("redis"))
    moto = MotoServer(tmp_path_factory.mktemp("moto"))
    redis.start()
    try:
        moto.start()
        try:
            yield redis.url(db=1), moto.endpoint
        finally:
            moto.stop()
    finally:
        redis.stop()


def new_bucket(endpoint: str) -> str:
    import uuid

    bucket = f"registry-{uuid.uuid4().hex[:12]}"
    httpx.put(f"{endpoint}/{bucket}").raise_for_status()  # moto creates buckets unsigned
    return bucket


def start_scaled(
    services: tuple[str, str], datadir: Path, *extra: str, bucket: str | None = None
) -> RunningRegistry:
    """The registry on S3 (a fresh bucket unless given) with Redis coordination."""
    redis_url, endpoint = services
    bucket = bucket or new_bucket(endpoint)
    return start(
        datadir,
        "-s3bucket", bucket, "-s3endpoint", endpoint, "-s3region", "us-east-1",
        "-s3pathstyle", "-redisurl", redis_url, *extra,
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )  # fmt: skip
