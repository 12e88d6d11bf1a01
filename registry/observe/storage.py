"""A storage driver that times and counts every call of the one it wraps.

The drivers stay free of metrics code: this wrapper implements the `StorageDriver` protocol
one explicit method at a time, observes each call into
`registry_storage_action_seconds{driver,action}` and counts `StorageUnavailable` into
`registry_storage_errors_total{driver,action}`. Streams and appends pull bytes from or push
bytes to the client while the driver works; only the driver's own time is measured, so a slow
client does not look like a slow store.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

from registry.observe.metrics import STORAGE_ACTION, STORAGE_ERRORS, timed_call
from registry.storage.base import (
    Appended,
    Incoming,
    Leftovers,
    Listed,
    StorageDriver,
    StorageUnavailable,
)

ACTIONS = (
    "read",
    "write",
    "size",
    "modified",
    "delete",
    "delete_prefix",
    "list",
    "stream",
    "append",
    "write_verified",
    "url_for",
    "complete",
    "abort",
    "move",
    "walk",
    "delete_many",
    "delete_blobs",
    "sweep_leftovers",
)


@dataclass(slots=True)
class _ClientTime:
    seconds: float = 0.0


_NO_CLIENT = _ClientTime()  # for the calls that take no bytes from the client


class InstrumentedStorage:
    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.name = inner.name
        # Every series exists from the start, so rates and alerts see 0 rather than nothing;
        # the children are looked up once, not on every call.
        self._seconds = {a: STORAGE_ACTION.labels(self.name, a) for a in ACTIONS}
        self._errors = {a: STORAGE_ERRORS.labels(self.name, a) for a in ACTIONS}

    def __repr__(self) -> str:
        return f"InstrumentedStorage({self.inner!r})"

    def _timed(
        self, action: str, client: _ClientTime = _NO_CLIENT
    ) -> contextlib.AbstractContextManager[None]:
        """Observe the call's duration, less the time spent waiting for the client."""
        seconds, errors = self._seconds[action], self._errors[action]
        return timed_call(seconds, errors, StorageUnavailable, lambda: client.seconds)

    async def read(self, key: str) -> bytes:
        with self._timed("read"):
            return await self.inner.read(key)

    async def write(self, key: str, data: bytes) -> None:
        with self._timed("write"):
            await self.inner.write(key, data)

    async def size(self, key: str) -> int | None:
        with self._timed("size"):
            return await self.inner.size(key)

    async def modified(self, key: str) -> float | None:
        with self._timed("modified"):
            return await self.inner.modified(key)

    async def delete(self, key: str) -> bool:
        with self._timed("delete"):
            return await self.inner.delete(key)

    async def delete_prefix(self, prefix: str) -> None:
        with self._timed("delete_prefix"):
            await self.inner.delete_prefix(prefix)

    async def list(self, prefix: str) -> list[str]:
        with self._timed("list"):
            return await self.inner.list(prefix)

    def stream(self, key: str, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Times only the waits for the driver's next chunk, not the consumer's handling."""
        return self._timed_items("stream", self.inner.stream(key, start, length))

    async def _timed_items(self, action: str, items: AsyncIterator[_Item]) -> AsyncIterator[_Item]:
        """`items`, observing the time spent waiting for the driver (not for the consumer)
        as one call of `action` once they end or the consumer stops."""
        spent = 0.0
        try:
            while True:
                started = time.perf_counter()
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    break
                except StorageUnavailable:
                    self._errors[action].inc()
                    raise
                finally:
                    spent += time.perf_counter() - started
                yield item
        finally:
            self._seconds[action].observe(spent)
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()

    async def append(
        self, key: str, offset: int, incoming: Incoming, state: bytes | None = None
    ) -> Appended:
        waited = _ClientTime()
        with self._timed("append", waited):
            return await self.inner.append(key, offset, _waits(incoming, waited), state)

    async def write_verified(self, key: str, incoming: Incoming, verify: Callable[[], None]) -> int:
        waited = _ClientTime()
        with self._timed("write_verified", waited):
            return await self.inner.write_verified(key, _waits(incoming, waited), verify)

    async def url_for(self, key: str, expires: int) -> str | None:
        with self._timed("url_for"):
            return await self.inner.url_for(key, expires)

    async def complete(self, key: str, state: bytes | None, target: str) -> None:
        with self._timed("complete"):
            await self.inner.complete(key, state, target)

    async def abort(self, key: str, state: bytes | None) -> None:
        with self._timed("abort"):
            await self.inner.abort(key, state)

    async def move(self, source: str, target: str) -> None:
        with self._timed("move"):
            await self.inner.move(source, target)

    # --- maintenance: the collector's calls, timed like the others

    def walk(self, prefix: str) -> AsyncIterator[builtins.list[Listed]]:
        """Times the waits for the driver's pages, as `stream` does for chunks."""
        return self._timed_items("walk", self.inner.walk(prefix))

    async def delete_many(self, keys: Sequence[str]) -> None:
        with self._timed("delete_many"):
            await self.inner.delete_many(keys)

    async def delete_blobs(self, keys: Sequence[str]) -> int:
        with self._timed("delete_blobs"):
            return await self.inner.delete_blobs(keys)

    async def sweep_leftovers(
        self, live_uploads: Collection[str], before: float, *, dry_run: bool = False
    ) -> Leftovers:
        with self._timed("sweep_leftovers"):
            return await self.inner.sweep_leftovers(live_uploads, before, dry_run=dry_run)

    def forget_cached(self) -> None:
        self.inner.forget_cached()


_Item = TypeVar("_Item")  # what a timed iteration yields: chunks, pages


def _waits(incoming: Incoming, waited: _ClientTime) -> Incoming:
    """`incoming`, adding the time spent waiting for each chunk (the client's time) to `waited`."""
    return dataclasses.replace(incoming, chunks=_timed_chunks(incoming.chunks, waited))


async def _timed_chunks(chunks: AsyncIterable[bytes], waited: _ClientTime) -> AsyncIterator[bytes]:
    source = aiter(chunks)
    while True:
        started = time.perf_counter()
        try:
            chunk = await anext(source)
        except StopAsyncIteration:
            return
        finally:
            waited.seconds += time.perf_counter() - started
        yield chunk
