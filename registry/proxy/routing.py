"""Which pull-through cache a repository name belongs to, and the name its upstream knows.

Pure functions over the loaded `PullThroughCache` manifests; no I/O. Every request works on a
**local** name (the one RBAC checks and storage keeps); routing maps it to one cache and to the
upstream name, or, for containerd's `?ns=<host>`, maps the host and the upstream name back to
a local name, which then routes like any other. So the cache a request fills is always the one
`cache_for` gives its local name, whichever way the request named it.

A cache serves a local name when the name starts with the cache's `prefix` **and** one of its
`scopes` is found in it. When several caches do, the one with the longest prefix wins (the
most specific, as in a routing table); among equal prefixes, the first in load order (folder
by folder, files in lexical order, documents in order), as in the Go simple-registry whose
caches had no prefix. Whether two caches' regexes overlap cannot be decided in general, so an
overlap is not an error: this order settles it, and `check-config` lists the caches in it.

Only hosts listed in a cache's `hosts` are ever mapped: a request cannot make the registry
dial a host it names.
"""

from __future__ import annotations

from collections.abc import Sequence

from registry.config.model import PullThroughCache

# The host of Docker Hub's image references, whose one-segment names are `library/<name>`.
DOCKER_HUB = "docker.io"


class RoutingError(Exception):
    """A name or a host that no cache answers for; the message says which and why."""


class UnknownNamespace(RoutingError):
    """`?ns=<host>` names a host that no cache lists in its `hosts`."""

    def __init__(self, namespace: str) -> None:
        super().__init__(f"no pull-through cache is configured for host {namespace!r}")
        self.namespace = namespace


class NotRouted(RoutingError):
    """A name that the cache asked for does not serve."""


def in_order(caches: Sequence[PullThroughCache]) -> list[PullThroughCache]:
    """`caches` in the order routing tries them: longest prefix first, then load order."""
    return sorted(caches, key=lambda cache: -len(cache.prefix))  # sorted() is stable


def serves(cache: PullThroughCache, local_name: str) -> bool:
    """Whether the name is under the cache's prefix and one of its scopes is found in it."""
    return local_name.startswith(cache.prefix) and any(
        scope.search(local_name) for scope in cache.scopes
    )


def cache_for(caches: Sequence[PullThroughCache], local_name: str) -> PullThroughCache | None:
    """The cache serving `local_name`, or None (the name is only what is pushed here)."""
    return next((cache for cache in in_order(caches) if serves(cache, local_name)), None)


def upstream_name(cache: PullThroughCache, local_name: str) -> str:
    """The name the upstream knows: the local name less the cache's prefix, and for Docker
    Hub (`docker.io` among the cache's hosts) a one-segment name under `library/`, as docker
    itself writes `nginx` for `library/nginx`."""
    if not serves(cache, local_name):
        raise NotRouted(f'PullThroughCache "{cache.name}" does not serve {local_name!r}')
    remote = local_name[len(cache.prefix) :]
    if not remote:
        raise NotRouted(f"{local_name!r} is the prefix of cache {cache.name!r}, not a name")
    if DOCKER_HUB in cache.upstream.hosts and "/" not in remote:
        return f"library/{remote}"
    return remote


def cache_for_namespace(
    caches: Sequence[PullThroughCache], namespace: str, remote_name: str
) -> tuple[PullThroughCache, str]:
    """containerd's `GET /v2/<remote_name>/...?ns=<namespace>`: the cache listing the host
    (compared in lower case) and the local name, its prefix followed by the remote name.

    `UnknownNamespace` when no cache lists the host; `NotRouted` when the local name is not
    that cache's (its scopes miss it, or a cache with a longer prefix takes it), so that a
    request naming a host never fills another cache than its local name routes to."""
    host = namespace.strip().lower()
    cache = next((cache for cache in caches if host in cache.upstream.hosts), None)
    if cache is None:
        raise UnknownNamespace(namespace)
    local_name = cache.prefix + remote_name
    routed = cache_for(caches, local_name)
    if routed is not cache:
        where = f"cache {routed.name!r}" if routed is not None else "no cache"
        raise NotRouted(
            f"{remote_name!r} from {host!r} would be the local name {local_name!r}, which "
            f"{where} serves, not cache {cache.name!r} of that host"
        )
    return cache, local_name


__all__ = [
    "DOCKER_HUB",
    "NotRouted",
    "RoutingError",
    "UnknownNamespace",
    "cache_for",
    "cache_for_namespace",
    "in_order",
    "serves",
    "upstream_name",
]
