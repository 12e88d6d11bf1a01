"""Distributed coordination in Redis: locks with an owner token and a lease, session records.

Every worker of every host that points at the same Redis (and prefix) agrees on locks and
upload sessions. A lock is one key, `SET key token NX PX lease`: the random token names the
owner, so release (a Lua script) deletes the key only while it still holds that token, and a
holder whose lease ran out can never delete the lock someone else took since. While a lock is
held a background task renews the lease every third of it (and soon again after a renewal
that failed), so a PATCH that streams gigabytes keeps its lock, and a holder that crashed
blocks the others for one lease at most.

A stalled Redis (paused, swapping, a slow failover) must not leave locks behind for a whole
lease. A release that fails is retried in the background until Redis answers, so the lock is
free as soon as Redis is back. An acquire whose answer never came may still be carried out
when Redis resumes (it runs what it had buffered): that lock belongs to nobody, so it is
deleted in the background too, as soon as it appears. Both give up once a lease has passed,
when the lock has run out anyway. A waiter waits at most one lease: by then a dead holder's
lock has expired, so a lock still held is one a live holder keeps renewing, and the request
is better answered `503` now than after more waiting.

A leadership (one garbage collector per store) is a lock of the same kind under
`leader:<name>`, whose value is the holder record (`leases.holder_record`: token, who, since)
rather than a bare token, so that one who finds it taken can say by whom. Its holder checks
(`Leadership.check`) that a renewal succeeded recently before each destructive step. Vouch
records are in `redis_vouches`, the tag index in `redis_index`.

Session records expire on their own after `session_ttl`; every put refreshes that.

Redis being unreachable (refused, timed out, failed over, out of pooled connections, wrong
credentials) surfaces as `CoordinatorUnavailable`, quickly: connecting and every command are
bounded by `socket_timeout`, and a failed command is retried once, on a fresh connection, so
a pool of connections that a Redis restart broke recovers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from registry.coord import backoff, leases
from registry.coord.base import (
    DEFAULT_SESSION_TTL,
    CoordinatorUnavailable,
    Holder,
    Index,
    LeaderBusy,
    Leadership,
    LockTimeout,
    Vouches,
)
from registry.coord.leases import Lease, LeasedLeadership
from registry.coord.redis_index import RedisIndex
from registry.coord.redis_options import parse_sentinel_url
from registry.coord.redis_vouches import RedisVouches, VouchScripts, clock

if TYPE_CHECKING:
    from registry.coord.redis_options import RedisSettings

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "simple-registry:"
DEFAULT_LOCK_TTL = 15.0
# Retrying a renewal or a release that failed: first soon, then less often while Redis is away.
RETRY_FIRST = 0.05
RETRY_CAP = 1.0

# Take the lock if it is free. A lock that already holds our token is ours too: that happens
# when the reply to a first attempt was lost and the client retried.
_ACQUIRE = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 1
end
if redis.call('get', KEYS[1]) == ARGV[1] then
    redis.call('pexpire', KEYS[1], ARGV[2])
    return 1
end
return 0
"""

# Extend the lease only while the lock is still ours.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

# Delete the lock only while it is still ours.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Tuning:
    """How a coordinator uses its Redis, whether it reaches it by URL or through Sentinel."""

    prefix: str = DEFAULT_PREFIX  # of every key
    session_ttl: float = DEFAULT_SESSION_TTL  # seconds an idle upload session is kept
    socket_timeout: float = 5.0  # bound on connecting and on each command
    max_connections: int = 64  # per coordinator (each worker process has one)
    lock_ttl: float = DEFAULT_LOCK_TTL  # a lock's lease (see the module)

    def __post_init__(self) -> None:
        if self.session_ttl <= 0 or self.lock_ttl <= 0:
            raise ValueError("session_ttl and lock_ttl must be positive")


DEFAULTS = Tuning()


