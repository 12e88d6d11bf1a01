"""Shared fixtures: a running registry (real hypercorn process), the application in-process
(for tests where the real server adds nothing), and unique repository names."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import httpx
import pytest
from starlette.types import ASGIApp, Message

from registry.api.app import create_app
from registry.config.flags import parse_serve
from registry.config.settings import Settings
from registry.wiring import build_services
from tests.clients.daemons import Dockerd, start_dockerd
from tests.clients.tools import require_binary, require_root
from tests.server import ADMIN, PASSWORD, RunningRegistry, start

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


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """One private dockerd for the session (tests/clients/daemons.py), shared by the client
    tests and the container image tests; skipped when dockerd or docker is missing or the
    tests do not run as root."""
    daemon_binary = require_binary("dockerd")
    cli = require_binary("docker")
    require_root("dockerd")
    instance = start_dockerd(daemon_binary, cli)
    yield instance
    instance.stop()


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
    """The admin's client of `registry_server`, for tests that need the real server."""
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
    bucket = bucket or new_bucket(services[1])
    return start(
        datadir,
        *scaled_flags(services, bucket),
        *extra,
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )


def scaled_flags(services: tuple[str, str], bucket: str) -> list[str]:
    """The flags of the registry on S3 (moto) with Redis coordination."""
    redis_url, endpoint = services
    return [
        "-s3bucket", bucket, "-s3endpoint", endpoint, "-s3region", "us-east-1",
        "-s3pathstyle", "-redisurl", redis_url,
    ]  # fmt: skip


# --- the application in-process


def build_app(settings: Settings) -> ASGIApp:
    """The application as every server worker builds it from its settings: the one place the
    in-process tests construct it."""
    return create_app(build_services(settings))


# What an in-process client connects to: a host:port as clients put in image references.
IN_PROCESS_URL = "http://127.0.0.1:5000"


class AppThread(httpx.BaseTransport):
    """A synchronous httpx transport to an ASGI application running in this process.

    The application lives on one event loop in a thread of its own (an anyio blocking
    portal) from its lifespan's startup to its shutdown, as in a server worker: the clients
    it keeps (S3, Redis) are bound to that loop. Each request is handed to httpx's
    `ASGITransport` on that loop; bodies are read whole, which tests' small bodies allow.
    Clients share the transport, so closing one leaves it running; `shutdown` ends it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._asgi = httpx.ASGITransport(app=app)
        self._to_app, self._app_receives = anyio.create_memory_object_stream[Message](4)
        self._app_sends, self._from_app = anyio.create_memory_object_stream[Message](4)
        self._stack = contextlib.ExitStack()
        self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._lifespan = self._portal.start_task_soon(self._run_lifespan)
        self._portal.call(self._event, "startup")

    async def _run_lifespan(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        await self._app(scope, self._app_receives.receive, self._app_sends.send)

    async def _event(self, event: str) -> None:
        await self._to_app.send({"type": f"lifespan.{event}"})
        answer = await self._from_app.receive()
        assert answer["type"] == f"lifespan.{event}.complete", answer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # a body the event loop can send without blocking

        async def send() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=body)

        return self._portal.call(send)

    def close(self) -> None:
        """A client closed: the application keeps running for the others."""

    def shutdown(self) -> None:
        self._portal.call(self._event, "shutdown")
        self._lifespan.result(timeout=30)
        self._stack.close()


@dataclass
class InProcessRegistry:
    """The application running in this process, with the surface of `RunningRegistry` that
    HTTP tests use (`url`, `host`, `client()`), for tests where Hypercorn adds nothing: no
    process to start, no port, no socket."""

    transport: AppThread
    datadir: Path
    username: str | None = ADMIN
    password: str | None = PASSWORD
    url: str = IN_PROCESS_URL

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def client(self, *, auth: bool = True, **kwargs: Any) -> httpx.Client:
        credentials = None
        if auth and self.username is not None and self.password is not None:
            credentials = (self.username, self.password)
        return httpx.Client(base_url=self.url, transport=self.transport, auth=credentials, **kwargs)


@contextlib.contextmanager
def serve_in_process(
    datadir: Path, *flags: str, password: str | None = PASSWORD
) -> Iterator[InProcessRegistry]:
    """The registry in-process with these `serve` flags (the environment is not read)."""
    argv = ["-datadir", str(datadir), *flags]
    if password is not None:
        argv += ["-adminpwd", password]
    transport = AppThread(build_app(parse_serve(argv, environ={})))
    try:
        yield InProcessRegistry(transport, datadir, ADMIN if password else None, password)
    finally:
        transport.shutdown()


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[Callable[..., InProcessRegistry]]:
    """Like `start_registry`, the application in-process: a registry of the test's own (with
    these flags) where the real server adds nothing; all shut down at the end of the test."""
    made = itertools.count()
    with contextlib.ExitStack() as stack:

        def factory(*flags: str, password: str | None = PASSWORD) -> InProcessRegistry:
            datadir = tmp_path / f"app{next(made)}"
            return stack.enter_context(serve_in_process(datadir, *flags, password=password))

        yield factory


@contextlib.contextmanager
def serve_in_process_on(
    backend: str, request: pytest.FixtureRequest, datadir: Path, *flags: str
) -> Iterator[InProcessRegistry]:
    """`serve_in_process` on the embedded default ("filesystem") or on S3 (moto) with Redis
    ("s3+redis"), as `registry_server` runs the real server."""
    if backend == "filesystem":
        with serve_in_process(datadir, *flags) as registry:
            yield registry
        return
    services = request.getfixturevalue("scaled_services")
    with pytest.MonkeyPatch.context() as env:  # botocore reads its credentials from there
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        bucket = new_bucket(services[1])
        with serve_in_process(datadir, *scaled_flags(services, bucket), *flags) as registry:
            yield registry


@pytest.fixture(scope="session", params=["filesystem", "s3+redis"])
def app_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessRegistry]:
    """`registry_server` in-process: one application per backend for the session (on S3 in a
    bucket of its own, on the same moto and Redis), for tests of what the registry answers,
    where Hypercorn and a process of its own add nothing but start-up time and a socket."""
    with serve_in_process_on(request.param, request, tmp_path_factory.mktemp("app")) as server:
        yield server


@pytest.fixture
def app_client(app_server: InProcessRegistry) -> Iterator[httpx.Client]:
    """`client` in-process: the admin's client of `app_server`."""
    with app_server.client() as http:
        yield http
