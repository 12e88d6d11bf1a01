"""`/v2/<name>/blobs/<digest>`: GET, HEAD (with ranges) and DELETE."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from registry.api.common import Services, refuse_cache_writes, repository, services
from registry.api.ranges import parse_range
from registry.auth.scopes import Need
from registry.model.blobs import Redirect
from registry.observe import events
from registry.oci.digests import Digest
from registry.oci.errors import BlobUnknown


@dataclass(frozen=True, slots=True)
class _Answer:
    """What GET and HEAD both answer: the status, the headers and the bytes they describe."""

    digest: Digest
    status: int
    headers: dict[str, str]
    start: int
    length: int


class Blob(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        """The bytes, or a redirect to the store when the registry is configured for it (the
        client sends its Range again there, and the store answers it the same way). Under a
        pull-through cache, a blob that is not here comes from the upstream (`_fetched`)."""
        name, digest, svc = await _allowed(request)
        try:
            answer = await _described(request, svc, name, digest)
        except BlobUnknown:
            fetched = await _fetched(request, svc, name, digest)
            if fetched is not None:
                return fetched
            answer = await _described(request, svc, name, digest)  # stored meanwhile
        else:
            svc.mirror.count_blob_hit(name)
        blobs = svc.registry.blobs
        found = await blobs.read(answer.digest, answer.start, answer.length)
        if isinstance(found, Redirect):
            headers = {"Location": found.url, "Docker-Content-Digest": str(answer.digest)}
            return Response(status_code=307, headers=headers)
        events.pulled("blob")
        return StreamingResponse(found, status_code=answer.status, headers=answer.headers)

    async def head(self, request: Request) -> Response:
        """The headers of the GET, from the index and the size alone: the store is not read.
        A 200 vouches for the blob (docs/gc.md): a client that found it may name it in a
        manifest within the garbage collector's grace window."""
        name, digest, svc = await _allowed(request)
        try:
            answer = await _described(request, svc, name, digest, vouch=True)
        except BlobUnknown:
            upstream = svc.mirror.serving(name)
            if upstream is None:
                raise
            size = await svc.mirror.blob_size(upstream, name, digest)
            headers = _headers(digest, size) | {"Content-Length": str(size)}
            return Response(headers=headers)  # not stored, so not vouched for
        return Response(status_code=answer.status, headers=answer.headers)

    async def delete(self, request: Request) -> Response:
        name = repository(request)
        svc = services(request)
        await svc.gate.require(request, Need("blobs", name, "DELETE"))
        refuse_cache_writes(request, name)
        digest = Digest.parse(request.path_params["digest"])
        await svc.registry.blobs.unlink(name, digest)
        return Response(status_code=202, headers={"Docker-Content-Digest": str(digest)})


async def _fetched(request: Request, svc: Services, name: str, digest: Digest) -> Response | None:
    """A blob that is not here, under a pull-through cache: the upstream's bytes as the
    cache fetches them (or a `Range` of them straight from the upstream); None when it is
    stored here (meanwhile, or for another repository and now linked). BLOB_UNKNOWN for a
    name no cache serves."""
    upstream = svc.mirror.serving(name)
    if upstream is None:
        raise BlobUnknown(detail={"digest": str(digest)})
    byte_range = request.headers.get("range")
    if byte_range is not None:
        part = await svc.mirror.blob_range(upstream, name, digest, byte_range)
    else:
        part = await svc.mirror.blob(upstream, name, digest)
    if part is None:
        return None
    headers = _headers(digest, part.size)
    if part.size is not None:
        headers["Content-Length"] = str(part.size)
    if part.content_range is not None:
        headers["Content-Range"] = part.content_range
    events.pulled("blob")
    return StreamingResponse(part.chunks, status_code=part.status, headers=headers)


async def _allowed(request: Request) -> tuple[str, Digest, Services]:
    """The repository and digest, once the caller may read blobs there."""
    name = repository(request)
    svc = services(request)
    await svc.gate.require(request, Need.read("blobs", name, verb=request.method))
    return name, Digest.parse(request.path_params["digest"]), svc


def _headers(digest: Digest, size: int | None) -> dict[str, str]:
    return {
        "Docker-Content-Digest": str(digest),
        "Accept-Ranges": "bytes" if size is not None else "none",
        "Content-Type": "application/octet-stream",
        "ETag": f'"{digest}"',
        "Cache-Control": "max-age=31536000",
    }


async def _described(
    request: Request, svc: Services, name: str, digest: Digest, *, vouch: bool = False
) -> _Answer:
    """The checks and headers of a GET or HEAD once the reader's right is checked: the link,
    the range."""
    blobs = svc.registry.blobs
    size = await (blobs.vouch(name, digest) if vouch else blobs.size(name, digest))
    headers = _headers(digest, size)
    status, start, length = 200, 0, size
    range_header = request.headers.get("range")
    if range_header is not None:
        start, end = parse_range(range_header, size)
        length = end - start + 1
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(length)
    return _Answer(digest, status, headers, start, length)
