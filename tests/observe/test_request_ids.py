"""Request ids: the caller's when it is plain and short, otherwise fresh and unique."""

from __future__ import annotations

import re

from registry.observe.middleware import request_id


def test_fresh_ids_are_unique_and_look_like_uuids() -> None:
    ids = {request_id([]) for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_plain_caller_id_is_kept_and_anything_else_replaced() -> None:
    assert request_id([(b"x-request-id", b"abc-123")]) == "abc-123"
    for unsafe in (b"has space", b"new\nline", b"x" * 129, b""):
        fresh = request_id([(b"x-request-id", unsafe)])
        assert re.fullmatch(r"[0-9a-f]{32}", fresh), unsafe
