"""`/v2/<name>/blobs/uploads/`: start (or monolithic, or mount); then, per session, the status
(GET, HEAD), a chunk (PATCH), the completion (PUT) and the cancel (DELETE)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response

from registry.api.common import body, refuse_cache_writes, repository, services
from registry.api.ranges import parse_content_range
from registry.auth.scopes import Need, Principal
from registry.model.uploads import CHUNK_MIN_LENGTH, Session, upload_range
from registry.observe import events
from registry.oci.digests import Digest
from registry.oci.errors import BlobUploadUnknown, DigestInvalid
from registry.oci.names import validate_name


def _session_headers(name: str, session: Session) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{session.id}",
        "Range": upload_range(session),
        "Docker-Upload-UUID": session.id,
        "Content-Length": "0",
    }


def _created(name: str, digest: Digest) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": str(digest),
            "Content-Length": "0",
        },
    )


@contextlib.contextmanager
def _failure_counted() -> Iterator[None]:
    """A chunk or a completion that is refused or breaks is a failed upload step (counted in
    metrics); an upload id that does not exist is not an upload that failed."""
    try:
        yield
    except BlobUploadUnknown:
        raise
    except Exception:
        events.upload("failed")
        raise


class UploadStart(HTTPEndpoint):
    async def post(self, request: Request) -> Response:
        """A mount (`?mount=`), a monolithic upload (`?digest=`), or a new session; a mount
        that finds no readable copy opens a session too, as the spec asks."""
        name = repository(request)
        svc = services(request)
        query = request.query_params
        if "mount" in query:
            principal, mounted = await _mount(request, name, query["mount"], query.get("from"))
            if mounted is not None:
                return _created(name, mounted)
        else:
            principal = await svc.gate.require(request, Need("blobs", name, "POST"))
            refuse_cache_writes(request, name)
            if "digest" in query:
                return await _monolithic(request, name, query["digest"])
        session = await svc.registry.uploads.start(name, principal.name)
        events.upload("started")
        headers = _session_headers(name, session)
        headers["OCI-Chunk-Min-Length"] = str(CHUNK_MIN_LENGTH)
        return Response(status_code=202, headers=headers)


async def _mount(
    request: Request, name: str, mount: str, source: str | None
) -> tuple[Principal, Digest | None]:
    """Link the blob from `source` (or any repository the caller may read): the caller, and
    the digest when it was linked."""
    svc = services(request)
    needs = [Need("blobs", name, "POST")]
    if source:
        needs.append(Need.read("blobs", validate_name(source)))
    principal = await svc.gate.require(request, *needs)
    refuse_cache_writes(request, name)
    digest = Digest.parse(mount)

    async def may_read(candidate: str) -> bool:
        return await svc.gate.may(principal, Need.read("blobs", candidate))

    if await svc.registry.blobs.mount(name, digest, source or None, may_read):
        events.pushed("blob")
        return principal, digest
    return principal, None


async def _monolithic(request: Request, name: str, raw_digest: str) -> Response:
    """The whole blob in the POST's body, checked against `raw_digest`."""
    events.upload("started")
    with _failure_counted():
        digest = Digest.parse(raw_digest)
        await services(request).registry.uploads.monolithic(name, digest, body(request))
    events.upload("completed")
    events.pushed("blob")
    return _created(name, digest)


class Upload(HTTPEndpoint):
    """One upload session. Every step of an upload is pushing: the status GET and the
    cancelling DELETE are checked as POST (cancelling one's own upload needs no right to
    delete). Only the principal who opened the session may continue it. HEAD is answered by
    `get`: it reports the status, and never completes or cancels anything."""

    async def get(self, request: Request) -> Response:
        name, upload_id, user = await _continued(request, "POST")
        found = await services(request).registry.uploads.get(name, upload_id, user)
        return Response(status_code=204, headers=_session_headers(name, found))

    async def patch(self, request: Request) -> Response:
        """One chunk, appended where the session ends (a Content-Range must say so)."""
        name, upload_id, user = await _continued(request, "PATCH")
        uploads = services(request).registry.uploads
        with _failure_counted():
            content_range = parse_content_range(request.headers.get("content-range"))
            found = await uploads.append(name, upload_id, user, body(request), content_range)
        return Response(status_code=202, headers=_session_headers(name, found))

    async def put(self, request: Request) -> Response:
        """The final (possibly empty) chunk and the digest that must match everything."""
        name, upload_id, user = await _continued(request, "PUT")
        uploads = services(request).registry.uploads
        with _failure_counted():
            raw = request.query_params.get("digest")
            if not raw:
                raise DigestInvalid("the digest query parameter is required to complete an upload")
            digest = Digest.parse(raw)
            await uploads.finish(name, upload_id, user, digest, body(request))
        events.upload("completed")
        events.pushed("blob")
        return _created(name, digest)

    async def delete(self, request: Request) -> Response:
        name, upload_id, user = await _continued(request, "POST")
        await services(request).registry.uploads.cancel(name, upload_id, user)
        events.upload("cancelled")
        return Response(status_code=204, headers={"Content-Length": "0"})


async def _continued(request: Request, verb: str) -> tuple[str, str, str]:
    """The repository, the upload id and the caller's name, once the caller may `verb`."""
    name = repository(request)
    principal = await services(request).gate.require(request, Need("blobs", name, verb))
    refuse_cache_writes(request, name)
    return name, request.path_params["upload_id"], principal.name
