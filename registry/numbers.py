"""Whole numbers from outside: a request's `n`, `Range`, `Content-Range` and `Content-Length`,
and the ports, databases, lifetimes and sizes of configuration and stored metadata.

`str.isdigit` accepts more than ASCII digits (`"²".isdigit()` is true, and `int("²")` fails),
and `int` accepts other scripts' digits, underscores and surrounding spaces, and refuses more
than 4,300 digits: so a number is only ever read through `whole_number`, which takes nothing
but a bounded run of ASCII digits.
"""

from __future__ import annotations

import re

# 19 digits hold every signed 64-bit value, the limit other HTTP implementations have; no
# size, offset or page count a registry deals with comes near it.
MAX_DIGITS = 19
_WHOLE = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")


def whole_number(text: str) -> int | None:
    """`text` as a non-negative integer, or None unless it is 1 to MAX_DIGITS ASCII digits."""
    return int(text) if _WHOLE.fullmatch(text) else None
