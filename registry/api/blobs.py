"""`/v2/<name>/blobs/<digest>`: GET, HEAD (with ranges) and DELETE."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from registry.api.common import repository, services
from registry.api.ranges import parse_range
from registry.auth.scopes import Need
from registry.observe import events
from registry.oci.digests import Digest
from registry.oci.errors import BlobUnknown
from registry.storage.base import ObjectNotFound


async def blob(request: Request) -> Response:
    name = repository(request)
    svc = services(request)
    if request.method == "DELETE":
        await svc.gate.require(request, Need("blobs", name, "DELETE"))
        digest = Digest.parse(request.path_params["digest"])
        await svc.registry.blobs.unlink(name, digest)
        return Response(status_code=202, headers={"Docker-Content-Digest": str(digest)})

    await svc.gate.require(request, Need.read("blobs", name, verb=request.method))
    digest = Digest.parse(request.path_params["digest"])
    size = await svc.registry.blobs.size(name, digest)
    headers = {
        "Docker-Content-Digest": str(digest),
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "ETag": f'"{digest}"',
        "Cache-Control": "max-age=31536000",
    }
    status, start, length = 200, 0, size
    range_header = request.headers.get("range")
    if range_header is not None:
        start, end = parse_range(range_header, size)
        length = end - start + 1
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    s3 = svc.settings.s3
    if s3 is not None and s3.redirect:
        try:
            url = await svc.registry.blobs.direct_url(digest, s3.redirect_seconds)
        except ObjectNotFound:  # linked, but its content is gone from the store
            raise BlobUnknown(detail={"digest": str(digest)}) from None
        if url is not None:
            # The client sends its Range again to S3, which answers it the same way.
            redirect = {"Location": url, "Docker-Content-Digest": str(digest)}
            return Response(status_code=307, headers=redirect)
    chunks = svc.registry.blobs.stream(digest, start, length)
    try:
        # Storage answers before any header goes out: with the link and the size known from
        # the index and memory, this read is the first time a pull asks the store, and a
        # store that is away must give a 503, not a 200 cut short.
        first = await anext(chunks, b"")
    except ObjectNotFound:
        raise BlobUnknown(detail={"digest": str(digest)}) from None
    events.pulled("blob")
    return StreamingResponse(_after(first, chunks), status_code=status, headers=headers)


async def _after(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:  # a client that went away: release the file or the S3 connection now
        close = getattr(rest, "aclose", None)
        if close is not None:
            await close()
