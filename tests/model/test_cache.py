"""The digest-keyed content cache stays within its bounds."""

from registry.model.cache import ContentCache


def test_evicts_least_recently_used_beyond_the_byte_budget() -> None:
    cache = ContentCache(max_bytes=10, max_item=6)
    cache.put("a", b"12345")
    cache.put("b", b"12345")
    assert cache.get("a") == b"12345"  # a is now the most recent
    cache.put("c", b"12345")
    assert cache.get("b") is None
    assert cache.get("a") == b"12345"
    assert cache.get("c") == b"12345"


def test_items_over_the_item_limit_are_not_kept() -> None:
    cache = ContentCache(max_bytes=100, max_item=3)
    cache.put("big", b"1234")
    assert cache.get("big") is None
