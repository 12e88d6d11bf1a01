"""The ASGI application: routes, error rendering, the API-version header, and the
instrumentation around it (metrics, access log, request ids, health endpoints)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.api import blobs, listing, manifests, metrics, token, uploads
from registry.api.common import Services
from registry.api.connection import CloseUnreadBodies
from registry.api.errors import HANDLERS
from registry.auth.gate import Gate
from registry.auth.keys import TokenKeys, load_or_create_secret
from registry.auth.policy import Policy
from registry.auth.tokens import TokenIssuer
from registry.config.settings import S3Settings, Settings
from registry.coord.base import Coordinator
from registry.coord.local import LocalCoordinator
from registry.coord.redis import RedisCoordinator
from registry.coord.redis import connect as connect_redis
from registry.model.registry import Registry
from registry.observe import health
from registry.observe.coord import InstrumentedCoordinator
from registry.observe.metrics import start_process
from registry.observe.middleware import Observe
from registry.observe.storage import InstrumentedStorage
from registry.storage.base import StorageDriver
from registry.storage.filesystem import FilesystemDriver
from registry.storage.s3 import S3Driver

NAME = "{name:path}"

ROUTES = [
    Route("/token", token.token, methods=["GET", "POST"], name="token"),
    Route("/v2/", listing.ping, methods=["GET"], name="base"),
    Route("/v2/_catalog", listing.catalog, methods=["GET"], name="catalog"),
    Route(f"/v2/{NAME}/tags/list", listing.tags, methods=["GET"], name="tags"),
    Route(
        f"/v2/{NAME}/manifests/{{reference}}",
        manifests.manifest,
        methods=["GET", "PUT", "DELETE"],
        name="manifest",
    ),
    Route(f"/v2/{NAME}/blobs/uploads/", uploads.start, methods=["POST"], name="upload_start"),
    # The same route without the trailing slash; one name, so one metrics label.
    Route(f"/v2/{NAME}/blobs/uploads", uploads.start, methods=["POST"], name="upload_start"),
    Route(
        f"/v2/{NAME}/blobs/uploads/{{upload_id}}",
        uploads.session,
        methods=["GET", "PATCH", "PUT", "DELETE"],
        name="upload",
    ),
    Route(f"/v2/{NAME}/blobs/{{digest}}", blobs.blob, methods=["GET", "DELETE"], name="blob"),
    Route(f"/v2/{NAME}/referrers/{{digest}}", listing.referrers, methods=["GET"], name="referrers"),
    Route("/livez", health.livez, methods=["GET"], name="livez"),
    Route("/readyz", health.readyz, methods=["GET"], name="readyz"),
]
METRICS_ROUTE = Route("/metrics", metrics.metrics, methods=["GET"], name="metrics")


class APIVersionHeader:
    """Adds `Docker-Distribution-API-Version` to every response; docker checks it on /v2/."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"docker-distribution-api-version", b"registry/2.0"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_header)


def create_app(settings: Settings) -> ASGIApp:
    datadir = settings.datadir.resolve()
    storage: StorageDriver
    coord: Coordinator
    checks: list[health.Check] = []
    if settings.s3 is not None:
        storage = s3 = _s3_driver(settings.s3)
        store = f"s3 {s3.endpoint_url or 'aws'} {s3.bucket}/{s3.prefix}"
        checks.append(health.Check("storage", s3.name, s3.check))
    else:
        storage, store = FilesystemDriver(datadir), f"file://{datadir}"
        checks.append(health.Check("storage", storage.name, health.directory_probe(datadir)))
    if settings.redis is not None:
        coord = redis = connect_redis(
            settings.redis.url,
            lock_ttl=settings.redis.lock_lease_seconds,
            max_connections=settings.redis.max_connections,
            socket_timeout=settings.redis.timeout_seconds,
            prefix=settings.redis.key_prefix,
        )
        checks.append(health.Check("coordinator", redis.name, redis.ping))
    else:
        coord = LocalCoordinator(datadir / "_coord")
        probe = health.directory_probe(
            datadir / "_coord" / "locks", datadir / "_coord" / "sessions"
        )
        checks.append(health.Check("coordinator", coord.name, probe))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if isinstance(coord, RedisCoordinator):
            await coord.close()
        if isinstance(storage, S3Driver):
            await storage.close()

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
    registry = Registry(InstrumentedStorage(storage), InstrumentedCoordinator(coord), store)
    app.state.services = Services(settings, registry, gate)
    app.state.health = health.Health(checks)
    start_process()
    return Observe(
        APIVersionHeader(CloseUnreadBodies(app)),
        app.routes,
        trust_forwarded=settings.trust_forwarded,
    )


def _s3_driver(s3: S3Settings) -> S3Driver:
    return S3Driver(
        s3.bucket,
        prefix=s3.prefix,
        region=s3.region,
        endpoint_url=s3.endpoint_url,
        path_style=s3.path_style,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        sse=s3.sse,
        sse_kms_key_id=s3.sse_kms_key_id,
        storage_class=s3.storage_class,
        connect_timeout=s3.connect_timeout,
        read_timeout=s3.read_timeout,
        max_attempts=s3.max_attempts,
        max_pool_connections=s3.max_connections,
        public_endpoint=s3.public_endpoint,
    )


def _token_keys(settings: Settings, datadir: Path) -> TokenKeys:
    """A configured key or secret; otherwise the one every worker shares in the data dir."""
    if settings.token_key_file is not None:
        return TokenKeys.from_pem_file(settings.token_key_file)
    if settings.token_secret is not None:
        return TokenKeys.from_secret(settings.token_secret)
    return TokenKeys.from_secret(load_or_create_secret(datadir))
