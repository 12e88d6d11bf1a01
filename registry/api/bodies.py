"""Request bodies the application does not read to the end, and bodies that stop arriving.

Hypercorn hands a request body to the application through a small queue (ten chunks). When a
handler answers before reading the body (a 401 for missing credentials, a 404 for an unknown
upload, a 503 after waiting for a lock), nobody empties that queue: the server's reader blocks
on it, and when the response ends Hypercorn blocks too, putting its `http.disconnect` into the
same full queue. The connection and the request then stay forever, with their memory and
descriptors. A plain close instead, with the rest of the body still unread in the socket,
becomes a TCP reset, which a reverse proxy still sending that body reports as 502 instead of
passing the answer on.

`Bodies`, the outermost middleware, makes every such early answer end within a bound:

- the answer goes out whole, but its last message is held back; the rest of the body is read
  and thrown away, up to `DRAIN_BYTES` and `DRAIN_SECONDS`; then the answer is ended. A body
  read to its end leaves the connection reusable (the client may retry on it); past a bound,
  Hypercorn closes the connection, after the client has the whole answer;
- an answer announces `Connection: close` when the declared `Content-Length` already says the
  rest is beyond `DRAIN_BYTES`, so a client does not send its next request on a connection
  that is about to close (and may stop sending and close, which ends the drain at once);
- while the answer ends, and until Hypercorn's `http.disconnect`, the queue keeps being
  emptied, so Hypercorn itself can never block on it.

The held-back end also keeps the access log and metrics right: `Observe`, inside this
middleware, saw the application's own last message and timed the request to it.

Bodies that stall: while the application reads a body, a chunk that does not arrive within
the idle timeout fails the request with 400 `BLOB_UPLOAD_INVALID`. The exception unwinds the
handler, which releases the upload's lock, so a client that stopped sending does not keep
others from its upload.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import KW_ONLY, dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.numbers import whole_number
from registry.oci.errors import BlobUploadInvalid

# What may be read and discarded after an early answer. Most early answers come before the
# first chunk or for a chunk of a few megabytes, which a LAN delivers well within these
# bounds; reading more only to keep one connection open costs more than a reconnect.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0
CLOSE = (b"connection", b"close")

# Queue-emptying tasks of requests whose application failed: they must outlive the request
# by the moment Hypercorn needs to put its `http.disconnect`, and a task nobody references
# may be collected before it ran.
_orphans: set[asyncio.Task[None]] = set()


def declared_length(scope: Scope) -> int | None:
    """The `Content-Length` (0 when the request has no body), None for a chunked body."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            return whole_number(value.strip().decode("latin-1")) or 0
    return 0


@dataclass(frozen=True, slots=True)
class Bodies:
    """The middleware (see the module): a stalled body fails after `idle_seconds`; after an
    early answer at most `drain_bytes` are read, for at most `drain_seconds`."""

    app: ASGIApp
    _: KW_ONLY
    idle_seconds: float
    drain_bytes: int = DRAIN_BYTES
    drain_seconds: float = DRAIN_SECONDS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or declared_length(scope) == 0:  # no body to wait for
            await self.app(scope, receive, send)
            return
        await _Exchange(self, scope, receive, send).run()


class _Exchange:
    """One request with a body: what was read of it, and the answer's end while held back."""

    def __init__(self, bodies: Bodies, scope: Scope, receive: Receive, send: Send) -> None:
        self.bodies = bodies
        self.scope = scope
        self._receive = receive
        self._send = send
        self.length = declared_length(scope)
        self.received = 0
        self.ended = False  # the body ended, or the client went away
        self.held = False  # the application's answer is complete but its end is held back

    async def run(self) -> None:
        try:
            await self.bodies.app(self.scope, self.receive, self.send)
        except Exception:
            if not self.ended:
                self._empty_queue_later()
            raise
        if self.held:
            await self._finish()
        elif not self.ended:  # no complete answer: Hypercorn will end the stream itself
            self._empty_queue_later()

    async def receive(self) -> Message:
        if self.ended:  # only `http.disconnect` can come; waiting for it is the caller's choice
            return await self._receive()
        try:
            async with asyncio.timeout(self.bodies.idle_seconds):
                message = await self._receive()
        except TimeoutError:
            raise BlobUploadInvalid(
                f"no part of the request body arrived in {self.bodies.idle_seconds:g} s; "
                "the request is abandoned"
            ) from None
        self._note(message)
        return message

    def _note(self, message: Message) -> None:
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.ended = True
        elif message["type"] == "http.disconnect":
            self.ended = True

    async def send(self, message: Message) -> None:
        if self.ended:
            await self._send(message)
        elif message["type"] == "http.response.start":
            await self._send(self._early_start(message))
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.held = True
            await self._send({**message, "more_body": True})
        else:
            await self._send(message)

    def _early_start(self, message: Message) -> Message:
        """An answer that starts before the body ended; it says `Connection: close` when the
        rest of the body is declared too long to drain."""
        unread = None if self.length is None else self.length - self.received
        if unread is None or unread <= self.bodies.drain_bytes:
            return message
        headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]
        return {**message, "headers": [*headers, CLOSE]}

    async def _finish(self) -> None:
        """Drain what the bounds allow, then end the answer while emptying the queue.

        A body announced too long is drained too: a client that stops sending and closes
        on `Connection: close` ends it early, and the close is then a clean one."""
        await self._drain()
        end = {"type": "http.response.body", "body": b"", "more_body": False}
        if self.ended:
            await self._send(end)
            return
        emptying = asyncio.create_task(self._empty_queue())
        try:
            await self._send(end)
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(emptying, self.bodies.drain_seconds)

    async def _drain(self) -> None:
        limit = self.received + self.bodies.drain_bytes
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.bodies.drain_seconds):
                while not self.ended and self.received <= limit:
                    self._note(await self._receive())

    async def _empty_queue(self) -> None:
        """Discard body chunks until Hypercorn's `http.disconnect`, which it puts into the
        queue as the stream closes and would otherwise wait for room to put."""
        while (await self._receive())["type"] != "http.disconnect":
            pass

    def _empty_queue_later(self) -> None:
        """The same, bounded, for a request whose stream Hypercorn ends after we return."""

        async def bounded() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty_queue(), self.bodies.drain_seconds)

        task = asyncio.create_task(bounded())
        _orphans.add(task)
        task.add_done_callback(_orphans.discard)