class RedisCoordinator:
    name = "redis"

    def __init__(self, url: str, tuning: Tuning = DEFAULTS) -> None:
        # A blocking pool: a burst of more than `max_connections` concurrent commands waits
        # (up to socket_timeout) for a free connection instead of failing at once. It parses
        # the URL exactly like Redis.from_url (redis://, rediss://, credentials, database).
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=tuning.max_connections,
            timeout=tuning.socket_timeout,
            **_connection_options(tuning.socket_timeout),
        )
        self._setup(Redis.from_pool(pool), _describe(url), tuning)

    @classmethod
    def from_sentinel(
        cls,
        sentinels: list[tuple[str, int]],
        service: str,
        *,
        password: str | None = None,
        username: str | None = None,
        db: int = 0,
        sentinel_password: str | None = None,
        ssl: bool = False,
        tuning: Tuning = DEFAULTS,
    ) -> RedisCoordinator:
        """Follow the master of `service` as the sentinels report it, across failovers."""
        sentinel_options: dict[str, Any] = {
            "socket_timeout": tuning.socket_timeout,
            "socket_connect_timeout": tuning.socket_timeout,
        }
        if sentinel_password is not None:
            sentinel_options["password"] = sentinel_password
        manager = Sentinel(sentinels, sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
        client: Redis = manager.master_for(
            service,
            redis_class=Redis,
            password=password,
            username=username,
            db=db,
            ssl=ssl,
            max_connections=tuning.max_connections,
            **_connection_options(tuning.socket_timeout),
        )
        self = cls.__new__(cls)
        self._setup(client, f"the master of sentinel service {service!r}", tuning)
        return self

    def _setup(self, client: Redis, where: str, tuning: Tuning) -> None:
        self._redis = client
        self._where = where
        self._prefix = tuning.prefix
        self._session_ttl_ms = max(int(tuning.session_ttl * 1000), 1)
        self._lock_ttl = tuning.lock_ttl
        self._lock_ttl_ms = max(int(tuning.lock_ttl * 1000), 1)
        self._renew_every = tuning.lock_ttl / 3
        # A leadership is trusted while its last renewal is younger than this: by then the
        # next renewal is due, and half the lease is still left for the step it guards.
        self._leader_limit = tuning.lock_ttl / 2
        # Releases retried in the background; referenced here so they are not collected.
        self._releasing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._acquire_script = client.register_script(_ACQUIRE)
        self._renew_script = client.register_script(_RENEW)
        self._release_script = client.register_script(_RELEASE)
        self._vouch_scripts = VouchScripts(client)

    def _scope(self, store: str) -> str:
        """Keys under a hash of the store's name, so two registries on different buckets
        can share one Redis (and prefix) without seeing each other's repositories."""
        return f"{self._prefix}{hashlib.sha256(store.encode()).hexdigest()[:16]}:"

    def index(self, store: str) -> Index | None:
        return RedisIndex(self._redis, self._scope(store), self._unavailable)

    def vouches(self, store: str) -> Vouches:
        return RedisVouches(
            self._redis,
            self._vouch_scripts,
            f"{self._scope(store)}vouches",
            f"{self._prefix}leader:",
            self._unavailable,
        )

    # --- locks

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, timeout: float = 30.0) -> AsyncIterator[None]:
        """Wait at most `timeout`, and never longer than one lease (see the module)."""
        key = f"{self._prefix}lock:{name}"
        token = secrets.token_hex(16)
        wait = min(timeout, self._lock_ttl)
        if not await backoff.retry(lambda: self._try_acquire(key, token, name), wait):
            raise LockTimeout(name)
        async with self._renewed(key, token, name, Lease(time.monotonic())):
            yield

    @contextlib.asynccontextmanager
    async def _renewed(self, key: str, token: str, name: str, lease: Lease) -> AsyncIterator[None]:
        """Renew the lock in the background while the block runs; release it after."""
        renewer = asyncio.create_task(self._renew(key, token, name, lease))
        try:
            yield
        finally:
            renewer.cancel()
            try:
                # Shielded: a request cancelled mid-way still gives its lock back.
                await asyncio.shield(self._release(key, token, name))
            finally:
                await asyncio.wait({renewer})

    async def _try_acquire(self, key: str, token: str, name: str) -> bool:
        """One try: whether the lock is ours now."""
        try:
            with self._unavailable():
                taken = await self._acquire_script(keys=[key], args=[token, self._lock_ttl_ms])
        except BaseException:
            # Cancelled or unanswered: the SET may have been carried out, or may still be
            # when a stalled Redis resumes. Such a lock is nobody's; delete it when it shows.
            self._release_later(key, token, name, until_deleted=True)
            raise
        return bool(taken == 1)

    async def _renew(self, key: str, token: str, name: str, lease: Lease) -> None:
        """Extend the lease every third of it for as long as the lock is held; after a
        failure, again soon (backing off), while the lease may still be running. `lease`
        learns when the last renewal that succeeded was sent, and whether one found the
        lock lost."""
        delay = self._renew_every
        retries = backoff.delays(RETRY_FIRST, RETRY_CAP)
        while True:
            await asyncio.sleep(delay)
            sent = time.monotonic()
            try:
                with self._unavailable():
                    renewed = await self._renew_script(keys=[key], args=[token, self._lock_ttl_ms])
            except CoordinatorUnavailable as exc:
                log.warning("could not renew the lock %r, retrying: %s", name, exc)
                delay = min(next(retries), self._renew_every)
                continue
            if renewed != 1:
                log.warning(
                    "lost the lock %r: its lease ran out and it is gone or held by another", name
                )
                lease.lost = True
                return
            lease.renewed = sent
            delay = self._renew_every
            retries = backoff.delays(RETRY_FIRST, RETRY_CAP)

    async def _release(self, key: str, token: str, name: str) -> None:
        """Owner-checked: never deletes a lock that someone else holds now.

        A failure here is not raised: the work under the lock is done (raising would make a
        client retry a finished request). The release is retried in the background instead,
        so the lock is free as soon as Redis answers again, not a lease later.
        """
        try:
            released = await self._release_once(key, token)
        except CoordinatorUnavailable as exc:
            log.warning("could not release the lock %r, retrying in the background: %s", name, exc)
            self._release_later(key, token, name, until_deleted=False)
            return
        if released != 1:
            log.warning("the lock %r was no longer ours on release (its lease ran out)", name)

    async def _release_once(self, key: str, token: str) -> int:
        with self._unavailable():
            return int(await self._release_script(keys=[key], args=[token]))

    def _release_later(self, key: str, token: str, name: str, *, until_deleted: bool) -> None:
        if self._closed:
            return  # the lease frees the lock (see `close`)
        task = asyncio.create_task(self._retry_release(key, token, name, until_deleted))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _retry_release(self, key: str, token: str, name: str, until_deleted: bool) -> None:
        """Release until Redis answers, or, `until_deleted`, until the release deleted the
        key (an acquire that Redis may still carry out). Either way for one lease at most:
        after that the lock has run out by itself."""

        async def attempt() -> bool:
            try:
                released = await self._release_once(key, token)
            except CoordinatorUnavailable:
                return False
            return released == 1 or not until_deleted

        done = await backoff.retry(attempt, self._lock_ttl, first=RETRY_FIRST, cap=RETRY_CAP)
        if not done and not until_deleted:
            log.warning("gave up releasing the lock %r; its lease has run out", name)

    # --- leaderships

    def leadership(
        self, name: str, who: str, *, wait: float = 0.0
    ) -> AbstractAsyncContextManager[Leadership]:
        return self._lead(name, who, wait)

    @contextlib.asynccontextmanager
    async def _lead(self, name: str, who: str, wait: float) -> AsyncIterator[LeasedLeadership]:
        """A lock under `leader:<name>` whose value is the holder record (see the module)."""
        key = f"{self._prefix}leader:{name}"
        token = leases.new_token(name)
        clock, started = await self._clock(), time.monotonic()
        record, sent = "", 0.0

        async def attempt() -> bool:
            nonlocal record, sent
            sent = time.monotonic()
            record = leases.holder_record(token, who, clock + sent - started)
            return await self._try_acquire(key, record, name)

        if not await backoff.retry(attempt, wait):
            raise LeaderBusy(name, await self._holder(key))
        lease = Lease(sent)

        async def holding() -> str | None:
            return await self._holding(key)

        async with self._renewed(key, record, name, lease):
            yield LeasedLeadership(token, lease, self._leader_limit, holding)

    async def _holder(self, key: str) -> Holder | None:
        with self._unavailable():
            found = leases.parse_holder(await self._redis.get(key))
        return None if found is None else found[1]

    async def _holding(self, key: str) -> str | None:
        """The token of the leadership the key names now."""
        with self._unavailable():
            found = leases.parse_holder(await self._redis.get(key))
        return None if found is None else found[0]

    async def _clock(self) -> float:
        with self._unavailable():
            return await clock(self._redis)

    # --- sessions

    def _session_key(self, session_id: str) -> str:
        if not session_id.isalnum():
            raise ValueError("session ids are alphanumeric")
        return f"{self._prefix}session:{session_id}"

    async def get_session(self, session_id: str) -> bytes | None:
        key = self._session_key(session_id)
        with self._unavailable():
            record = await self._redis.get(key)
        if record is None:
            return None
        if not isinstance(record, bytes):  # only if someone set decode_responses
            raise TypeError("the Redis client must return bytes")
        return record

    async def put_session(self, session_id: str, record: bytes) -> None:
        """Store the record; its time to live starts again with every put."""
        key = self._session_key(session_id)
        with self._unavailable():
            await self._redis.set(key, record, px=self._session_ttl_ms)

    async def delete_session(self, session_id: str) -> None:
        key = self._session_key(session_id)
        with self._unavailable():
            await self._redis.delete(key)

    async def session_ids(self) -> list[str]:
        """SCAN, never KEYS: Redis answers other clients between the steps."""
        start = f"{self._prefix}session:"
        with self._unavailable():
            keys = [key async for key in self._redis.scan_iter(_glob(start) + "*", count=1000)]
        # SCAN may return a key twice (when the keyspace is resized meanwhile).
        return sorted({_text(key)[len(start) :] for key in keys})

    async def expired_sessions(self) -> list[str]:
        """None: Redis removes an expired record itself."""
        return []

    # --- lifecycle

    async def ping(self) -> None:
        """Raise CoordinatorUnavailable unless Redis answers."""
        with self._unavailable():
            await self._redis.ping()

    async def close(self) -> None:
        """Releases still being retried stop: their leases free those locks. A release that
        fails while closing (a leadership left at the same moment) is not retried either."""
        self._closed = True
        while self._releasing:
            tasks = list(self._releasing)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._redis.aclose()

    @contextlib.contextmanager
    def _unavailable(self) -> Iterator[None]:
        """Turn Redis's connection-level failures into CoordinatorUnavailable."""
        try:
            yield
        except (AuthenticationError, AuthorizationError, NoPermissionError) as exc:
            raise CoordinatorUnavailable(
                f"Redis at {self._where} rejected the credentials or their permissions "
                f"(check the password in the Redis URL): {exc}"
            ) from exc
        except RedisTimeoutError as exc:
            raise CoordinatorUnavailable(f"Redis at {self._where} timed out: {exc}") from exc
        except ReadOnlyError as exc:
            raise CoordinatorUnavailable(
                f"Redis at {self._where} is a read-only replica: {exc}"
            ) from exc
        except RedisConnectionError as exc:
            raise CoordinatorUnavailable(f"Redis at {self._where} is unreachable: {exc}") from exc
        except ResponseError as exc:
            # Out of memory (maxmemory with noeviction), still loading, busy script, no
            # primary: Redis is there but cannot serve now, which a client may retry.
            transient = isinstance(exc, OutOfMemoryError | BusyLoadingError) or str(exc).startswith(
                ("OOM", "LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN")
            )
            if transient:
                raise CoordinatorUnavailable(f"Redis at {self._where} refused: {exc}") from exc
            raise

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> RedisCoordinator:
        """The coordinator for the `redis` section; building it does not connect yet."""
        tuning = Tuning(
            prefix=settings.key_prefix,
            socket_timeout=settings.timeout_seconds,
            max_connections=settings.max_connections,
            lock_ttl=settings.lock_lease_seconds,
        )
        return connect(settings.url, tuning)


