"""Routing a repository name to its pull-through cache and to the name its upstream knows,
and containerd's `?ns=<host>` back to a local name."""

from __future__ import annotations

import re

import pytest

from registry.config.model import PullThroughCache, Upstream
from registry.proxy.routing import (
    NotRouted,
    RoutingError,
    UnknownNamespace,
    cache_for,
    cache_for_namespace,
    in_order,
    upstream_name,
)


def cache(
    name: str, scopes: tuple[str, ...], prefix: str = "", hosts: tuple[str, ...] = ()
) -> PullThroughCache:
    upstream = Upstream(url=f"https://{name}.example", hosts=hosts)
    return PullThroughCache(name, upstream, tuple(re.compile(s) for s in scopes), prefix=prefix)


HUB = cache("hub", ("^dockerhub/.+$",), "dockerhub/", ("docker.io", "registry-1.docker.io"))
# dockerd's `registry-mirrors`: the daemon asks for library/nginx itself, with no prefix.
MIRROR = cache("mirror", ("^library/.+$",), "", ("mirror.docker.io",))
GHCR = cache("ghcr", ("^ghcr/",), "ghcr/", ("ghcr.io",))
LOCAL_5000 = cache("lab", ("^lab/",), "lab/", ("localhost:5000",))
CACHES = (HUB, MIRROR, GHCR, LOCAL_5000)


@pytest.mark.parametrize(
    ("local", "upstream"),
    [
        ("dockerhub/nginx", "library/nginx"),  # docker.io: one segment is under library/
        ("dockerhub/library/nginx", "library/nginx"),
        ("dockerhub/bitnami/redis", "bitnami/redis"),
        ("dockerhub/a/b/c", "a/b/c"),
    ],
)
def test_upstream_name_of_docker_hub(local: str, upstream: str) -> None:
    assert upstream_name(HUB, local) == upstream


def test_upstream_name_without_docker_io_keeps_one_segment() -> None:
    assert upstream_name(GHCR, "ghcr/app") == "app"
    assert upstream_name(GHCR, "ghcr/org/app") == "org/app"
    assert upstream_name(MIRROR, "library/nginx") == "library/nginx"


def test_upstream_name_with_no_prefix_and_docker_io() -> None:
    hub = cache("plain", (".*",), "", ("docker.io",))
    assert upstream_name(hub, "nginx") == "library/nginx"
    assert upstream_name(hub, "library/nginx") == "library/nginx"


@pytest.mark.parametrize(
    ("target", "local"),
    [
        (HUB, "ghcr/app"),  # not under the prefix
        (HUB, "dockerhub/"),  # the prefix alone is no name
        (GHCR, "ghcrx/app"),
        (MIRROR, "team/app"),  # under the (empty) prefix, but no scope finds it
    ],
)
def test_upstream_name_of_a_name_the_cache_does_not_serve(
    target: PullThroughCache, local: str
) -> None:
    with pytest.raises(NotRouted, match=re.escape(repr(local))):
        upstream_name(target, local)


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("dockerhub/nginx", HUB),
        ("library/nginx", MIRROR),
        ("ghcr/org/app", GHCR),
        ("lab/x", LOCAL_5000),
        ("team/app", None),
        ("dockerhub", None),
        ("ghcrx/app", None),
    ],
)
def test_cache_for(local: str, expected: PullThroughCache | None) -> None:
    assert cache_for(CACHES, local) is expected


def test_a_scope_outside_the_prefix_does_not_route() -> None:
    # An unanchored scope may be found in names that do not start with the prefix: those
    # are not the cache's, since no upstream name could be made of them.
    loose = cache("loose", ("library",), "hub/")
    assert cache_for([loose], "hub/library/x") is loose
    assert cache_for([loose], "library/x") is None


def test_longest_prefix_first_then_load_order() -> None:
    catch_all = cache("all", (".*",), "")
    first = cache("first", ("^team/",), "team/")
    second = cache("second", ("^team/",), "team/")
    deeper = cache("deeper", ("^team/special/",), "team/special/")
    caches = [catch_all, first, second, deeper]
    assert [c.name for c in in_order(caches)] == ["deeper", "first", "second", "all"]
    assert cache_for(caches, "team/special/x") is deeper
    assert cache_for(caches, "team/x") is first
    assert cache_for(caches, "other/x") is catch_all
    assert cache_for([second, first], "team/x") is second


@pytest.mark.parametrize(
    ("ns", "remote", "expected", "local"),
    [
        ("docker.io", "library/nginx", HUB, "dockerhub/library/nginx"),
        ("Docker.IO", "library/nginx", HUB, "dockerhub/library/nginx"),
        ("registry-1.docker.io", "bitnami/redis", HUB, "dockerhub/bitnami/redis"),
        ("ghcr.io", "org/app", GHCR, "ghcr/org/app"),
        ("localhost:5000", "x", LOCAL_5000, "lab/x"),
        ("mirror.docker.io", "library/alpine", MIRROR, "library/alpine"),
    ],
)
def test_cache_for_namespace(ns: str, remote: str, expected: PullThroughCache, local: str) -> None:
    assert cache_for_namespace(CACHES, ns, remote) == (expected, local)
    # The local name routes back to the same cache, and to the same upstream name.
    assert cache_for(CACHES, local) is expected
    assert upstream_name(expected, local) == remote


@pytest.mark.parametrize("ns", ["quay.io", "localhost", "localhost:5001", "docker.io.evil", ""])
def test_a_host_no_cache_lists_is_refused(ns: str) -> None:
    with pytest.raises(UnknownNamespace) as caught:
        cache_for_namespace(CACHES, ns, "library/nginx")
    assert caught.value.namespace == ns
    assert f"no pull-through cache is configured for host {ns!r}" == str(caught.value)
    assert isinstance(caught.value, RoutingError)


def test_a_remote_name_outside_the_host_cache_scopes_is_refused() -> None:
    with pytest.raises(NotRouted, match="no cache serves"):
        cache_for_namespace(CACHES, "mirror.docker.io", "bitnami/redis")  # ^library/ only


def test_a_remote_name_that_a_longer_prefix_takes_is_refused() -> None:
    # A host's cache never fills another cache's local name.
    everything = cache("everything", (".*",), "", ("docker.io",))
    team = cache("team", ("^team/",), "team/", ("team.example",))
    with pytest.raises(NotRouted, match="which cache 'team' serves, not cache 'everything'"):
        cache_for_namespace([everything, team], "docker.io", "team/app")
    assert cache_for_namespace([everything, team], "docker.io", "other/app") == (
        everything,
        "other/app",
    )
