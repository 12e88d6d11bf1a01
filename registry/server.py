"""Run the application under Hypercorn, in one process or as a group of worker processes.

The listening sockets are bound and put into listen state here, before any worker starts, so
the "listening on" line is true when printed: a client that connects right after it waits in
the backlog instead of being refused. Workers are spawned processes sharing those sockets.
Before binding, what every worker needs (the data directory, the token key, the TLS files) is
checked once here, so a mistake is one line naming its path, not a failure in each worker.

Metrics: every process of one `serve` writes into a private multiprocess directory
(`metrics_directory`, entered by the CLI first of all; see `registry.observe.exporter`), and
workers that end are marked dead there. With `-metricsaddr`, this process also answers scrapes
there. Logging is set up again in each worker, which starts afresh.

What crashed runs left behind is cleaned once per `serve`, in a background thread started as
the workers start (`registry.startup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
import ssl
import sys
from collections.abc import Iterator
from functools import partial
from multiprocessing.connection import wait
from multiprocessing.synchronize import Event as EventType
from typing import Any

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import check_multiprocess_shutdown_event, wrap_app

from registry.config.settings import ConfigError, Settings
from registry.observe.exporter import (
    MetricsListener,
    hold_metrics_dir,
    private_metrics_dir,
    remove_metrics_dir,
    worker_ended,
)
from registry.observe.logs import ANNOUNCE, configure

log = logging.getLogger("registry.server")
announce = logging.getLogger(ANNOUNCE)
RECV_BYTES = 1024 * 1024


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [settings.addr]
    config.workers = settings.workers
    # Our middleware writes the access log; Hypercorn's own errors go through our handlers.
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    config.keep_alive_timeout = 75
    # Hypercorn closes a connection after 1000 requests by default; clients that pull many
    # layers or poll manifests would reconnect for nothing.
    config.keep_alive_max_requests = 1_000_000
    if settings.tls:
        config.certfile = str(settings.certfile)
        config.keyfile = str(settings.keyfile)
    return config


def _serve_worker(
    settings: Settings, config: Config, sockets: Sockets, shutdown_event: EventType
) -> None:
    from hypercorn.asyncio import tcp_server

    configure(settings.log_level, settings.log_format)
    hold_metrics_dir()

    from registry.api.app import create_app
    from registry.wiring import build_services

    # Hypercorn reads 64 KiB at a time; layer uploads are megabytes, and every read costs a
    # trip through h11 and the ASGI queue. 1 MiB reads measured +10-20% on monolithic pushes.
    tcp_server.MAX_RECV = RECV_BYTES

    try:
        application = create_app(build_services(settings))
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise ConfigError(f"cannot start a worker: {where}{exc.strerror}") from None
    app = wrap_app(application, config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
    trigger: Any = partial(check_multiprocess_shutdown_event, shutdown_event, asyncio.sleep)
    asyncio.run(worker_serve(app, config, sockets=sockets, shutdown_trigger=trigger))


def _spawned_worker(
    settings: Settings, config: Config, sockets: Sockets, shutdown_event: EventType
) -> None:
    """A spawned worker's entry. `serve` checked the data directory and keys before any worker
    started; what it could not foresee (a directory removed since, a full disk) ends the
    worker with the CLI's one line instead of multiprocessing's traceback."""
    try:
        _serve_worker(settings, config, sockets, shutdown_event)
    except ConfigError as exc:
        print(f"simple-registry: {exc}", file=sys.stderr)
        sys.exit(2)


def _bind(config: Config, settings: Settings) -> list[Sockets]:
    """The listening sockets; a taken, privileged or foreign address is one line naming it."""
    try:
        return _worker_sockets(config, settings.workers)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings.addr}: {exc.strerror}") from None


def _check_tls(config: Config, settings: Settings) -> None:
    """Load the certificate and key once here: each worker loads them again when it starts,
    and a failure there would come after "listening on" with Hypercorn's traceback."""
    if not settings.tls:
        return
    files = f"TLS certificate {settings.certfile} and key {settings.keyfile}"
    try:
        config.create_ssl_context()
    except ssl.SSLError as exc:
        # OpenSSL's PEM_LIB says only that a file was not the PEM it should be.
        reason = str(exc.reason or "PEM_LIB")
        detail = (
            "expected a PEM certificate and its PEM private key"
            if reason == "PEM_LIB"
            else reason.replace("_", " ").lower()
        )
        raise ConfigError(f"cannot use {files}: {detail}") from None
    except OSError as exc:
        raise ConfigError(f"cannot use {files}: {exc.strerror}") from None


