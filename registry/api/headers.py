"""Headers every answer of the registry API carries, added in one place for all routes.

- `Docker-Distribution-API-Version: registry/2.0`: docker checks it on `/v2/`.

(`Connection: close` on answers sent before the request body was read is decided with the
draining of that body, in `registry.api.bodies`.)
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")


class ProtocolHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def adding_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), API_VERSION]
            await send(message)

        await self.app(scope, receive, adding_send)
