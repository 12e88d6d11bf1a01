"""The coordinator contract: what every worker must agree on, and nothing else.

The local implementation keeps this under the data directory (one host, many processes); the
distributed one keeps it in Redis. Records are opaque bytes so the model owns their format.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

# An upload session nobody touched for this long is over: Redis expires its record, the local
# coordinator reads it as unknown, and the purge (start-up, garbage collection) removes it.
DEFAULT_SESSION_TTL = 7 * 24 * 3600.0


class LockTimeout(Exception):
    """The lock was still held by someone else when the wait ran out."""


class CoordinatorUnavailable(Exception):
    """The coordinator (Redis) cannot be used right now: unreachable, timed out, read-only,
    wrong credentials. Retryable from the client's point of view: the registry answers 503."""


class IndexNotReady(Exception):
    """The index was never built, or was lost (a Redis without persistence restarted): it
    cannot answer, and the caller reads storage instead until a rebuild has finished."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a leadership, for the message of the one that finds it taken."""

    who: str  # free text the holder gave (host, pid, command)
    since: float  # when it took the lease (seconds since the epoch)


class LeaderBusy(Exception):
    """Another process holds the leadership (and, with a wait, still did when it ran out)."""

    def __init__(self, name: str, holder: Holder | None) -> None:
        self.name = name
        self.holder = holder
        who = "another process" if holder is None else holder.who
        super().__init__(f"{name!r} is held by {who}")


class LeadershipLost(Exception):
    """The lease ran out or was taken over (a Redis failover, a long pause): the holder must
    stop before its next destructive step."""


class Leadership(Protocol):
    """A held leadership. Renewed in the background for as long as it is held."""

    # Unique to this holding, and names the leadership (see `registry.coord.leases`), so that
    # a claim (`Vouches.claim`) that carries it is valid exactly while the holding lasts.
    token: str

    def check(self) -> None:
        """Raise LeadershipLost unless the lease is certainly still ours right now: its last
        renewal is younger than a third of the lease and nothing said it was lost."""
        ...

    async def confirm(self) -> None:
        """`check`, and then ask the coordinator itself (one round trip) that the lease still
        names this holding: before each destructive step, so that a lease lost behind the
        renewer's back (a Redis failover to a replica without it) stops the holder at once."""
        ...


class Vouches(Protocol):
    """Per-digest records that keep content from the garbage collector (docs/gc.md).

    Every time is the coordinator's own clock (`now`): Redis's TIME, so hosts' clocks never
    matter; the local clock for the local coordinator. Digests are `<algorithm>:<hex>` texts.

    A digest's record holds when the registry last vouched for it, until when a write that
    will name it is pinned, and whether the collector has claimed it (to delete it). A claim
    is valid for as long as the leadership whose token it carries; a holder that died leaves
    claims that count as absent. The horizon is the time since which vouches are complete:
    set when the records were first used (so a Redis that lost its data protects everything
    again for a grace window), and raised by `prune`.
    """

    async def now(self) -> float:
        """The coordinator's clock, in seconds since the epoch."""
        ...

    async def vouch(self, digests: Sequence[str]) -> list[bool]:
        """Record that the registry vouches for each digest now (an upload completed, a HEAD
        answered 200, a mount 201); False, with nothing recorded, for one that a valid claim
        holds: the caller then answers as if it were gone. One round trip for all."""
        ...

    async def pin(self, digests: Sequence[str], seconds: float) -> list[bool]:
        """Vouch for each digest now and keep it from claims for `seconds` (a write that will
        name or store it is in progress); False for one that a valid claim holds."""
        ...

    async def unpin(self, digests: Sequence[str]) -> None:
        """The write that pinned the digests is done (visible): vouch for them now, and one
        pin less each. Pins are counted, so another write's pin on the same digest still
        holds; a pin whose writer died runs out at its time, and a pin taken after every pin
        of a digest ran out starts the count afresh."""
        ...

    async def claim(self, digests: Sequence[str], cutoff: float, token: str) -> list[str]:
        """The collector, holding the leadership whose token is `token`: claim the digests
        that are not pinned now and whose last vouch is before `cutoff` (or, with no record,
        when the horizon is not after `cutoff`); return those claimed. Atomic per digest
        against `vouch` and `pin`."""
        ...

    async def claimable(self, digests: Sequence[str], cutoff: float) -> list[str]:
        """What `claim` would take now, without writing anything (a dry run)."""
        ...

    async def release(self, digests: Sequence[str], hold: float = 0.0) -> None:
        """The collector deleted the claimed content: forget the digests' records. With
        `hold`, they stay claimed that many seconds more, whatever becomes of the leadership
        (the collector may end meanwhile), so that no digest is written again before every
        process forgot what it remembered of the old object (see `generation`)."""
        ...

    async def prune(self, before: float) -> int:
        """Forget records whose last vouch is before `before` and that are neither pinned nor
        claimed; the horizon becomes at least `before`. Returns how many were forgotten."""
        ...

    async def horizon(self) -> float:
        """Since when vouches are complete (see the class)."""
        ...

    async def generation(self) -> int:
        """A number that changes every time the collector deleted content: processes that
        remember facts about blobs (sizes, S3 aliases) forget them when it changed."""
        ...

    async def advance(self) -> int:
        """The collector deleted content: change the generation."""
        ...


