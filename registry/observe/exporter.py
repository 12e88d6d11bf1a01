"""The multiprocess metrics directory, and the optional metrics-only listener.

Each worker process writes its metric values into files of one directory; whoever renders
`/metrics` sums them. The directory is private to one `serve` process: created empty at
start, exported as PROMETHEUS_MULTIPROC_DIR before any process imports prometheus_client (the
variable is read at import), told when a worker ends, removed at exit. A directory left by a
crashed run is never reused, so old counts cannot leak into a new process.

A crash leaves its directory behind, so each start removes the directories of instances that
are gone (`sweep_metrics_dirs`). Every process of an instance (the serving process and each
worker) holds a shared flock(2) on the directory's `owner.lock` for as long as it runs; the
kernel drops it when the process ends, however it ends. A directory whose lock can be taken
exclusively has no process left, whatever became of their pids (reused, or numbered in
another container's pid namespace). The directory gets its searchable name only once its lock
is held, so a sweep never sees a new instance's directory unlocked. Directories without a lock
file (made by older versions) are left alone: nothing tells whether their instance still runs.

With `-metricsaddr`, the serving process also listens there, in a thread, for scrapes of
`/metrics` only: the data comes from the files, so it needs no worker, and the address can be
kept off the public network (no authentication is asked there).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import TCPServer, ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "simple-registry-metrics-"
OWNER_LOCK = "owner.lock"

log = logging.getLogger("registry.metrics")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def private_metrics_dir() -> Path:
    """Create this instance's metrics directory, hold it, and point prometheus_client at it."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory")
    making = Path(tempfile.mkdtemp(prefix="simple-registry-new-"))
    _hold(making / OWNER_LOCK, os.O_CREAT)
    path = making.with_name(PREFIX + making.name.removeprefix("simple-registry-new-"))
    os.rename(making, path)  # only now can a sweep find it, and it is held already
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def hold_metrics_dir() -> None:
    """A worker holds its instance's directory too, so that a sweep leaves it alone while the
    worker lives, even if the serving process was killed before it."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        with contextlib.suppress(FileNotFoundError):
            _hold(Path(directory) / OWNER_LOCK, 0)


_held: list[int] = []  # descriptors that hold a lock for the life of the process


def _hold(lock: Path, create: int) -> None:
    fd = os.open(lock, os.O_RDONLY | create, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held.append(fd)


def sweep_metrics_dirs(parent: Path | None = None) -> int:
    """Remove the metrics directories of instances that have no process left; their number."""
    parent = Path(tempfile.gettempdir()) if parent is None else parent
    removed = 0
    for path in parent.glob(PREFIX + "*"):
        if _abandoned(path):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _abandoned(path: Path) -> bool:
    """Whether no process holds the directory's lock (checked by taking it, then letting go)."""
    try:
        fd = os.open(path / OWNER_LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False  # no lock file (an older version's), or not a directory of ours
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def worker_ended(pid: int) -> None:
    """Drop a dead worker's live gauges (in flight, workers); its counters stay counted."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def remove_metrics_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def metrics_only(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """WSGI: `GET /metrics` (any query), 404 for every other path."""
    from registry.observe.metrics import exposition

    if environ.get("PATH_INFO") != "/metrics":
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: metrics are at /metrics\n"]
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
        return [b""]
    body, content_type = exposition(environ.get("HTTP_ACCEPT"))
    start_response(
        "200 OK",
        [("Content-Type", content_type), ("Content-Length", str(len(body)))],
    )
    return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics listener: " + format, *args)


def _server_class(family: socket.AddressFamily) -> type[WSGIServer]:
    class Server(ThreadingMixIn, WSGIServer):
        address_family = family
        daemon_threads = True
        allow_reuse_address = True

        def server_bind(self) -> None:
            """As HTTPServer's, without its reverse DNS lookup of the address, which can hang
            a start where no resolver answers."""
            TCPServer.server_bind(self)
            host, port = self.server_address[:2]
            self.server_name, self.server_port = str(host), int(port)
            self.setup_environ()

    return Server


class MetricsListener:
    """Binds at construction (so a taken port fails the start), serves after `start`."""

    def __init__(self, addr: str) -> None:
        host, _, port = addr.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        family, _, _, _, sockaddr = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        self.server = _server_class(family)((str(sockaddr[0]), int(sockaddr[1])), _Handler)
        self.server.set_app(metrics_only)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.socket.getsockname()[:2]
        shown = f"[{host}]" if self.server.address_family == socket.AF_INET6 else host
        return f"http://{shown}:{port}/metrics"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="metrics-listener", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()
