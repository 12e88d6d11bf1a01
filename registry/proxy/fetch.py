"""One upstream GET per missing blob, teed to the client that asked while it is stored.

A blob miss under a cache starts a `Fetch`: a task, independent of the request, that streams
the upstream body into storage the way a monolithic push does (`Uploads.checked`: visible
under its digest only once its chunks end, then linked). The fetch hashes what it receives
once, in worker threads behind the relay, and ends storage's chunks only when that digest
matched. The client that caused it receives the same chunks as they arrive, storage following
up to READ_AHEAD behind, except the last one, which is held back until the digest matched too:
a corrupt or truncated upstream body ends the client's response early (the connection closes
short of its Content-Length), so no client ever gets a complete-looking wrong body, and
nothing is stored.

Concurrent misses of one digest share the fetch: in one process they wait for its task; across
the processes of a host and across hosts (the scaled mode) the fetch holds a lock in `coord`
named after the digest, and the others wait for that lock, then serve what it stored. If the
client goes away, the fetch goes on at the upstream's pace (others may be waiting for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from collections.abc import AsyncIterator

from registry.coord import backoff
from registry.coord.base import Coordinator, LockTimeout
from registry.model.registry import Registry
from registry.observe import events
from registry.oci.digests import Digest
from registry.oci.errors import BlobUnknown, DigestInvalid, RegistryError, Unavailable
from registry.proxy.upstream import Upstream, UpstreamNotFound, UpstreamUnavailable
from registry.storage.observing import observe_after

# Chunks waiting for a slow client; beyond them the fetch waits for the client.
QUEUED_CHUNKS = 16
# Bytes read from the upstream ahead of storage: a cold pull of a layer up to this size is
# relayed at the upstream's pace while the disk catches up behind it.
READ_AHEAD = 32 * 1024 * 1024
# Bytes hashed per worker-thread hop, and hops queued at most before the relay waits.
HASH_BATCH = 2 * 1024 * 1024
HASH_BATCHES = 4
# How long the fetch waits for its client to take a chunk before going on without it.
CLIENT_WAIT = 60.0
# How long a miss waits for another process's fetch of the same blob before giving up.
WAIT_FOR_OTHERS = 1800.0
# The longest pause between two looks at another process's fetch lock.
WAIT_STEP = 1.0


class _Done:
    """End of the client's chunks: everything arrived and its digest matched."""


class _Failed:
    def __init__(self, error: Exception) -> None:
        self.error = error


def lock_name(digest: Digest) -> str:
    return f"proxy-fetch:{digest}"


class Fetch:
    """The upstream GET of one blob into storage, with at most one client attached."""

    def __init__(self, upstream: Upstream, registry: Registry, name: str, remote: str) -> None:
        self._upstream = upstream
        self._registry = registry
        self._name = name
        self._remote = remote
        self.started = asyncio.get_running_loop().create_future()  # the size, or an error
        self._queue: asyncio.Queue[bytes | _Done | _Failed] | None = asyncio.Queue(QUEUED_CHUNKS)

    def detach(self, why: RegistryError | None = None) -> None:
        """No client: the fetch only stores (a `Range` miss, or a client that left). With
        `why`, a client still attached learns it was left behind: its response is cut."""
        queue, self._queue = self._queue, None
        if queue is None:
            return
        while not queue.empty():
            queue.get_nowait()  # frees a fetch waiting to put
        if why is not None:
            queue.put_nowait(_Failed(why))

    async def run(self, digest: Digest) -> None:
        try:
            async with self._upstream.blob(self._remote, digest) as stream:
                if not self.started.done():
                    self.started.set_result(stream.size)
                await self._relay(digest, stream.chunks)
        except Exception as exc:  # told to the client and to whoever awaits `started`
            error = _as_registry_error(exc, digest)
            if not self.started.done():
                self.started.set_exception(error)
            await self._send(_Failed(error))
            if not isinstance(exc, RegistryError | UpstreamNotFound | UpstreamUnavailable):
                raise

    async def _relay(self, digest: Digest, chunks: AsyncIterator[bytes]) -> None:
        """The upstream body to the client as it arrives and, through a read-ahead buffer,
        into storage (`Uploads.checked`: the blob becomes visible only when its chunks end,
        which they do once the digest of everything matched). The client is paced by
        storage only when storage lags by more than READ_AHEAD: a cold pull runs at the
        upstream's pace, not at the disk's. Its last chunk goes once the digest matched; the
        fetch (and its lock) ends once the blob is stored."""
        ahead = _ReadAhead(READ_AHEAD)
        storing = asyncio.create_task(
            self._registry.uploads.checked(self._name, digest, ahead.chunks())
        )
        hashing = _Hashing(digest.algorithm)
        try:
            held: bytes | None = None
            async for chunk in chunks:
                await ahead.put(chunk, storing)
                await hashing.add(chunk)
                events.fetched(self._upstream.name, len(chunk))
                if held is not None:
                    await self._send(held)
                held = chunk
            received = await hashing.hexdigest()
            if received != digest.hex:
                raise DigestInvalid(
                    f"the upstream sent {digest.algorithm}:{received} for {digest}; "
                    "nothing was kept",
                    detail={"digest": str(digest)},
                )
            ahead.end()  # only now: storage keeps the blob once its chunks end
        except BaseException:
            hashing.abandon()
            storing.cancel()
            await asyncio.wait({storing})
            raise
        if held is not None:
            await self._send(held)
        await self._send(_Done())
        await storing

    async def _send(self, item: bytes | _Done | _Failed) -> None:
        """To the client, unless it took nothing for CLIENT_WAIT seconds (gone without a word,
        or stalled): then the fetch goes on without it, so that it never holds the blob's
        lock, and the other clients waiting for it, for a client that reads nothing."""
        queue = self._queue
        if queue is None:
            return
        try:
            await asyncio.wait_for(queue.put(item), CLIENT_WAIT)
        except TimeoutError:
            self.detach(Unavailable(f"the client read nothing for {CLIENT_WAIT:.0f} s"))

    async def client_chunks(self) -> AsyncIterator[bytes]:
        """What the attached client receives; raises (cutting the response short) when the
        fetch failed."""
        queue = self._queue
        assert queue is not None
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Done):
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            self.detach()


