"""`/v2/<name>/manifests/<reference>`: GET, HEAD, PUT and DELETE by tag or digest."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from registry.api.common import repository, services
from registry.api.numbers import whole_number
from registry.auth.scopes import Need
from registry.observe import events
from registry.oci.digests import is_digest
from registry.oci.errors import PayloadTooLarge
from registry.oci.manifests import MAX_MANIFEST_BYTES


async def manifest(request: Request) -> Response:
    name = repository(request)
    reference = request.path_params["reference"]
    svc = services(request)
    manifests = svc.registry.manifests
    tag = None if is_digest(reference) else reference
    need = Need("manifests", name, request.method, tag)

    if request.method in ("GET", "HEAD"):
        await svc.gate.require(request, need)
        ref = await manifests.resolve(name, reference)
        headers = {
            "Docker-Content-Digest": str(ref.digest),
            "Content-Type": ref.media_type,
            "Content-Length": str(ref.size),
            "ETag": f'"{ref.digest}"',
        }
        if request.method == "HEAD":
            return Response(headers=headers)
        content = await manifests.content(ref)
        events.pulled("manifest")
        return Response(content, headers=headers)

    if request.method == "DELETE":
        await svc.gate.require(request, need)
        await manifests.delete(name, reference)
        return Response(status_code=202, headers={"Content-Length": "0"})

    await svc.gate.require(request, need)
    content = await _read_limited(request, MAX_MANIFEST_BYTES)
    stored = await manifests.put(name, reference, content, request.headers.get("content-type"))
    events.pushed("manifest")
    headers = {
        "Location": f"/v2/{name}/manifests/{stored.ref.digest}",
        "Docker-Content-Digest": str(stored.ref.digest),
        "Content-Length": "0",
    }
    if stored.manifest.subject is not None:
        headers["OCI-Subject"] = str(stored.manifest.subject.digest)
    return Response(status_code=201, headers=headers)


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing anything over `limit` before or while it arrives."""
    too_large = PayloadTooLarge(f"manifests are limited to {limit} bytes")
    declared = whole_number(request.headers.get("content-length", ""))
    if declared is not None and declared > limit:
        raise too_large
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise too_large
    return bytes(data)