class Index(Protocol):
    """Tags, blob links and the list of repositories, where every worker reads them in one
    round trip.

    Storage stays the record; the index is what requests read, so `HEAD` by tag, tag lists
    and the catalog never list or read the object store. It is written after storage (a
    record nobody can see yet is harmless) and, for deletes, before it (a deleted tag is never
    served). While it is not ready, every change also marks its repository dirty, so that a
    rebuild running at the same time reads that repository again before declaring it ready.
    Tag records are opaque bytes; the model owns their format.
    """

    async def ready(self) -> bool: ...

    async def tag(self, name: str, tag: str) -> bytes | None:
        """The tag's record, None when the tag does not exist; IndexNotReady."""
        ...

    async def tags(self, name: str) -> dict[str, bytes] | None:
        """Every tag of a repository, None when the repository does not exist; IndexNotReady."""
        ...

    async def repositories(self, after: str | None, count: int) -> list[str]:
        """Up to `count` repository names after `after`, in byte order; IndexNotReady."""
        ...

    async def linked(self, name: str, digest: str) -> bool:
        """Whether the repository links the blob `digest`; IndexNotReady."""
        ...

    async def linked_many(self, name: str, digests: Sequence[str]) -> list[bool]:
        """`linked` for each of `digests`, in order, in one round trip; IndexNotReady."""
        ...

    async def set_tag(self, name: str, tag: str, record: bytes) -> None: ...

    async def delete_tag(self, name: str, tag: str) -> None: ...

    async def add_repository(self, name: str) -> None: ...

    async def add_link(self, name: str, digest: str) -> None:
        """The blob is linked in the repository (which exists from then on)."""
        ...

    async def delete_link(self, name: str, digest: str) -> None: ...

    async def replace_repository(
        self, name: str, tags: dict[str, bytes], links: frozenset[str]
    ) -> None:
        """Rebuild: the repository with exactly these tags and blob links."""
        ...

    async def take_dirty(self) -> list[str]:
        """Rebuild: the repositories changed since the last call, emptying the set."""
        ...

    async def mark_ready(self) -> bool:
        """Rebuild: ready, unless a repository became dirty since `take_dirty` (then False)."""
        ...

    async def invalidate(self) -> None:
        """Not ready any more: the next request starts a rebuild."""
        ...

    async def drop_repository(self, name: str) -> bool:
        """The collector emptied the repository: forget it, atomically only if it has no tag
        and no blob link in the index any more (a push that came meanwhile keeps it)."""
        ...


class Coordinator(Protocol):
    name: str

    def index(self, store: str) -> Index | None:
        """The index of the store named `store` (registries that share a Redis but not a
        bucket keep apart); None where listing storage is cheap (the embedded default)."""
        ...

    def lock(self, name: str, *, timeout: float = 30.0) -> AbstractAsyncContextManager[None]:
        """Exclusive across every worker that shares this coordinator."""
        ...

    async def get_session(self, session_id: str) -> bytes | None: ...

    async def put_session(self, session_id: str, record: bytes) -> None: ...

    async def delete_session(self, session_id: str) -> None: ...

    def vouches(self, store: str) -> Vouches:
        """The vouch records of the store named `store` (see `index`)."""
        ...

    def leadership(
        self, name: str, who: str, *, wait: float = 0.0
    ) -> AbstractAsyncContextManager[Leadership]:
        """Lead `name` (one garbage collector per store): a lease that is renewed while held
        and ends when its holder dies (Redis: after the lease; local: at once, flock).
        LeaderBusy when another holds it, after waiting up to `wait` seconds for it."""
        ...

    async def session_ids(self) -> list[str]:
        """Ids of the live upload sessions (for the collector: their data is in use)."""
        ...

    async def expired_sessions(self) -> list[str]:
        """Ids of sessions that expired (unknown to `get_session`) but whose records are still
        kept, for a purge to remove with their data. Redis drops expired records itself, so
        it has none; the local coordinator keeps files until they are deleted."""
        ...
