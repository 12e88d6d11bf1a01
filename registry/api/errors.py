"""Every failure leaves as the distribution-spec error envelope, never as a bare 500 page."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from registry.coord.base import CoordinatorUnavailable, LockTimeout
from registry.oci.errors import (
    BlobUploadInvalid,
    NotFound,
    RegistryError,
    Unavailable,
    Unsupported,
)
from registry.storage.base import StorageUnavailable

log = logging.getLogger("registry.api")


def render(error: RegistryError) -> Response:
    return JSONResponse(error.envelope(), status_code=error.status, headers=error.headers)


async def registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return render(exc)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no route) and 405 (wrong method), in our envelope."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allowed = sorted((exc.headers or {}).get("Allow", "").replace(" ", "").split(","))
        error: RegistryError = Unsupported(
            f"{request.method} is not allowed on {request.url.path}",
            headers={"Allow": ", ".join(a for a in allowed if a)},
        )
    elif exc.status_code == 404:
        error = NotFound(f"no endpoint at {request.url.path}")
    else:
        error = RegistryError(exc.detail, headers=exc.headers)
        error.status = exc.status_code
    return render(error)


async def disconnected(request: Request, exc: Exception) -> Response:
    return render(BlobUploadInvalid("the client closed the connection before the body ended"))


async def lock_timeout(request: Request, exc: Exception) -> Response:
    return render(Unavailable("a lock is held by another request; retry"))


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return render(RegistryError("internal error; the request changed nothing it had not finished"))


async def coordinator_down(request: Request, exc: Exception) -> Response:
    # The client learns only that it may retry; the operator learns why (the message names
    # the host and the failure, never the credentials).
    log.warning("503: %s", exc)
    return render(Unavailable("the coordination service (Redis) is unreachable; retry"))


async def storage_down(request: Request, exc: Exception) -> Response:
    log.warning("503: %s", exc)
    return render(Unavailable("the object store is unreachable; retry"))


HANDLERS = {
    RegistryError: registry_error,
    CoordinatorUnavailable: coordinator_down,
    StorageUnavailable: storage_down,
    HTTPException: http_error,
    ClientDisconnect: disconnected,
    LockTimeout: lock_timeout,
    Exception: unexpected,
}
