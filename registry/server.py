"""Run the application under Hypercorn, in one process or as a group of worker processes.

The listening sockets are bound and put into listen state here, before any worker starts, so
the "listening on" line is true when printed: a client that connects right after it waits in
the backlog instead of being refused. Workers are spawned processes sharing those sockets.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import socket
import sys
from dataclasses import replace
from functools import partial
from multiprocessing.connection import wait
from multiprocessing.synchronize import Event as EventType
from typing import Any

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import check_multiprocess_shutdown_event, wrap_app

from registry.config.settings import ConfigError, Settings

log = logging.getLogger("registry.server")
RECV_BYTES = 1024 * 1024


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [settings.addr]
    config.workers = settings.workers
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
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

    from registry.api.app import create_app

    # Hypercorn reads 64 KiB at a time; layer uploads are megabytes, and every read costs a
    # trip through h11 and the ASGI queue. 1 MiB reads measured +10-20% on monolithic pushes.
    tcp_server.MAX_RECV = RECV_BYTES

    app = wrap_app(create_app(settings), config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
    trigger: Any = partial(check_multiprocess_shutdown_event, shutdown_event, asyncio.sleep)
    asyncio.run(worker_serve(app, config, sockets=sockets, shutdown_trigger=trigger))


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


def _share_token_secret(settings: Settings) -> Settings:
    """With Redis and no configured key, the token secret lives in Redis: every worker of
    every host must sign and verify with the same one."""
    if settings.redis is None or settings.token_secret or settings.token_key_file:
        return settings
    from registry.coord.base import CoordinatorUnavailable
    from registry.coord.redis import shared_secret

    try:
        secret = shared_secret(settings.redis.url, "token-secret", prefix=settings.redis.key_prefix)
    except CoordinatorUnavailable as exc:
        raise ConfigError(f"{exc} (or give -tokensecret)") from None
    return replace(settings, token_secret=secret)


def serve(settings: Settings) -> int:
    """Bind, install the stop signals, announce, then run; returns the exit status."""
    settings = _share_token_secret(settings)
    config = hypercorn_config(settings)
    per_worker = _worker_sockets(config, settings.workers)
    listening = per_worker[0].secure_sockets or per_worker[0].insecure_sockets

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
        print(
            f"simple-registry listening on {scheme}://{shown}:{port}", file=sys.stderr, flush=True
        )

    if settings.workers == 1:
        signal.signal(signal.SIGINT, request_stop)
        _serve_worker(settings, config, per_worker[0], stop)
        return 0
    processes = [
        ctx.Process(target=_serve_worker, args=(settings, config, sockets, stop))
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
        code = code or (process.exitcode or 0)
    return code
