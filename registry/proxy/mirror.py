"""The pull-through caches as the API sees them: routing, and what a pull under a cache does.

- **Manifests by tag**: served from here while the tag was confirmed within the cache's `ttl`.
  After it, one upstream `HEAD` (free on Docker Hub's pull limit): the same digest confirms the
  tag; another one is fetched with `GET`, verified, stored, and the tag moves. When the upstream
  fails (down, `5xx`, `429`), the tag is still served until `ttl + maxStale` after it was last
  confirmed, with a `Warning` header naming the cache and the age; past that, or never cached,
  `503`. An upstream that says the tag does not exist makes it `404`.
- **Manifests by digest, and blobs**: from here when they are here; otherwise fetched once,
  verified, stored (blobs through `fetch`, teed to the client). A blob already stored for
  another repository is linked once the upstream confirms (`HEAD`) that this repository has it,
  so what a name serves is always what its upstream repository holds.
- **Writes** under a cache are refused (`DENIED`): its names hold what the upstream holds;
  unless the cache allows pushes (`allowPushes`), where RBAC decides as anywhere, and a tag
  pushed here is served from here without asking the upstream.

The API checks RBAC on the local name before it calls anything here, as for pushed content:
the upstream credentials never widen what a local user may read.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import httpx

from registry.config.model import PullThroughCache
from registry.coord.base import Coordinator
from registry.model.manifests import ManifestRef, TagState
from registry.model.registry import Registry
from registry.observe import events
from registry.oci.digests import Digest, is_digest
from registry.oci.errors import (
    BlobUnknown,
    Denied,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    Unavailable,
)
from registry.proxy import routing
from registry.proxy.fetch import Fetches
from registry.proxy.upstream import (
    FetchedManifest,
    Upstream,
    UpstreamNotFound,
    UpstreamUnavailable,
)

T = TypeVar("T")

# A blob miss waits for a fetch under way elsewhere, then looks again; this many times at most.
MISS_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class Served:
    """A manifest to answer with, and the `Warning` to add when it is served stale."""

    ref: ManifestRef
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class BlobBytes:
    """A blob answered from the upstream: its size (None if the upstream did not say), the
    status and `Content-Range` to answer with, and its chunks."""

    size: int | None
    chunks: AsyncIterator[bytes]
    status: int = 200
    content_range: str | None = None


class Mirror:
    def __init__(
        self,
        registry: Registry,
        coord: Coordinator,
        caches: Sequence[PullThroughCache],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._registry = registry
        self._caches = routing.in_order(caches)
        self._upstreams = {cache.name: Upstream(cache, transport) for cache in caches}
        self._fetches = Fetches(registry, coord)

    async def close(self) -> None:
        await self._fetches.close()
        for upstream in self._upstreams.values():
            await upstream.close()

    # --- routing

    def local_name(self, name: str, namespace: str | None) -> str:
        """The local name a request means: `name` itself, or for containerd's `?ns=<host>`
        the name under the cache that lists the host (404 NAME_UNKNOWN when none does: the
        registry never contacts a host a request names)."""
        if namespace is None:
            return name
        try:
            _, local = routing.cache_for_namespace(self._caches, namespace, name)
        except routing.RoutingError as exc:
            raise NameUnknown(str(exc), detail={"name": name, "ns": namespace[:255]}) from None
        return local

    def serving(self, name: str) -> Upstream | None:
        """The upstream of the cache serving the local name, if one does."""
        cache = routing.cache_for(self._caches, name)
        return self._upstreams[cache.name] if cache is not None else None

    def count_blob_hit(self, name: str) -> None:
        """A blob served from here: a hit when the name is a cache's."""
        cache = routing.cache_for(self._caches, name)
        if cache is not None:
            events.cache_hit(cache.name, "blob")

    def refuse_write(self, name: str) -> None:
        cache = routing.cache_for(self._caches, name)
        if cache is not None and not cache.allow_pushes:
            raise Denied(
                f"{name} is under the pull-through cache {cache.name!r} of "
                f"{cache.upstream.url}: it holds what the upstream holds, and takes no pushes "
                "or deletes",
                detail={"name": name, "cache": cache.name},
            )

    # --- manifests

    async def manifest(self, upstream: Upstream, name: str, reference: str) -> Served:
        remote = routing.upstream_name(upstream.cache, name)
        if is_digest(reference):
            return Served(await self._manifest_by_digest(upstream, name, remote, reference))
        return await self._manifest_by_tag(upstream, name, remote, reference)

    async def _manifest_by_digest(
        self, upstream: Upstream, name: str, remote: str, reference: str
    ) -> ManifestRef:
        manifests = self._registry.manifests
        try:
            found = await manifests.resolve(name, reference)
        except ManifestUnknown:
            pass
        else:
            events.cache_hit(upstream.name, "manifest")
            return found
        events.cache_miss(upstream.name, "manifest")
        fetched = await _upstream_call(upstream.fetch_manifest(remote, reference), reference)
        return await self._store(upstream, name, None, fetched, None)

    async def _manifest_by_tag(
        self, upstream: Upstream, name: str, remote: str, tag: str
    ) -> Served:
        manifests = self._registry.manifests
        state = await manifests.tag_state(name, tag)
        settings = upstream.cache.upstream
        now = time.time()
        if state is not None and state.checked is None:
            events.cache_hit(upstream.name, "manifest")
            return Served(state.ref)  # pushed here (allowPushes), not fetched: never asked
        age = None if state is None or state.checked is None else now - state.checked
        if state is not None and age is not None and age < (settings.ttl_seconds or 0):
            events.cache_hit(upstream.name, "manifest")
            return Served(state.ref)
        try:
            described = await upstream.describe_manifest(remote, tag)
            if state is not None and described.digest == state.ref.digest:
                await manifests.confirm_tag(name, tag, state.ref, now)
                events.cache_hit(upstream.name, "manifest")
                return Served(state.ref)
            events.cache_miss(upstream.name, "manifest")
            fetched = await upstream.fetch_manifest(remote, str(described.digest or tag))
        except UpstreamNotFound as exc:
            raise ManifestUnknown(str(exc), detail={"name": name, "tag": tag}) from None
        except UpstreamUnavailable as exc:
            return self._stale(upstream, state, age, exc)
        return Served(await self._store(upstream, name, tag, fetched, now))

    async def _store(
        self,
        upstream: Upstream,
        name: str,
        tag: str | None,
        fetched: FetchedManifest,
        checked: float | None,
    ) -> ManifestRef:
        """Keep a fetched manifest; one this registry would refuse as a push (malformed, or
        beyond its limits) is the upstream's fault, told as such (502-like 503), not the
        client's 400."""
        try:
            return await self._registry.manifests.store_fetched(
                name, tag, fetched.body, fetched.media_type, fetched.digest, checked
            )
        except ManifestInvalid as exc:
            raise Unavailable(
                f"upstream {upstream.name} sent a manifest this registry cannot keep "
                f"({fetched.digest}): {exc.message}"
            ) from None

    def _stale(
        self,
        upstream: Upstream,
        state: TagState | None,
        age: float | None,
        failure: UpstreamUnavailable,
    ) -> Served:
        """The cached tag while the upstream fails, within `ttl + maxStale` of its last
        confirmation; 503 otherwise."""
        settings = upstream.cache.upstream
        allowed = (settings.ttl_seconds or 0) + settings.max_stale_seconds
        if state is None or age is None:
            raise Unavailable(f"{failure}; nothing cached to serve instead")
        if age > allowed:
            raise Unavailable(
                f"{failure}; the cached copy was last confirmed {age:.0f} s ago, beyond "
                f"ttl + maxStale ({allowed:.0f} s)"
            )
        events.stale_served(upstream.name)
        warning = (
            f'110 simple-registry "stale: cache {upstream.name} could not reach its upstream; '
            f'last confirmed {age:.0f} s ago"'
        )
        return Served(state.ref, warning)

    # --- tags

    async def tags(self, upstream: Upstream, name: str) -> list[str]:
        """The upstream's tags with those cached here; only the cached ones while the upstream
        cannot answer. NAME_UNKNOWN when neither knows the name."""
        try:
            cached = (await self._registry.listing.tags(name, None, None)).items
        except NameUnknown:
            cached = []
        remote = routing.upstream_name(upstream.cache, name)
        try:
            listed = await upstream.tags(remote)
        except UpstreamNotFound:
            if not cached:
                raise NameUnknown(detail={"name": name}) from None
            return cached
        except UpstreamUnavailable:
            if not cached:
                raise NameUnknown(
                    f"{name} is not cached, and upstream {upstream.name} cannot list it now",
                    detail={"name": name},
                ) from None
            return cached
        return sorted({*listed, *cached})

    # --- referrers

    async def referrers(
        self, upstream: Upstream, name: str, subject: Digest, artifact_type: str | None
    ) -> list[dict[str, object]]:
        """The upstream's referrers of `subject` with those cached here (by digest, the cached
        entry first); only the cached ones while the upstream cannot answer."""
        cached = await self._registry.manifests.referrers(name, subject, artifact_type)
        remote = routing.upstream_name(upstream.cache, name)
        try:
            listed = await upstream.referrers(remote, subject)
        except (UpstreamNotFound, UpstreamUnavailable):
            return cached
        if artifact_type is not None:
            listed = [d for d in listed if d.get("artifactType") == artifact_type]
        seen = {d.get("digest") for d in cached}
        return [*cached, *(d for d in listed if d.get("digest") not in seen)]

    # --- blobs

    async def blob_size(self, upstream: Upstream, name: str, digest: Digest) -> int:
        """A `HEAD` of a blob that is not here: the upstream's answer (nothing is fetched)."""
        remote = routing.upstream_name(upstream.cache, name)
        return await _upstream_call(upstream.blob_size(remote, digest), str(digest), blob=True)

    async def blob(self, upstream: Upstream, name: str, digest: Digest) -> BlobBytes | None:
        """A blob that is not here: the client's share of the fetch it starts, or None once it
        is stored here (fetched meanwhile by another request, or linked), to read as usual."""
        remote = routing.upstream_name(upstream.cache, name)
        for _ in range(MISS_ROUNDS):
            if await self._link_stored(upstream, name, remote, digest):
                events.cache_hit(upstream.name, "blob")
                return None
            fetch = await self._fetches.start(upstream, name, remote, digest, client=True)
            if fetch is not None:
                events.cache_miss(upstream.name, "blob")
                size = await fetch.started
                return BlobBytes(size, fetch.client_chunks())
            await self._fetches.wait(upstream.name, digest)
            if await self._registry.blobs.linked(name, digest):
                events.cache_hit(upstream.name, "blob")  # another request's fetch stored it
                return None
        raise Unavailable(f"blob {digest} could not be fetched from {upstream.name}; retry")

    async def blob_range(
        self, upstream: Upstream, name: str, digest: Digest, byte_range: str
    ) -> BlobBytes | None:
        """A `Range` of a blob that is not here: from the upstream at once, while the whole
        blob is fetched into the cache behind it (unless that is under way already); None
        when it is stored here for another repository (now linked), to read as usual."""
        remote = routing.upstream_name(upstream.cache, name)
        if await self._link_stored(upstream, name, remote, digest):
            events.cache_hit(upstream.name, "blob")
            return None
        events.cache_miss(upstream.name, "blob")
        await self._fetches.start(upstream, name, remote, digest, client=False)
        stream = upstream.blob(remote, digest, byte_range)
        answer = await _upstream_call(stream.__aenter__(), str(digest), blob=True)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.chunks:
                    yield chunk
            finally:
                await stream.__aexit__(None, None, None)

        return BlobBytes(answer.size, chunks(), answer.status, answer.content_range)

    async def _link_stored(
        self, upstream: Upstream, name: str, remote: str, digest: Digest
    ) -> bool:
        """Whether the blob is stored here already (for another repository): then linked
        into `name` once the upstream confirms this repository has it."""
        blobs = self._registry.blobs
        if await blobs.linked(name, digest):
            return True
        if not await blobs.stored(digest):
            return False
        await _upstream_call(upstream.blob_size(remote, digest), str(digest), blob=True)
        return await blobs.mount(name, digest, None, _anyone)


async def _anyone(name: str) -> bool:
    """The upstream said the repository holds the blob: any holder's copy is the same bytes."""
    return True


async def _upstream_call(call: Awaitable[T], reference: str, *, blob: bool = False) -> T:
    """The upstream's answer, its failures as the client sees them: 404 with the spec's code
    for what the upstream does not have, 503 when it cannot answer."""
    try:
        return await call
    except UpstreamNotFound as exc:
        if blob:
            raise BlobUnknown(str(exc), detail={"digest": reference}) from None
        raise ManifestUnknown(str(exc), detail={"reference": reference}) from None
    except UpstreamUnavailable as exc:
        raise Unavailable(str(exc)) from None
