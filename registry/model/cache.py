"""A bounded in-process cache for content addressed by digest.

Content under a digest never changes, so a cached copy can only be right; losing the cache
(another worker, a restart) changes nothing but speed. Visibility is never decided here: callers
resolve tags and repository links in storage first, then ask the cache for the bytes.

Used from the event loop only (like every cache of the registry), so it needs no lock.
"""

from __future__ import annotations

from cachetools import LRUCache


class ContentCache:
    def __init__(self, max_bytes: int = 32 * 1024 * 1024, max_item: int = 256 * 1024) -> None:
        # Least recently used out first, until the bytes held fit `max_bytes` again.
        self._items: LRUCache[str, bytes] = LRUCache(max_bytes, getsizeof=len)
        self._max_item = max_item

    def get(self, key: str) -> bytes | None:
        return self._items.get(key)

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self._max_item or key in self._items:
            return
        self._items[key] = value
