"""The one rule for storage keys, which every driver applies to every key it is given.

Keys come from `registry.model.paths`, built from validated names and digests, so a bad key
is a bug, not a client's mistake. The check is a second line of defence: a key that could
leave the store's root on a filesystem (`..`, an absolute path) or name different objects on
different backends (empty segments, a trailing `/`, NUL) is refused the same way everywhere,
so a key is valid on every driver or on none.
"""

from __future__ import annotations


def check_key(key: str) -> str:
    """`key` itself when it is safe; ValueError otherwise.

    Safe: not empty, no NUL, relative (no leading `/`), no empty segment (`//` or a trailing
    `/`), and no `.` or `..` segment.
    """
    if not key or "\x00" in key or key[0] == "/" or "//" in key or key[-1] == "/":
        raise ValueError(f"unsafe storage key {key!r}")
    # The split only when a dot could make a `.` or `..` segment: this runs on every request.
    if "." in key and any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"unsafe storage key {key!r}")
    return key
