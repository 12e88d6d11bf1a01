"""Tag lists and the catalog, with `n`/`last` pagination.

Names come from `Lookup`: the coordinator's index when there is one, else storage. Walking
storage for the catalog visits `repositories/` only (never blobs or uploads) and skips the
metadata folders, whose names start with `_` and so can never be repository components.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from registry.model.index import Lookup
from registry.oci.errors import NameUnknown

INDEX_BATCH = 200  # names asked from the index at a time while filling a catalog page


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    next_last: str | None  # the `last` for the following page, when there is one


def paginate(items: Iterable[str], n: int | None, last: str | None) -> Page:
    """Items sorted, strictly after `last`, at most `n`; `next_last` when more remain."""
    ordered = sorted(set(items))
    if last is not None:
        ordered = [item for item in ordered if item > last]
    if n is None or len(ordered) <= n:
        return Page(ordered, None)
    page = ordered[:n]
    return Page(page, page[-1] if page else None)


Visible = Callable[[str], Awaitable[bool]]


class Listing:
    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup

    async def tags(self, name: str, n: int | None, last: str | None) -> Page:
        names = await self._lookup.tag_names(name)
        if names is None:
            raise NameUnknown(detail={"name": name})
        return paginate(names, n, last)

    async def catalog(self, visible: Visible, n: int, last: str | None) -> Page:
        """One page of the repositories the caller may see.

        From the index, pages are filled batch by batch (the caller may see few of them), so
        a request costs what its page needs, not the size of the registry.
        """
        found: list[str] = []
        after = last
        while len(found) <= n:
            batch = await self._lookup.repositories(after, max(n + 1, INDEX_BATCH))
            if batch is None:
                return await self._walked(visible, n, last)
            found += await _only_visible(batch, visible)
            if len(batch) < max(n + 1, INDEX_BATCH):
                break
            after = batch[-1]
        return paginate(found, n, None)

    async def _walked(self, visible: Visible, n: int, last: str | None) -> Page:
        names = [name for name in await self._lookup.walk() if last is None or name > last]
        return paginate(await _only_visible(names, visible), n, None)


async def _only_visible(names: list[str], visible: Visible) -> list[str]:
    allowed = await asyncio.gather(*(visible(name) for name in names))
    return [name for name, ok in zip(names, allowed, strict=True) if ok]
