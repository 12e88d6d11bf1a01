"""`/livez` and `/readyz`: is the process alive, and can it serve requests now.

Both answer without authentication (probes carry no credentials) and say nothing secret: check
names, backend kinds and a one-word reason, never URLs, hosts or error texts (those go to the
log, at warning). `/readyz` runs its checks concurrently, each bounded by a timeout, and
remembers the answer for a second so that a burst of probes costs one round of backend calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.observe.metrics import READY

log = logging.getLogger("registry.health")

CHECK_TIMEOUT = 2.0
CACHE_SECONDS = 1.0
NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True, slots=True)
class Check:
    """One dependency: `probe` returns when it answers and raises when it does not."""

    name: str
    backend: str
    probe: Callable[[], Awaitable[None]]


def directory_probe(*paths: Path) -> Callable[[], Awaitable[None]]:
    """A local directory the registry writes into must exist and be writable (a read-only or
    vanished mount fails here). Run in a thread: a hung network filesystem blocks there."""

    def check() -> None:
        for path in paths:
            if not path.is_dir():
                raise OSError(f"{path} is not a directory")
            if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
                raise OSError(f"{path} is not writable")

    async def probe() -> None:
        await asyncio.to_thread(check)

    return probe


class Health:
    def __init__(
        self,
        checks: Sequence[Check],
        *,
        timeout: float = CHECK_TIMEOUT,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self.checks = tuple(checks)
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._last: tuple[float, bool, dict[str, object]] | None = None

    async def _run(self, check: Check) -> dict[str, str]:
        result = {"backend": check.backend, "status": "ok"}
        try:
            await asyncio.wait_for(check.probe(), self.timeout)
        except TimeoutError:
            result.update(status="fail", reason="timeout")
            log.warning("readiness check %s (%s) timed out", check.name, check.backend)
        except Exception as exc:  # any failure means not ready; the log says which
            result.update(status="fail", reason="unavailable")
            log.warning("readiness check %s (%s) failed: %s", check.name, check.backend, exc)
        READY.labels(check.name).set(1 if result["status"] == "ok" else 0)
        return result

    async def ready(self) -> tuple[bool, dict[str, object]]:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self.cache_seconds:
            return self._last[1], self._last[2]
        results = await asyncio.gather(*(self._run(check) for check in self.checks))
        checks = {check.name: result for check, result in zip(self.checks, results, strict=True)}
        failing = [name for name, result in checks.items() if result["status"] != "ok"]
        ok = not failing
        body: dict[str, object] = {"status": "ready" if ok else "unavailable", "checks": checks}
        if failing:
            body["failing"] = failing
        self._last = (time.monotonic(), ok, body)
        return ok, body


async def livez(request: Request) -> Response:
    """Alive: the worker's event loop answers. Nothing else is checked, on purpose: a backend
    outage must not make an orchestrator restart every instance."""
    return JSONResponse({"status": "alive"}, headers=NO_STORE)


async def readyz(request: Request) -> Response:
    health: Health = request.app.state.health
    ok, body = await health.ready()
    return JSONResponse(body, status_code=200 if ok else 503, headers=NO_STORE)
