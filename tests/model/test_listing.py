"""Tag lists and the catalog in the model, page by page with `n` and `last`."""

from __future__ import annotations

import pytest

from registry.model.registry import Registry
from registry.oci.errors import NameUnknown
from tests.model.conftest import image
from tests.oci import OCI_MANIFEST

pytestmark = pytest.mark.anyio


async def _everyone(name: str) -> bool:
    return True


async def test_tags_page_by_page(registry: Registry) -> None:
    body = await image(registry, "app")
    tags = ["b", "a", "c10", "c9", "latest"]
    for tag in tags:
        await registry.manifests.put("app", tag, body, OCI_MANIFEST)
    assert (await registry.listing.tags("app", None, None)).items == sorted(tags)
    first = await registry.listing.tags("app", 2, None)
    assert (first.items, first.next_last) == (["a", "b"], "b")
    second = await registry.listing.tags("app", 2, first.next_last)
    assert (second.items, second.next_last) == (["c10", "c9"], "c9")
    last = await registry.listing.tags("app", 2, second.next_last)
    assert (last.items, last.next_last) == (["latest"], None)
    assert (await registry.listing.tags("app", 10, "zzz")).items == []
    empty = await registry.listing.tags("app", 0, None)
    assert empty.items == []


async def test_tags_of_an_unknown_repository(registry: Registry) -> None:
    with pytest.raises(NameUnknown):
        await registry.listing.tags("nothing", None, None)


async def test_catalog_pages_and_visibility(registry: Registry) -> None:
    names = ["a", "a/b", "b", "c/d/e", "team/x"]
    for name in names:
        await image(registry, name)  # a linked blob makes the repository exist
    page = await registry.listing.catalog(_everyone, 100, None)
    assert (page.items, page.next_last) == (sorted(names), None)

    seen: list[str] = []
    last = None
    while True:
        page = await registry.listing.catalog(_everyone, 2, last)
        seen += page.items
        assert len(page.items) <= 2
        if page.next_last is None:
            break
        last = page.next_last
    assert seen == sorted(names)

    async def not_team(name: str) -> bool:
        return not name.startswith("team/")

    visible = await registry.listing.catalog(not_team, 100, None)
    assert visible.items == ["a", "a/b", "b", "c/d/e"]
    assert (await registry.listing.catalog(not_team, 100, "c/d/e")).items == []
