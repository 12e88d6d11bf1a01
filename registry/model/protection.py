"""What requests tell the garbage collector, and what they learn from it (docs/gc.md).

The collector deletes a blob or manifest only after claiming its digest in the coordinator
(`Vouches.claim`), which fails while the digest is pinned or was vouched for within the grace
window. Requests keep their side of that contract here:

- a `HEAD` that answers 200 and a mount vouch for the blob; a claimed blob answers as if it
  were gone;
- a write that will store or name content pins it first (a manifest `PUT` pins every blob and
  child it names and itself; an upload's commit pins its blob) and vouches again when done, so
  that a collection whose mark missed the new manifest finds it protected; a claimed
  reference fails the `PUT` before anything is stored, and a blob being re-uploaded waits for
  the claim to end (the collector holds a claim for seconds);
- processes that remember facts about blobs (sizes, S3 aliases, repositories known to the
  index) forget them when the collector's generation changed (`Generation`), so that a swept
  object is never served or presigned from memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from registry.coord import backoff
from registry.coord.base import CoordinatorUnavailable, Vouches
from registry.oci.digests import Digest
from registry.oci.errors import Unavailable

# How long a write's pin keeps the collector off its digests: far longer than a manifest PUT
# or an upload's commit takes. A write that finds this much time gone before it makes
# anything visible gives up (`Pins.check`), so an expired pin never covers a write.
PIN_SECONDS = 120.0
# A blob being re-uploaded while the collector deletes its old copy waits this long at most.
CLAIM_WAIT = 30.0
# Processes look at the collector's generation at most this often; the collector keeps a
# claim this long after deleting (plus a margin), so that nobody remembers the old object by
# the time the digest can be written again.
GENERATION_POLL = 2.0


class Pins:
    """A write's pins: taken before it checks or stores, checked before it makes anything
    visible, and given back (`done`, or `cancel` when the write fails)."""

    def __init__(
        self, vouches: Vouches, digests: Sequence[Digest], *, stored: Digest | None = None
    ) -> None:
        """`stored`: the digest the write stores itself (one of `digests` or not). While the
        collector deletes an old copy of it, the write waits (CLAIM_WAIT at most) instead of
        failing; any other digest it finds claimed fails the write."""
        self._vouches = vouches
        self._stored = stored
        wanted = [*digests, stored] if stored is not None else list(digests)
        self._digests = [str(d) for d in dict.fromkeys(wanted)]
        self._taken = time.monotonic()

    async def take(self) -> Digest | None:
        """Pin every digest (one round trip); the first that the collector holds, with
        nothing left pinned (the write must fail as if it were missing), or None."""
        if not self._digests:
            return None
        claimed: list[str] = []

        async def attempt() -> bool:
            nonlocal claimed
            self._taken = time.monotonic()
            pinned = await self._vouches.pin(self._digests, PIN_SECONDS)
            claimed = [d for d, ok in zip(self._digests, pinned, strict=True) if not ok]
            if claimed:
                await self._give_back(
                    [d for d, ok in zip(self._digests, pinned, strict=True) if ok]
                )
            return self._stored is None or str(self._stored) not in claimed

        if not await backoff.retry(attempt, CLAIM_WAIT):
            raise Unavailable(f"{self._stored} is being garbage collected; retry the push")
        return Digest.parse(claimed[0]) if claimed else None

    def check(self) -> None:
        """Before the write makes anything visible: its pins must still hold."""
        if time.monotonic() - self._taken > PIN_SECONDS / 2:
            raise Unavailable("the write took too long to be stored safely; retry it")

    async def done(self) -> None:
        """The write is visible, or failed: unpin, vouching again, so the collector's grace
        starts from now (and is the only thing that holds it back: the next mark sees the
        write; a failed write's vouch does no harm). Shielded: a cancelled request still
        gives its pins back."""
        await asyncio.shield(self._give_back(self._digests))

    async def _give_back(self, digests: list[str]) -> None:
        if digests:
            await self._vouches.unpin(digests)


async def pin_for_writing(vouches: Vouches, digest: Digest) -> Pins:
    """Pins for storing `digest` itself (an upload's commit), waiting while the collector
    deletes an old copy; 503 if that outlasts CLAIM_WAIT."""
    pins = Pins(vouches, [], stored=digest)
    await pins.take()
    return pins


class Generation:
    """The collector's generation as this process last saw it, and what to forget when it
    changes. Looked at on use, at most every GENERATION_POLL seconds."""

    def __init__(self, vouches: Vouches) -> None:
        self._vouches = vouches
        self._seen: int | None = None
        self._next = 0.0  # monotonic time of the next look
        self._forget: list[Callable[[], None]] = []

    def on_change(self, forget: Callable[[], None]) -> None:
        self._forget.append(forget)

    async def check(self) -> None:
        """Forget what the process remembers if the collector deleted something since the
        last look. With the coordinator away, forget anyway (it costs only speed) rather
        than fail a pull, which storage alone can answer."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + GENERATION_POLL
        try:
            current: int | None = await self._vouches.generation()
        except CoordinatorUnavailable:
            current = None
        if current is None or (self._seen is not None and current != self._seen):
            for forget in self._forget:
                forget()
        self._seen = current