def _worker_sockets(config: Config, workers: int) -> list[Sockets]:
    """One listening socket set per worker, all on the same port with SO_REUSEPORT.

    With a single shared socket, whichever worker wakes first accepts most connections and
    keep-alive clients pile onto it; separate SO_REUSEPORT sockets let the kernel spread
    connections across workers. A port of 0 is resolved by the first socket and reused.
    """
    if workers > 1:
        _refuse_taken_port(config)
    first = config.create_sockets()
    result = [first]
    sock = (first.secure_sockets or first.insecure_sockets)[0]
    host, port = sock.getsockname()[:2]
    config.bind = [f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"]
    for _ in range(workers - 1):
        result.append(config.create_sockets())
    for sockets in result:
        for listening in sockets.secure_sockets or sockets.insecure_sockets:
            listening.listen(config.backlog)
    return result


def _refuse_taken_port(config: Config) -> None:
    """SO_REUSEPORT would let us share a port another registry already serves; bind once
    without it first, so a taken port is an error as it is with a single worker."""
    probe = Config()
    probe.bind = config.bind
    for sock in probe.create_sockets().insecure_sockets:
        sock.close()


@contextlib.contextmanager
def metrics_directory() -> Iterator[None]:
    """This instance's private multiprocess metrics directory, removed when it stops."""
    path = private_metrics_dir()
    try:
        yield
    finally:
        remove_metrics_dir(path)


def _metrics_listener(settings: Settings) -> MetricsListener | None:
    if settings.metrics_addr is None or not settings.metrics_enabled:
        return None
    try:
        return MetricsListener(settings.metrics_addr)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {settings.metrics_addr} (-metricsaddr): {exc.strerror}"
        ) from None


def serve(settings: Settings) -> int:
    """Bind, install the stop signals, announce, then run; returns the exit status.

    Called within `metrics_directory()`, entered before anything imports prometheus_client.
    """
    from registry.wiring import check_local_state, share_token_secret

    settings = share_token_secret(settings)
    check_local_state(settings)
    config = hypercorn_config(settings)
    _check_tls(config, settings)
    per_worker = _bind(config, settings)
    listening = per_worker[0].secure_sockets or per_worker[0].insecure_sockets
    metrics = _metrics_listener(settings)
    from registry.startup import clean_in_background  # imports prometheus_client: not earlier

    clean_in_background(settings)
    if metrics is not None:
        metrics.start()
        announce.info(
            "simple-registry metrics on %s", metrics.url, extra={"fields": {"url": metrics.url}}
        )
    try:
        return _run(settings, config, per_worker, listening)
    finally:
        if metrics is not None:
            metrics.stop()


def _run(
    settings: Settings, config: Config, per_worker: list[Sockets], listening: list[socket.socket]
) -> int:
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()

    def request_stop(*_: object) -> None:
        stop.set()

    # Workers inherit an ignored SIGINT, so Ctrl-C reaches only this process, which stops them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, request_stop)
    scheme = "https" if settings.tls else "http"
    for sock in listening:
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
        url = f"{scheme}://{shown}:{port}"
        announce.info("simple-registry listening on %s", url, extra={"fields": {"url": url}})

    if settings.workers == 1:
        signal.signal(signal.SIGINT, request_stop)
        _serve_worker(settings, config, per_worker[0], stop)
        return 0
    processes = [
        ctx.Process(target=_spawned_worker, args=(settings, config, sockets, stop))
        for sockets in per_worker
    ]
    for process in processes:
        process.start()
    signal.signal(signal.SIGINT, request_stop)
    wait([p.sentinel for p in processes])
    stop.set()
    code = 0
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join()
        if process.pid is not None:
            worker_ended(process.pid)
        code = code or (process.exitcode or 0)
    return code