def _connection_options(socket_timeout: float) -> dict[str, Any]:
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        # One quick retry on a fresh connection after a connection error: pooled connections
        # broken by a Redis restart heal by themselves, and a Redis that is really gone fails
        # within milliseconds. Timeouts are not retried, so the worst case stays one
        # socket_timeout (and a command whose reply was lost is not sent twice).
        "retry": Retry(
            ExponentialBackoff(cap=0.05, base=0.01),
            retries=1,
            supported_errors=(RedisConnectionError,),
        ),
    }


def _glob(text: str) -> str:
    """`text` as a SCAN MATCH pattern that matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _describe(url: str) -> str:
    """host:port/db of the URL, never its credentials (for error messages and logs)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    database = parts.path.strip("/") or "0"
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{port}/{database}"


def shared_secret(url: str, name: str, *, prefix: str = DEFAULT_PREFIX, size: int = 32) -> bytes:
    """A random secret every worker of every host agrees on: the first to ask creates it.

    Called once at startup (synchronously, before workers start), so that tokens issued by one
    worker verify on all others without a configured secret. `SET NX` then `GET` makes
    concurrent starters agree on the first value written.
    """
    import redis
    from redis.sentinel import Sentinel as SyncSentinel

    key = f"{prefix}secret:{name}"
    sentinel = parse_sentinel_url(url)
    try:
        if sentinel is None:
            client = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
        else:
            manager = SyncSentinel(sentinel.sentinels, socket_timeout=5.0)  # type: ignore[no-untyped-call]
            client = manager.master_for(  # type: ignore[no-untyped-call]
                sentinel.service, password=sentinel.password, db=sentinel.db, socket_timeout=5.0
            )
        with client:
            client.set(key, secrets.token_bytes(size), nx=True)
            value = client.get(key)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise CoordinatorUnavailable(
            f"Redis at {_describe(url)} is unreachable to share the {name}: {exc}"
        ) from exc
    except redis.exceptions.ResponseError as exc:
        raise CoordinatorUnavailable(f"Redis at {_describe(url)} refused: {exc}") from exc
    if not isinstance(value, bytes) or not value:
        raise CoordinatorUnavailable(f"Redis at {_describe(url)} lost the {name}")
    return value


def connect(url: str, tuning: Tuning = DEFAULTS) -> RedisCoordinator:
    """A coordinator for a `redis://`, `rediss://` or `redis+sentinel://` URL."""
    sentinel = parse_sentinel_url(url)
    if sentinel is None:
        return RedisCoordinator(url, tuning)
    return RedisCoordinator.from_sentinel(
        sentinel.sentinels,
        sentinel.service,
        password=sentinel.password,
        db=sentinel.db,
        tuning=tuning,
    )
