"""Trying again until a deadline, waiting a little longer each time.

Both coordinators wait for a lock the same way, by trying without blocking and sleeping between
tries: the first retry comes quickly (a lock is usually held for milliseconds), later ones less
often, so a long wait costs few tries. The Redis coordinator retries its renewals and releases
with the same delays, only slower.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

FIRST = 0.001  # the first wait for a lock
CAP = 0.05  # and the longest


def delays(first: float = FIRST, cap: float = CAP) -> Iterator[float]:
    """Waits between tries: `first`, doubling, at most `cap`."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


async def retry(
    attempt: Callable[[], Awaitable[bool]],
    timeout: float,
    *,
    first: float = FIRST,
    cap: float = CAP,
) -> bool:
    """Call `attempt` until it returns True (then True), backing off between calls (see
    `delays`); False once `timeout` seconds have passed. The first call is always made, and
    no wait runs past the deadline."""
    deadline = time.monotonic() + timeout
    for delay in delays(first, cap):
        if await attempt():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(delay, remaining))
    raise AssertionError("unreachable: delays never ends")
