"""Close the connection after answering a request whose body was not read to the end.

Handlers answer many errors (unknown upload, denied scope, bad digest) before reading the
body. The server then cannot reuse the connection: the rest of the body is still on its way.
It closes it, but a client that saw no `Connection: close` may already have sent its next
request on it and gets a dropped connection instead of an answer. Saying `Connection: close`
in such a response tells the client to open a new connection, so nothing is lost.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class CloseUnreadBodies:
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

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not read_all:
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"connection"]
                message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        await self.app(scope, tracking_receive, closing_send)


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
    return False
