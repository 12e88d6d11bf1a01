"""A stdlib HTTP server on a loopback port in a thread of the test process.

The token issuer and the fault proxy are test-side servers that tests configure and inspect
directly (modes, counters), so they live in this process rather than in a subprocess. Binding
port 0 lets the kernel pick a free port: no probe-then-bind race with other tests.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive (clients reuse connections as real ones do), no access log on
    stderr, and an idle timeout so connections a client forgot do not keep threads forever."""

    protocol_version = "HTTP/1.1"
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        return


class LoopbackServer:
    """`handler` served on 127.0.0.1 by a thread per connection until `stop`.

    `owner` is reachable from the handler as `self.server.owner` (see `owner_of`)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], owner: object) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True  # a client's idle keep-alive never blocks teardown
        self._server.owner = owner  # type: ignore[attr-defined]
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"http-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def owner_of(handler: BaseHTTPRequestHandler) -> Any:
    """The object a `LoopbackServer` was started for."""
    return handler.server.owner  # type: ignore[attr-defined]
