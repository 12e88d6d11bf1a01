"""`Range` on blob GETs and `Content-Range` on upload PATCHes."""

from __future__ import annotations

from registry.numbers import whole_number
from registry.oci.errors import RangeInvalid


def parse_range(header: str, size: int) -> tuple[int, int]:
    """One `bytes=` range to an inclusive (start, end); 416 for anything unsatisfiable."""
    unsatisfiable = RangeInvalid(
        f"range {header[:100]!r} cannot be served from {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        raise unsatisfiable
    first, dash, last = spec.strip().partition("-")
    start = whole_number(first) if first else None
    end = whole_number(last) if last else None
    if not dash or (first and start is None) or (last and end is None):
        raise unsatisfiable
    if start is None:  # `bytes=-N`: the last N bytes
        if end is None or end == 0 or size == 0:
            raise unsatisfiable
        return max(size - end, 0), size - 1
    if start >= size or (end is not None and end < start):
        raise unsatisfiable
    return start, size - 1 if end is None else min(end, size - 1)


def parse_content_range(header: str | None) -> tuple[int, int] | None:
    """`start-end` (the spec's form) or `bytes start-end/total`; 416 when malformed."""
    if header is None:
        return None
    text = header.strip()
    if text.lower().startswith("bytes"):
        text = text[5:].strip().lstrip("=").strip()
    text = text.split("/", 1)[0]
    first, dash, last = text.partition("-")
    start, end = whole_number(first), whole_number(last)
    if not dash or start is None or end is None:
        raise RangeInvalid(f"malformed Content-Range {header[:100]!r}")
    return start, end
