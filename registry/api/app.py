"""The ASGI application: routes, error rendering, the API-version header, request bodies
answered early or stalled, and the instrumentation around it (metrics, access log, request
ids, health endpoints)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from registry.api import blobs, listing, manifests, metrics, token, uploads
from registry.api.bodies import Bodies
from registry.api.common import Services, resource
from registry.api.errors import HANDLERS
from registry.api.headers import ProtocolHeaders
from registry.observe import health
from registry.observe.metrics import start_process
from registry.observe.middleware import Observe
from registry.ui.assets import Assets
from registry.ui.routes import ui_routes

NAME = "{name:path}"

ROUTES = [
    resource("/token", token.Token, name="token"),
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


def create_app(services: Services) -> ASGIApp:
    """The application over services already built (`registry.wiring.build_services`): routes,
    middleware, and the lifespan that closes the services at shutdown."""
    settings = services.settings

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await services.close()

    routes: list[BaseRoute] = list(ROUTES)
    if settings.metrics_enabled and settings.metrics_addr is None:
        routes.append(METRICS_ROUTE)
    if settings.ui:
        routes += ui_routes(Assets.packaged())
    app = Starlette(routes=routes, exception_handlers=dict(HANDLERS), lifespan=lifespan)
    app.state.services = services
    app.state.health = services.health
    start_process()
    # Outermost: it holds back the end of early answers while it drains their bodies, so the
    # access log and metrics inside it see the application's own answer and time.
    return Bodies(
        Observe(ProtocolHeaders(app), app.routes, trust_forwarded=settings.trust_forwarded),
        idle_seconds=settings.body_timeout,
    )
