"""`Range` on blob GETs and `Content-Range` on upload PATCHes."""

from __future__ import annotations

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
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        raise unsatisfiable
    if first == "":
        if last == "" or int(last) == 0 or size == 0:
            raise unsatisfiable
        return max(size - int(last), 0), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        raise unsatisfiable
    return start, end


def parse_content_range(header: str | None) -> tuple[int, int] | None:
    """`start-end` (the spec's form) or `bytes start-end/total`; 416 when malformed."""
    if header is None:
        return None
    text = header.strip()
    if text.lower().startswith("bytes"):
        text = text[5:].strip().lstrip("=").strip()
    text = text.split("/", 1)[0]
    first, dash, last = text.partition("-")
    if not dash or not first.isdigit() or not last.isdigit():
        raise RangeInvalid(f"malformed Content-Range {header[:100]!r}")
    return int(first), int(last)
