"""`/v2/<name>/manifests/<reference>`: GET, HEAD, PUT and DELETE by tag or digest."""

from __future__ import annotations

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response

from registry.api.common import Services, refuse_cache_writes, repository, services
from registry.auth.scopes import Need
from registry.numbers import whole_number
from registry.observe import events
from registry.oci.digests import Digest, is_digest
from registry.oci.errors import DigestInvalid, ManifestUnknown, PayloadTooLarge, TagInvalid
from registry.oci.manifests import MAX_MANIFEST_BYTES
from registry.oci.names import validate_tag
from registry.proxy.mirror import Served


class Manifest(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        svc, served = await _resolved(request)
        content = await svc.registry.manifests.content(served.ref)
        events.pulled("manifest")
        return Response(content, headers=_described(served))

    async def head(self, request: Request) -> Response:
        """The headers of the GET, without reading the manifest itself."""
        _, served = await _resolved(request)
        return Response(headers=_described(served))

    async def put(self, request: Request) -> Response:
        """Store a manifest under a tag or its digest; the reference is checked by the model,
        which refuses an invalid one with 400 (TAG_INVALID or DIGEST_INVALID)."""
        name, reference, svc = await _allowed(request)
        refuse_cache_writes(request, name)
        content = await _read_limited(request, MAX_MANIFEST_BYTES)
        media_type = request.headers.get("content-type")
        stored = await svc.registry.manifests.put(name, reference, content, media_type)
        events.pushed("manifest")
        headers = {
            "Location": f"/v2/{name}/manifests/{stored.ref.digest}",
            "Docker-Content-Digest": str(stored.ref.digest),
            "Content-Length": "0",
        }
        if stored.manifest.subject is not None:
            headers["OCI-Subject"] = str(stored.manifest.subject.digest)
        return Response(status_code=201, headers=headers)

    async def delete(self, request: Request) -> Response:
        name, reference, svc = await _allowed(request)
        refuse_cache_writes(request, name)
        _must_name_a_manifest(reference)
        await svc.registry.manifests.delete(name, reference)
        return Response(status_code=202, headers={"Content-Length": "0"})


async def _allowed(request: Request) -> tuple[str, str, Services]:
    """The repository and reference, once the caller may use this verb on them (by tag, a
    binding may be scoped to `name:tag`)."""
    name = repository(request)
    reference = request.path_params["reference"]
    svc = services(request)
    tag = None if is_digest(reference) else reference
    await svc.gate.require(request, Need("manifests", name, request.method, tag))
    return name, reference, svc


async def _resolved(request: Request) -> tuple[Services, Served]:
    """What a GET or HEAD names, once the caller may read it: under a pull-through cache,
    as the cache has it (fetched or revalidated as needed, see `registry.proxy.mirror`)."""
    name, reference, svc = await _allowed(request)
    _must_name_a_manifest(reference)
    upstream = svc.mirror.serving(name)
    if upstream is not None:
        return svc, await svc.mirror.manifest(upstream, name, reference)
    return svc, Served(await svc.registry.manifests.resolve(name, reference))


def _described(served: Served) -> dict[str, str]:
    ref = served.ref
    headers = {
        "Docker-Content-Digest": str(ref.digest),
        "Content-Type": ref.media_type,
        "Content-Length": str(ref.size),
        "ETag": f'"{ref.digest}"',
    }
    if served.warning is not None:
        headers["Warning"] = served.warning
    return headers


def _must_name_a_manifest(reference: str) -> None:
    """A reference that is neither a valid tag nor a valid digest names no manifest: 404.

    The spec lists only 404 as the failure of a manifest GET or HEAD (its conformance suite
    asks for `.INVALID_MANIFEST_NAME` and wants 404), and to a client a 400 on DELETE means
    "deletion is disabled here", which would be untrue. Only PUT, which would create the name,
    refuses it with 400 TAG_INVALID or DIGEST_INVALID.
    """
    kind = "digest" if is_digest(reference) else "tag"
    try:
        if kind == "digest":
            Digest.parse(reference)
        else:
            validate_tag(reference)
    except (DigestInvalid, TagInvalid):
        raise ManifestUnknown(
            f"{reference[:200]!r} is not a valid {kind}, so no manifest has that name",
            detail={"reference": reference[:200]},
        ) from None


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