class Fetches:
    """The fetches under way in this process, one per digest, and the waits for others'."""

    def __init__(self, registry: Registry, coord: Coordinator) -> None:
        self._registry = registry
        self._coord = coord
        self._running: dict[Digest, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(
        self, upstream: Upstream, name: str, remote: str, digest: Digest, *, client: bool
    ) -> Fetch | None:
        """A fetch of the blob (with the client attached when `client`), or None when another
        one is under way here or elsewhere (then `wait` for it)."""
        if digest in self._running:
            return None
        held = contextlib.AsyncExitStack()  # the lock, released by the fetch's task
        try:
            await held.enter_async_context(self._coord.lock(lock_name(digest), timeout=0))
        except LockTimeout:
            return None
        if digest in self._running:  # started here while the lock was being taken
            await held.aclose()
            return None
        fetch = Fetch(upstream, self._registry, name, remote)
        if not client:
            fetch.detach()
        task = asyncio.create_task(self._locked(fetch, digest, held))
        self._running[digest] = task
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._ended(digest, done))
        return fetch

    async def _locked(self, fetch: Fetch, digest: Digest, held: contextlib.AsyncExitStack) -> None:
        try:
            await fetch.run(digest)
        finally:
            await asyncio.shield(held.aclose())

    def _ended(self, digest: Digest, task: asyncio.Task[None]) -> None:
        if self._running.get(digest) is task:
            del self._running[digest]
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failure was told to its client already

    async def wait(self, cache: str, digest: Digest) -> None:
        """Until the fetch of `digest` under way here or elsewhere has ended (stored or not)."""
        events.coalesced(cache)
        running = self._running.get(digest)
        if running is not None:
            await asyncio.wait({running})
            return
        if not await backoff.retry(lambda: self._free(digest), WAIT_FOR_OTHERS, cap=WAIT_STEP):
            raise Unavailable(f"blob {digest} is still being fetched by another process")

    async def _free(self, digest: Digest) -> bool:
        """Whether no process holds the fetch lock of `digest` (tried, not waited for)."""
        try:
            async with self._coord.lock(lock_name(digest), timeout=0):
                return True
        except LockTimeout:
            return False

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))


def _as_registry_error(exc: Exception, digest: Digest) -> RegistryError:
    if isinstance(exc, RegistryError):
        return exc
    if isinstance(exc, UpstreamNotFound):
        return BlobUnknown(str(exc), detail={"digest": str(digest)})
    if isinstance(exc, UpstreamUnavailable):
        return Unavailable(str(exc))
    return Unavailable(f"fetching {digest} failed: {type(exc).__name__}")


class _Hashing:
    """The digest of the relayed bytes, computed in worker threads behind the relay (hashlib
    lets go of the GIL on large buffers), so that the event loop only receives and sends:
    on the loop, 32 MiB took about 31 ms of it here. Batches are hashed in order, at most
    HASH_BATCHES of them waiting."""

    def __init__(self, algorithm: str) -> None:
        self._hasher = hashlib.new(algorithm)
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._batches: deque[asyncio.Future[None]] = deque()

    async def add(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= HASH_BATCH:
            while len(self._batches) >= HASH_BATCHES:
                await self._batches.popleft()
            self._submit()

    def _submit(self) -> None:
        batch, self._pending, self._pending_size = self._pending, [], 0
        tail = self._batches[-1] if self._batches else None
        self._batches.append(asyncio.ensure_future(observe_after(tail, self._hasher.update, batch)))

    async def hexdigest(self) -> str:
        if self._pending:
            self._submit()
        while self._batches:
            await self._batches.popleft()
        return self._hasher.hexdigest()

    def abandon(self) -> None:
        """Nothing waits for the digest any more (a thread already hashing finishes alone)."""
        for batch in self._batches:
            batch.cancel()
        self._batches.clear()


class _ReadAhead:
    """Chunks on their way from the relay to storage: at most `limit` bytes, so that the
    relay waits for storage only when storage lags by that much."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: deque[bytes | None] = deque()
        self._bytes = 0
        # One side waits at a time: the relay when it is full, storage when it is empty.
        self._changed = asyncio.Event()

    async def put(self, chunk: bytes, storing: asyncio.Task[None]) -> None:
        """Add a chunk, waiting while it would pass the limit, unless storing ended first
        (it failed: its error is raised, and the relay stops)."""
        while self._bytes and self._bytes + len(chunk) > self._limit:
            self._changed.clear()
            waiting = asyncio.ensure_future(self._changed.wait())
            await asyncio.wait({waiting, storing}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                await storing  # raises what made it stop
                raise Unavailable("storing the fetched blob stopped early")
        self._chunks.append(chunk)
        self._bytes += len(chunk)
        self._changed.set()

    def end(self) -> None:
        self._chunks.append(None)
        self._changed.set()

    async def chunks(self) -> AsyncIterator[bytes]:
        """Storage's side: the chunks in order, until `end`."""
        while True:
            while not self._chunks:
                self._changed.clear()
                await self._changed.wait()
            chunk = self._chunks.popleft()
            if chunk is None:
                return
            self._bytes -= len(chunk)
            self._changed.set()
            yield chunk
