"""The rules of a PullThroughCache's hosts, prefix and scopes (`registry.config.caches`)."""

from __future__ import annotations

import pytest

from registry.config.caches import can_match_under, host_problem, literal_head, prefix_problem


@pytest.mark.parametrize(
    ("pattern", "head"),
    [
        ("^dockerhub/.+$", "dockerhub/"),
        ("\\Adockerhub\\/x", "dockerhub/x"),
        ("^a\\.b", "a.b"),
        ("^abc?", "ab"),
        ("^abc*", "ab"),
        ("^abc{2}", "ab"),
        ("^abc+", "abc"),
        ("^ab\\.?", "ab"),
        ("^ab\\d", "ab"),
        ("^[a]b", ""),
        ("^", ""),
        ("^lib$", "lib"),
        ("library", None),  # not anchored
        ("^a|b", None),  # an alternative is not anchored
        ("(?i)^a", None),
    ],
)
def test_literal_head(pattern: str, head: str | None) -> None:
    assert literal_head(pattern) == head


@pytest.mark.parametrize(
    ("pattern", "prefix", "may"),
    [
        ("^hub/x", "hub/", True),
        ("^hu", "hub/", True),
        ("^hub/x$", "hub/", True),
        ("^hub$", "hub/", False),  # the whole name, and it is not under hub/
        ("^hub\\Z", "hub/", False),
        ("^lib/", "hub/", False),
        ("^hubx", "hub/", False),
        ("lib/", "hub/", True),
        ("^lib/", "", True),
    ],
)
def test_can_match_under(pattern: str, prefix: str, may: bool) -> None:
    assert can_match_under(pattern, prefix) is may


@pytest.mark.parametrize(
    "host", ["docker.io", "localhost", "localhost:5000", "10.0.0.1:443", "[::1]", "[fe80::1]:5000"]
)
def test_good_hosts(host: str) -> None:
    assert host_problem(host) is None


@pytest.mark.parametrize(
    "host",
    ["https://docker.io", "docker.io/", "a..b", "-a.b", "a-.b", "a:b:c", "[::1", "[::1]x", "x:0"],
)
def test_bad_hosts(host: str) -> None:
    assert host_problem(host) is not None


@pytest.mark.parametrize(
    ("prefix", "good"),
    [("", True), ("hub/", True), ("a/b/", True), ("hub", False), ("/", False), ("A/", False)],
)
def test_prefix_problem(prefix: str, good: bool) -> None:
    assert (prefix_problem(prefix) is None) is good
