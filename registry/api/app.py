"""The ASGI application: routes, error rendering, the API-version header, request bodies
answered early or stalled, and the instrumentation around it (metrics, access log, request
ids, health endpoints)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from registry.api import blobs, listing, manifests, metrics, token, uploads
from registry.api.bodies import Bodies
from registry.api.common import Services, resource
from registry.api.errors import HANDLERS
from registry.api.headers import ProtocolHeaders
from registry.auth.gate import Gate
from registry.auth.keys import TokenKeys, load_or_create_secret
from registry.auth.policy import Policy
from registry.auth.tokens import TokenIssuer
from registry.config.settings import ConfigError, Settings
from registry.coord.base import Coordinator
from registry.coord.local import LocalCoordinator
from registry.model.registry import Registry
from registry.observe import health
from registry.observe.coord import InstrumentedCoordinator
from registry.observe.metrics import start_process
from registry.observe.middleware import Observe
from registry.observe.storage import InstrumentedStorage
from registry.storage.base import StorageDriver
from registry.storage.filesystem import FilesystemDriver

NAME = "{name:path}"
# Under the data directory: the local coordinator's locks, upload sessions and scratch files.
COORD_DIR = "_coord"

ROUTES = [
    Route("/token", token.token, methods=["GET", "POST"], name="token"),
    Route("/v2/", listing.ping, methods=["GET"], name="base"),
    Route("/v2/_catalog", listing.catalog, methods=["GET"], name="catalog"),
    Route(f"/v2/{NAME}/tags/list", listing.tags, methods=["GET"], name="tags"),
    resource(f"/v2/{NAME}/manifests/{{reference}}", manifests.Manifest, name="manifest"),
    resource(f"/v2/{NAME}/blobs/uploads/", uploads.UploadStart, name="upload_start"),
    # The same route without the trailing slash; one name, so one metrics label.
    resource(f"/v2/{NAME}/blobs/uploads", uploads.UploadStart, name="upload_start"),
    resource(f"/v2/{NAME}/blobs/uploads/{{upload_id}}", uploads.Upload, name="upload"),
    resource(f"/v2/{NAME}/blobs/{{digest}}", blobs.Blob, name="blob"),
    Route(f"/v2/{NAME}/referrers/{{digest}}", listing.referrers, methods=["GET"], name="referrers"),
    Route("/livez", health.livez, methods=["GET"], name="livez"),
    Route("/readyz", health.readyz, methods=["GET"], name="readyz"),
]
METRICS_ROUTE = Route("/metrics", metrics.metrics, methods=["GET"], name="metrics")


@dataclass
class _Backends:
    storage: StorageDriver
    store: str  # names the storage, for the coordinator's index
    coord: Coordinator
    checks: list[health.Check]
    closers: list[Callable[[], Awaitable[None]]]


def build_backends(settings: Settings, datadir: Path) -> _Backends:
    """Storage and coordination as configured, with their readiness checks and what to close
    at shutdown. The S3 and Redis clients are imported only when configured: the embedded
    default never loads aiobotocore or redis-py."""
    checks: list[health.Check] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    storage: StorageDriver
    if settings.s3 is not None:
        from registry.storage.s3 import S3Driver

        s3 = S3Driver(
            settings.s3.bucket,
            prefix=settings.s3.prefix,
            region=settings.s3.region,
            endpoint_url=settings.s3.endpoint_url,
            path_style=settings.s3.path_style,
            access_key=settings.s3.access_key,
            secret_key=settings.s3.secret_key,
            sse=settings.s3.sse,
            sse_kms_key_id=settings.s3.sse_kms_key_id,
            storage_class=settings.s3.storage_class,
            connect_timeout=settings.s3.connect_timeout,
            read_timeout=settings.s3.read_timeout,
            max_attempts=settings.s3.max_attempts,
            max_pool_connections=settings.s3.max_connections,
            public_endpoint=settings.s3.public_endpoint,
            request_timeout=settings.s3.request_timeout,
        )
        storage, store = s3, f"s3 {s3.endpoint_url or 'aws'} {s3.bucket}/{s3.prefix}"
        checks.append(health.Check("storage", s3.name, s3.check))
        closers.append(s3.close)
    else:
        storage, store = FilesystemDriver(datadir), f"file://{datadir}"
        checks.append(health.Check("storage", storage.name, health.directory_probe(datadir)))
    coord: Coordinator
    if settings.redis is not None:
        from registry.coord.redis import connect

        redis = connect(
            settings.redis.url,
            lock_ttl=settings.redis.lock_lease_seconds,
            max_connections=settings.redis.max_connections,
            socket_timeout=settings.redis.timeout_seconds,
            prefix=settings.redis.key_prefix,
        )
        coord = redis
        checks.append(health.Check("coordinator", redis.name, redis.ping))
        closers.append(redis.close)
    else:
        coord = LocalCoordinator(datadir / COORD_DIR)
        probe = health.directory_probe(
            datadir / COORD_DIR / "locks", datadir / COORD_DIR / "sessions"
        )
        checks.append(health.Check("coordinator", coord.name, probe))
    return _Backends(storage, store, coord, checks, closers)


def create_app(settings: Settings) -> ASGIApp:
    datadir = settings.datadir.resolve()
    backends = build_backends(settings, datadir)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for close in backends.closers:
            await close()

    routes = list(ROUTES)
    if settings.metrics_enabled and settings.metrics_addr is None:
        routes.append(METRICS_ROUTE)
    app = Starlette(routes=routes, exception_handlers=dict(HANDLERS), lifespan=lifespan)
    gate = Gate(
        settings,
        Policy(settings.manifests),
        TokenIssuer(
            _token_keys(settings, datadir),
            issuer="simple-registry",
            lifetime_seconds=settings.token_lifetime,
        ),
    )
    registry = Registry(
        InstrumentedStorage(backends.storage),
        InstrumentedCoordinator(backends.coord),
        backends.store,
        redirect_seconds=_redirect_seconds(settings),
    )
    app.state.services = Services(settings, registry, gate)
    app.state.health = health.Health(backends.checks)
    start_process()
    # Outermost: it holds back the end of early answers while it drains their bodies, so the
    # access log and metrics inside it see the application's own answer and time.
    return Bodies(
        Observe(ProtocolHeaders(app), app.routes, trust_forwarded=settings.trust_forwarded),
        idle_seconds=settings.body_timeout,
    )


def check_local_state(settings: Settings) -> None:
    """Make the data directory and the token key ready, or fail with one line naming the path.

    Run once by `serve` before it binds and announces: workers are spawned processes, and each
    would otherwise meet the same problem on its own after "listening on" was printed. The
    directories are made by the very constructors the workers run, then written to, since
    an existing directory may still refuse writes (a read-only mount, another owner).
    """
    datadir = settings.datadir.resolve()
    try:
        if settings.s3 is None:
            _probe_writes(FilesystemDriver(datadir).root)
        if settings.redis is None:
            LocalCoordinator(datadir / COORD_DIR)
            _probe_writes(datadir / COORD_DIR)
    except OSError as exc:
        inner = f"{exc.filename}: " if exc.filename and Path(exc.filename) != datadir else ""
        raise ConfigError(
            f"cannot use the data directory {settings.datadir}: {inner}{exc.strerror}"
        ) from None
    # Reads and checks a key file, or makes the secret kept in the data directory.
    _token_keys(settings, datadir)


def _probe_writes(directory: Path | str) -> None:
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:  # named after the directory, not the random file name
        raise OSError(exc.errno, exc.strerror, str(directory)) from None


def _redirect_seconds(settings: Settings) -> int | None:
    """How long the presigned URLs blob pulls are redirected to stay valid; None when pulls
    are not redirected."""
    s3 = settings.s3
    return s3.redirect_seconds if s3 is not None and s3.redirect else None


def _token_keys(settings: Settings, datadir: Path) -> TokenKeys:
    """A configured key or secret; otherwise the one every worker shares in the data dir."""
    if settings.token_key_file is not None:
        return TokenKeys.from_pem_file(settings.token_key_file)
    if settings.token_secret is not None:
        return TokenKeys.from_secret(settings.token_secret)
    return TokenKeys.from_secret(load_or_create_secret(datadir))
