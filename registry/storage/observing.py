"""Feeding an upload's bytes to `observe` (the model's hash) from worker threads, in order.

Both drivers hash a batch in a thread while the event loop receives the next one; each batch
waits for the one before, so the hash sees the bytes in the order they arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from anyio import to_thread


async def observe_after(
    previous: asyncio.Future[None] | None,
    observe: Callable[[bytes], None],
    batch: list[bytes],
) -> None:
    """`observe` every chunk of `batch` in a worker thread, once `previous` has finished."""
    if previous is not None:
        await previous
    await to_thread.run_sync(_observe_all, observe, batch)


def _observe_all(observe: Callable[[bytes], None], batch: list[bytes]) -> None:
    for chunk in batch:
        observe(chunk)
