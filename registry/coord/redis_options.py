"""The options of Redis coordination (`spec.redis`, `-redisurl`), declared once, and the rules
of a Redis URL.

Kept apart from the coordinator (`redis.py`) so that configuration can check a URL and read
the options without importing redis-py: this module needs only pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from pydantic import BaseModel

from registry.numbers import whole_number
from registry.options import STRICT, option

SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")


class RedisSettings(BaseModel):
    model_config = STRICT

    url: str = option(
        ...,
        "url",
        "Redis for upload sessions, locks and the tag index: `redis://[:password@]host:port/db`, "
        "`rediss://…` for TLS (`?ssl_ca_certs=/path` for a private CA), or "
        "`redis+sentinel://[:password@]host:26379[,host:port…]/service[/db]` for Sentinel. "
        "Without it, sessions and locks live under the data directory.",
        flag="redisurl",
        metavar="URL",
        help="Redis for upload sessions and locks shared by workers on several hosts "
        "(redis://[:password@]host:port/db, rediss:// for TLS)",
        secret=True,  # it may hold the password
        type_doc="string",
    )
    lock_lease_seconds: float = option(
        15.0,
        "lockLeaseSeconds",
        "how long a lock (an upload's, a tag's, a manifest's, a blob link's) outlives a worker "
        "that died holding it; a live holder renews it every third of that, and soon again "
        "after a renewal that failed. It also bounds the wait for a lock someone else holds: "
        "after one lease a dead holder's lock has expired, so a request still waiting answers "
        "`503` rather than wait on. Keep it at least three times `timeoutSeconds`, so that a "
        "renewal slowed by Redis still lands within the lease",
        ge=1,
        le=3600,
    )
    max_connections: int = option(
        64,
        "maxConnections",
        "connections each worker process may open to Redis; a request that finds them all "
        "busy waits up to `timeoutSeconds` for one",
        ge=1,
        le=10_000,
    )
    timeout_seconds: float = option(
        5.0,
        "timeoutSeconds",
        "bound on connecting and on each command; past it the request answers `503`",
        ge=0.1,
        le=300,
    )
    key_prefix: str = option(
        "simple-registry:",
        "keyPrefix",
        "prefix of every key; give each registry its own when several share one Redis "
        "database (the tag index is already kept apart per bucket and prefix)",
    )


@dataclass(frozen=True, slots=True)
class SentinelAddress:
    """`redis+sentinel://[:password@]host:port[,host:port…]/service[/db]`."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int
    password: str | None


def parse_sentinel_url(url: str) -> SentinelAddress | None:
    """The Sentinel form of a Redis URL, or None for a plain `redis://`/`rediss://` URL."""
    if not url.startswith("redis+sentinel://"):
        return None
    rest = url[len("redis+sentinel://") :]
    credentials, _, rest = rest.rpartition("@")
    password = unquote(credentials.partition(":")[2]) or None if credentials else None
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if not hosts or not parts:
        raise ValueError(
            "a Sentinel URL names its sentinels and the service: "
            "redis+sentinel://host:26379,host2:26379/mymaster/0"
        )
    sentinels = []
    for entry in hosts.split(","):
        host, _, port = entry.rpartition(":")
        port_number = whole_number(port)
        if not host or port_number is None:
            raise ValueError(f"sentinel address {entry!r} is not host:port")
        sentinels.append((host, port_number))
    db = parts[1] if len(parts) > 1 else "0"
    db_number = whole_number(db)
    if db_number is None:
        raise ValueError(f"database {db!r} is not a number")
    return SentinelAddress(sentinels, parts[0], db_number, password)
