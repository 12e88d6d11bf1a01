"""A bounded in-process cache for content addressed by digest.

Content under a digest never changes, so a cached copy can only be right; losing the cache
(another worker, a restart) changes nothing but speed. Visibility is never decided here: callers
resolve tags and repository links in storage first, then ask the cache for the bytes.
"""

from __future__ import annotations

from collections import OrderedDict


class ContentCache:
    def __init__(self, max_bytes: int = 32 * 1024 * 1024, max_item: int = 256 * 1024) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._max_item = max_item

    def get(self, key: str) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self._max_item or key in self._items:
            return
        self._items[key] = value
        self._bytes += len(value)
        while self._bytes > self._max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= len(evicted)
