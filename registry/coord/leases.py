"""What both coordinators' leaderships share: tokens, the holder record, the lease's state.

A token names the leadership it belongs to: `<32 hex digits>/<name>`. A claim (see `Vouches`)
carries only the token, and whoever meets the claim later (a vouch, a prune, another claim)
must find out whether that leadership is still held: the name in the token leads to it (the
Redis key `leader:<name>`, the local file of the name's hash), and the random part tells this
holding from any other of the same name.

The holder record (JSON `{token, who, since}`) is what the leader keeps where others can
read it: the Redis key's value, the local leader file's content.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from registry.coord.base import Holder, LeadershipLost

RANDOM_HEX = 32
# Where the name starts in a token, 1-based as Lua's string.sub counts.
NAME_AT = RANDOM_HEX + 2


def new_token(name: str) -> str:
    return f"{secrets.token_hex(RANDOM_HEX // 2)}/{name}"


def token_name(token: str) -> str | None:
    """The leadership name a token belongs to; None for what is not a token."""
    if len(token) < NAME_AT or token[RANDOM_HEX] != "/":
        return None
    return token[NAME_AT - 1 :]


def holder_record(token: str, who: str, since: float) -> str:
    return json.dumps({"token": token, "who": who, "since": since})


def parse_holder(record: bytes | str | None) -> tuple[str, Holder] | None:
    """(token, holder) from a holder record; None when there is none or it is not whole yet
    (a local leader writes it just after locking its file)."""
    if not record:
        return None
    try:
        doc = json.loads(record)
        return str(doc["token"]), Holder(str(doc["who"]), float(doc["since"]))
    except (ValueError, TypeError, KeyError):
        return None


@dataclass(slots=True)
class Lease:
    """What a renewer last learnt: when the last successful renewal was sent (monotonic),
    and whether a renewal found the lease gone or taken."""

    renewed: float
    lost: bool = False


@dataclass(slots=True)
class LeasedLeadership:
    """A leadership kept by a lease that a background task renews every third of it.

    `check` trusts the lease only while its last renewal is younger than `limit` (a third
    of the lease and a margin for a slow round trip): the lease then still runs for most of
    its length, whatever happened since, so the step the holder is about to take ends before
    anyone else could take over.
    """

    token: str
    lease: Lease
    limit: float
    holder: Callable[[], Awaitable[str | None]]  # the token the lease names now, if any

    async def confirm(self) -> None:
        self.check()
        if await self.holder() != self.token:
            self.lease.lost = True
            raise LeadershipLost(f"the lease of {self.token!r} is gone or taken")
        self.check()

    def check(self) -> None:
        if self.lease.lost:
            raise LeadershipLost(f"the lease of {self.token!r} is gone or taken")
        age = time.monotonic() - self.lease.renewed
        if age > self.limit:
            raise LeadershipLost(f"the lease of {self.token!r} was last renewed {age:.1f} s ago")
