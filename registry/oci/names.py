"""Repository name and tag grammar from the distribution spec.

Names become storage key prefixes, so the grammar is the path-traversal defence: components
are `[a-z0-9]+` joined by single separators, which excludes `.`, `..`, empty components and
anything starting with `_` (the storage layout's reserved prefix).
"""

from __future__ import annotations

import re

from registry.oci.errors import NameInvalid, TagInvalid

MAX_NAME_LENGTH = 255
# Always `fullmatch`: with `match` and `$`, a trailing newline would pass ("$" matches before
# it) and reach storage keys and tag lists.
_NAME = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")


def validate_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise NameInvalid(f"invalid repository name {name[:300]!r}", detail={"name": name[:300]})
    return name


def validate_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise TagInvalid(f"invalid tag {tag[:200]!r}", detail={"tag": tag[:200]})
    return tag


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None
