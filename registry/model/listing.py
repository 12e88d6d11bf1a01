"""Tag lists and the catalog, with `n`/`last` pagination.

The filesystem catalog walks `repositories/` only (never blobs or uploads) and skips the
metadata folders, whose names start with `_` and so can never be repository components. A
repository nested in another (`a` and `a/b`) is found because the walk continues below a
repository's own folder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from registry.model import paths
from registry.oci.errors import NameUnknown
from registry.storage.base import StorageDriver

_MARKERS = ("_manifests", "_layers")


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


class Listing:
    def __init__(self, storage: StorageDriver) -> None:
        self._storage = storage

    async def exists(self, name: str) -> bool:
        children = await self._storage.list(paths.repository(name))
        return any(marker in children for marker in _MARKERS)

    async def tags(self, name: str) -> list[str]:
        tags = await self._storage.list(paths.tags(name))
        if not tags and not await self.exists(name):
            raise NameUnknown(detail={"name": name})
        return tags

    async def repositories(self, visible: Callable[[str], Awaitable[bool]]) -> list[str]:
        found: list[str] = []
        await self._walk("", found)
        allowed = await asyncio.gather(*(visible(name) for name in found))
        return [name for name, ok in zip(found, allowed, strict=True) if ok]

    async def _walk(self, name: str, found: list[str]) -> None:
        prefix = paths.repository(name) if name else paths.REPOSITORIES
        children = await self._storage.list(prefix)
        if name and any(marker in children for marker in _MARKERS):
            found.append(name)
        for child in children:
            if not child.startswith("_"):
                await self._walk(f"{name}/{child}" if name else child, found)
