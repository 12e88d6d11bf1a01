"""Headers every answer of the registry API carries, added in one place for all routes.

- `Docker-Distribution-API-Version: registry/2.0`: docker checks it on `/v2/`.
- `Connection: close` when the answer was sent before the request body was read to the end.
  Handlers answer many errors (unknown upload, denied scope, bad digest) before reading the
  body; the server cannot reuse such a connection, since the rest of the body is still on its
  way, and closes it. A client that saw no `Connection: close` may already have sent its next
  request on it and gets a dropped connection instead of an answer.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")
CLOSE = (b"connection", b"close")


class ProtocolHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        read_all = not _has_body(scope)

        async def tracking_receive() -> Message:
            nonlocal read_all
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                read_all = True
            return message

        async def adding_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if read_all:
                    headers.append(API_VERSION)
                else:
                    headers = [(k, v) for k, v in headers if k.lower() != b"connection"]
                    headers += [API_VERSION, CLOSE]
                message["headers"] = headers
            await send(message)

        await self.app(scope, tracking_receive, adding_send)


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
    return False
