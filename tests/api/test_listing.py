"""Tags list and catalog: sorting, `n`/`last` pagination with `Link`, nested repositories."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import InProcessRegistry
from tests.oci import error_codes, follow_pages, push_image


def test_tags_are_sorted_and_paginated(app_client: httpx.Client, repo: str) -> None:
    pushed = push_image(app_client, repo, "b")
    for tag in ["a", "C", "c", "1.0", "z_z"]:
        r = app_client.put(
            f"/v2/{repo}/manifests/{tag}",
            content=pushed.body,
            headers={"Content-Type": pushed.media_type},
        )
        assert r.status_code == 201
    expected = sorted(["a", "b", "C", "c", "1.0", "z_z"])
    r = app_client.get(f"/v2/{repo}/tags/list")
    assert r.json() == {"name": repo, "tags": expected}
    assert "Link" not in r.headers
    assert follow_pages(app_client, f"/v2/{repo}/tags/list", "tags", 2) == expected
    assert app_client.get(f"/v2/{repo}/tags/list", params={"last": "b"}).json()["tags"] == [
        "c",
        "z_z",
    ]
    assert app_client.get(f"/v2/{repo}/tags/list", params={"n": 0}).json()["tags"] == []
    r = app_client.get(f"/v2/{repo}/tags/list", params={"n": 6})
    assert r.json()["tags"] == expected
    assert "Link" not in r.headers


@pytest.mark.parametrize("n", ["-1", "ten", "1.5", "0x10"])
def test_bad_n_is_400(app_client: httpx.Client, repo: str, n: str) -> None:
    push_image(app_client, repo)
    for path in (f"/v2/{repo}/tags/list", "/v2/_catalog"):
        r = app_client.get(path, params={"n": n})
        assert r.status_code == 400
        assert error_codes(r) == ["PAGINATION_NUMBER_INVALID"]


@pytest.mark.parametrize(
    "query",
    [
        "n=%C2%B2",  # "²": isdigit() is true, int() refuses it
        "n=%D9%A3",  # an Arabic-Indic 3: int() would take it
        "n=%EF%BC%91",  # a fullwidth 1
        "n=" + "9" * 5000,  # beyond int()'s 4,300 digits
        "n=1_0",
        "n=%201",
    ],
    ids=["superscript", "arabic-indic", "fullwidth", "5000-digits", "underscore", "space"],
)
def test_n_that_is_no_ascii_number_is_400(app_client: httpx.Client, repo: str, query: str) -> None:
    push_image(app_client, repo)
    for path in (f"/v2/{repo}/tags/list", "/v2/_catalog"):
        r = app_client.get(f"{path}?{query}")  # as written: httpx keeps the escapes
        assert r.status_code == 400, path
        assert error_codes(r) == ["PAGINATION_NUMBER_INVALID"]


def test_tags_of_unknown_repository(app_client: httpx.Client, repo: str) -> None:
    r = app_client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 404
    assert error_codes(r) == ["NAME_UNKNOWN"]


def test_catalog_lists_nested_repositories_in_order(
    in_process: Callable[..., InProcessRegistry],
) -> None:
    server = in_process()  # an empty registry of its own
    names = ["a", "a/b", "a/b/c", "a-z", "a.b", "b", "lib/x", "lib/x/y"]
    with server.client() as http:
        assert http.get("/v2/_catalog").json() == {"repositories": []}
        for name in names:
            push_image(http, name)
        r = http.get("/v2/_catalog")
        assert r.json() == {"repositories": sorted(names)}
        assert follow_pages(http, "/v2/_catalog", "repositories", 3) == sorted(names)
        assert http.get("/v2/_catalog", params={"last": "a", "n": 2}).json() == {
            "repositories": ["a-z", "a.b"]
        }
        for name in names:
            assert http.get(f"/v2/{name}/tags/list").json() == {"name": name, "tags": ["latest"]}


def test_repository_with_only_blobs_has_no_tags(app_client: httpx.Client, repo: str) -> None:
    from tests.oci import push_blob

    push_blob(app_client, repo, b"lonely")
    assert app_client.get(f"/v2/{repo}/tags/list").json() == {"name": repo, "tags": []}
