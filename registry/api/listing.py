"""`/v2/`, `/v2/_catalog`, `/v2/<name>/tags/list` and `/v2/<name>/referrers/<digest>`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.api.common import link_header, page_params, repository, services
from registry.auth.scopes import Need
from registry.model.listing import paginate
from registry.oci import mediatypes as mt
from registry.oci.digests import Digest

CATALOG_DEFAULT_PAGE = 1000


async def ping(request: Request) -> Response:
    """200 for an authenticated caller; 401 with the challenge for anyone without credentials.

    Even where anonymous access is on: clients ping `/v2/` first to learn how to log in, and a
    200 would tell docker and skopeo that the credentials they hold are not needed, so they
    would push as anonymous. Anonymous clients follow the challenge to an anonymous token.
    """
    gate = services(request).gate
    if "authorization" not in request.headers:
        raise gate.challenge(request, (), "authentication required")
    await gate.identify(request)
    return JSONResponse({})


async def catalog(request: Request) -> Response:
    svc = services(request)
    principal = await svc.gate.require(request, Need.catalog())
    n, last = page_params(request, CATALOG_DEFAULT_PAGE)

    async def visible(name: str) -> bool:
        return await svc.gate.may_list(principal, Need.read("tags", name)) or (
            await svc.gate.may_list(principal, Need.read("manifests", name))
        )

    assert n is not None  # the catalog always has a page size
    page = await svc.registry.listing.catalog(visible, n, last)
    return JSONResponse({"repositories": page.items}, headers=link_header("/v2/_catalog", page, n))


async def tags(request: Request) -> Response:
    name = repository(request)
    svc = services(request)
    await svc.gate.require(request, Need.read("tags", name))
    n, last = page_params(request, None)
    upstream = svc.mirror.serving(name)
    if upstream is None:
        page = await svc.registry.listing.tags(name, n, last)
    else:
        page = paginate(await svc.mirror.tags(upstream, name), n, last)
    return JSONResponse(
        {"name": name, "tags": page.items},
        headers=link_header(f"/v2/{name}/tags/list", page, n),
    )


async def referrers(request: Request) -> Response:
    name = repository(request)
    svc = services(request)
    await svc.gate.require(request, Need.read("manifests", name))
    subject = Digest.parse(request.path_params["digest"])
    artifact_type = request.query_params.get("artifactType")
    upstream = svc.mirror.serving(name)
    if upstream is None:
        descriptors = await svc.registry.manifests.referrers(name, subject, artifact_type)
    else:
        descriptors = await svc.mirror.referrers(upstream, name, subject, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type is not None else {}
    return JSONResponse(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors},
        headers=headers,
        media_type=mt.OCI_INDEX,
    )
