"""Where the web UI is served: `/` sends the browser to `/ui/`, every `/ui/...` view path gets
the app's page (the app reads the path and draws the view), and `/ui/_assets/<version>/...`
its files.

Every answer carries a strict Content-Security-Policy: the app's own scripts and styles only,
no inline script, no `eval`, requests to this origin only, never framed. What the app shows
(names, labels, annotations) is pushed by registry users and so untrusted; the policy is the
second line behind the app never writing it as HTML.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from registry.ui.assets import PREFIX, Asset, Assets

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
PAGE_CACHING = "no-cache"
"""The page names the assets' version, so a browser asks again each time (an ETag makes that
a 304 while nothing changed)."""
ASSET_CACHING = "public, max-age=31536000, immutable"


def ui_routes(assets: Assets) -> list[BaseRoute]:
    """The UI's routes over `assets`, to add to the application when the UI is on."""

    async def root(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=303, headers=SECURITY_HEADERS)

    async def page(request: Request) -> Response:
        return _answer(request, assets.page, PAGE_CACHING)

    async def asset(request: Request) -> Response:
        found = assets.file(request.path_params["version"], request.path_params["path"])
        if found is None:
            return Response(
                "no such file in this version of the web UI",
                status_code=404,
                media_type="text/plain",
                headers=SECURITY_HEADERS,
            )
        return _answer(request, found, ASSET_CACHING)

    return [
        Route("/", root, methods=["GET"], name="ui_root"),
        Route(PREFIX + "/{version}/{path:path}", asset, methods=["GET"], name="ui_asset"),
        Route("/ui", page, methods=["GET"], name="ui"),
        Route("/ui/{view:path}", page, methods=["GET"], name="ui"),
    ]


def _answer(request: Request, asset: Asset, caching: str) -> Response:
    """The file, or 304 when the browser's copy is current (`If-None-Match`)."""
    headers = {**SECURITY_HEADERS, "Cache-Control": caching, "ETag": asset.etag}
    if asset.etag in _tags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def _tags(header: str) -> set[str]:
    """The entity tags of an `If-None-Match` header (weak ones compare equal, RFC 9110)."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
