"""What every handler needs: the app's services, the validated name, the body, pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.routing import Route

from registry.auth.gate import Gate
from registry.config.settings import Settings
from registry.model.listing import Page
from registry.model.registry import Registry
from registry.numbers import whole_number
from registry.observe.health import Health
from registry.oci.errors import PaginationInvalid
from registry.oci.names import validate_name

if TYPE_CHECKING:
    from registry.proxy.mirror import Mirror

MAX_PAGE = 10_000
# The verbs a resource class may answer, each by the method of that name in lower case.
VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True, slots=True)
class Services:
    """What the application runs on, built from the settings by `registry.wiring`: the API
    receives its backends ready-made and never picks or builds a driver itself."""

    settings: Settings
    registry: Registry
    gate: Gate
    health: Health  # the readiness checks of the storage and coordination in use
    close: Callable[[], Awaitable[None]]  # releases their clients at shutdown
    mirror: Mirror  # the pull-through caches (none configured: it serves no name)


def resource(path: str, endpoint: type[HTTPEndpoint], name: str) -> Route:
    """A route to a class with one method per verb (`get`, `put`, ...), allowing exactly the
    verbs it defines; HEAD comes with GET, answered by `head` or else by `get`.

    The verbs are listed on the route too, not left to the class alone: a route that does not
    take a verb only partly matches, so the router goes on to the next routes, and a 405 with
    `Allow` is answered only when none takes it.
    """
    verbs = [verb for verb in VERBS if hasattr(endpoint, verb.lower())]
    return Route(path, endpoint, methods=verbs, name=name)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def repository(request: Request) -> str:
    """The local repository name a request is about: the name in its path, or, with
    containerd's `?ns=<host>`, that name under the cache mirroring the host."""
    name = validate_name(request.path_params["name"])
    return services(request).mirror.local_name(name, request.query_params.get("ns"))


def refuse_cache_writes(request: Request, name: str) -> None:
    """Pushes and deletes under a pull-through cache are DENIED (after the caller's rights
    were checked, so an anonymous push still learns how to log in)."""
    services(request).mirror.refuse_write(name)


async def body(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, without the empty chunk ASGI ends with."""
    async for chunk in request.stream():
        if chunk:
            yield chunk


def page_params(request: Request, default: int | None) -> tuple[int | None, str | None]:
    raw = request.query_params.get("n")
    last = request.query_params.get("last") or None
    if raw is None or raw == "":
        return default, last
    n = whole_number(raw)
    if n is None:
        raise PaginationInvalid(f"n must be a non-negative whole number, not {raw[:50]!r}")
    return min(n, MAX_PAGE), last


def link_header(path: str, page: Page, n: int | None) -> dict[str, str]:
    if page.next_last is None or n is None:
        return {}
    query = urlencode({"last": page.next_last, "n": n})
    return {"Link": f'<{path}?{query}>; rel="next"'}
