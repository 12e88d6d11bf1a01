"""`/v2/<name>/blobs/uploads/`: start (or monolithic, or mount), PATCH, PUT, status, cancel."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from starlette.requests import Request
from starlette.responses import Response

from registry.api.common import body, repository, services
from registry.api.ranges import parse_content_range
from registry.auth.scopes import Need
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


async def start(request: Request) -> Response:
    name = repository(request)
    svc = services(request)
    query = request.query_params
    mount = query.get("mount")
    if mount is not None:
        source = query.get("from")
        needs = [Need("blobs", name, "POST")]
        if source:
            needs.append(Need.read("blobs", validate_name(source)))
        principal = await svc.gate.require(request, *needs)
        digest = Digest.parse(mount)

        async def may_read(candidate: str) -> bool:
            return await svc.gate.may(principal, Need.read("blobs", candidate))

        if await svc.registry.blobs.mount(name, digest, source or None, may_read):
            events.pushed("blob")
            return _created(name, digest)
    else:
        principal = await svc.gate.require(request, Need("blobs", name, "POST"))
        if "digest" in query:
            events.upload("started")
            with _failure_counted():
                digest = Digest.parse(query["digest"])
                await svc.registry.uploads.monolithic(name, digest, body(request))
            events.upload("completed")
            events.pushed("blob")
            return _created(name, digest)

    session = await svc.registry.uploads.start(name, principal.name)
    events.upload("started")
    headers = _session_headers(name, session)
    headers["OCI-Chunk-Min-Length"] = str(CHUNK_MIN_LENGTH)
    return Response(status_code=202, headers=headers)


async def session(request: Request) -> Response:
    name = repository(request)
    svc = services(request)
    upload_id = request.path_params["upload_id"]
    # Every step of an upload is pushing: the status GET (and HEAD, which is that status and
    # nothing else, whatever its query says) and the cancelling DELETE are checked as POST (the
    # seed wanted DELETE rights to cancel one's own upload). Only the principal who opened the
    # session may continue it.
    verb = "POST" if request.method in ("GET", "HEAD", "DELETE") else request.method
    principal = await svc.gate.require(request, Need("blobs", name, verb))
    uploads = svc.registry.uploads

    if request.method in ("GET", "HEAD"):
        found = await uploads.get(name, upload_id, principal.name)
        headers = _session_headers(name, found)
        return Response(status_code=204, headers=headers)

    if request.method == "DELETE":
        await uploads.cancel(name, upload_id, principal.name)
        events.upload("cancelled")
        return Response(status_code=204, headers={"Content-Length": "0"})

    if request.method == "PATCH":
        with _failure_counted():
            content_range = parse_content_range(request.headers.get("content-range"))
            found = await uploads.append(
                name, upload_id, principal.name, body(request), content_range
            )
        return Response(status_code=202, headers=_session_headers(name, found))

    # PUT: the final (possibly empty) chunk and the digest that must match everything.
    with _failure_counted():
        raw = request.query_params.get("digest")
        if not raw:
            raise DigestInvalid("the digest query parameter is required to complete an upload")
        digest = Digest.parse(raw)
        await uploads.finish(name, upload_id, principal.name, digest, body(request))
    events.upload("completed")
    events.pushed("blob")
    return _created(name, digest)
