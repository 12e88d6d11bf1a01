"""`/metrics` on the main address, used when no separate `-metricsaddr` is set.

Here it is reachable by anyone who reaches the registry, so it asks for credentials: any
defined user (Basic, a static token, or a bearer JWT), never anonymous. The metrics hold no
repository names or other content, only counts; a robot user with a static token and no role
binding is enough for Prometheus. On `-metricsaddr` it is unauthenticated instead, which is
why that address should stay on a private network.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from registry.api.common import services
from registry.observe.metrics import exposition


async def metrics(request: Request) -> Response:
    gate = services(request).gate
    principal = await gate.identify(request)
    if principal.anonymous:
        raise gate.challenge(request, (), "metrics need credentials")
    # Reading every worker's files is blocking I/O: keep it off the event loop.
    body, content_type = await asyncio.to_thread(exposition, request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
