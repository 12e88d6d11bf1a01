"""The tag and repository index in Redis (see `Index` in `registry.coord.base`).

Keys, under the coordinator's prefix:

    index:ready        "1" once a rebuild finished; absent on a fresh or emptied Redis
    index:repos        sorted set of repository names, all with score 0, so ZRANGEBYLEX
                       pages through them in byte order (the catalog's order)
    index:tags:<name>  hash: tag -> the model's record of the tag
    index:links:<name> set of the digests of the blobs the repository links
    index:dirty        set of repositories changed while the index was not ready

Each change is one script, so "change, and mark dirty unless ready" is atomic: a change either
happens before a rebuild's final check (and is seen dirty there) or after the index is ready.
Dropping a repository (the collector emptied it) is such a change too, made only if the
repository has no tag and no link left, which the same script checks: a push that added one
meanwhile keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from redis.asyncio import Redis

from registry.coord.base import IndexNotReady

# KEYS: ready, dirty, repos, tags, links. ARGV: name, op, [tag or digest, [record]].
# 1 when changed; 0 for a drop refused because the repository still has tags or links.
_CHANGE = """
if ARGV[2] == 'set' then
    redis.call('hset', KEYS[4], ARGV[3], ARGV[4])
    redis.call('zadd', KEYS[3], 0, ARGV[1])
elseif ARGV[2] == 'del' then
    redis.call('hdel', KEYS[4], ARGV[3])
elseif ARGV[2] == 'link' then
    redis.call('sadd', KEYS[5], ARGV[3])
    redis.call('zadd', KEYS[3], 0, ARGV[1])
elseif ARGV[2] == 'unlink' then
    redis.call('srem', KEYS[5], ARGV[3])
elseif ARGV[2] == 'drop' then
    if redis.call('exists', KEYS[4]) == 1 or redis.call('exists', KEYS[5]) == 1 then
        return 0
    end
    redis.call('zrem', KEYS[3], ARGV[1])
else
    redis.call('zadd', KEYS[3], 0, ARGV[1])
end
if redis.call('exists', KEYS[1]) == 0 then
    redis.call('sadd', KEYS[2], ARGV[1])
end
return 1
"""

# KEYS: dirty. Everything dirty so far, and an empty set for what comes next.
_TAKE_DIRTY = """
local names = redis.call('smembers', KEYS[1])
redis.call('del', KEYS[1])
return names
"""

# KEYS: ready, dirty.
_MARK_READY = """
if redis.call('scard', KEYS[2]) > 0 then
    return 0
end
redis.call('set', KEYS[1], '1')
return 1
"""


class RedisIndex:
    def __init__(
        self,
        client: Redis,
        prefix: str,
        unavailable: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._redis = client
        self._unavailable = unavailable
        self._ready = f"{prefix}index:ready"
        self._dirty = f"{prefix}index:dirty"
        self._repos = f"{prefix}index:repos"
        self._tags = f"{prefix}index:tags:"
        self._links = f"{prefix}index:links:"
        self._change = client.register_script(_CHANGE)
        self._take_dirty = client.register_script(_TAKE_DIRTY)
        self._mark_ready = client.register_script(_MARK_READY)

    async def ready(self) -> bool:
        with self._unavailable():
            return bool(await self._redis.exists(self._ready))

    async def tag(self, name: str, tag: str) -> bytes | None:
        return _bytes(await self._read(lambda pipe: pipe.hget(self._tags + name, tag)))

    async def tags(self, name: str) -> dict[str, bytes] | None:
        known, records = await self._read(
            lambda pipe: pipe.zscore(self._repos, name).hgetall(self._tags + name), replies=2
        )
        if known is None:
            return None
        return {_text(tag): _bytes_required(record) for tag, record in records.items()}

    async def repositories(self, after: str | None, count: int) -> list[str]:
        start = b"(" + after.encode() if after is not None else b"-"
        names = await self._read(
            lambda pipe: pipe.zrangebylex(self._repos, start, b"+", start=0, num=count)
        )
        return [_text(name) for name in names]

    async def linked(self, name: str, digest: str) -> bool:
        return bool(await self._read(lambda pipe: pipe.sismember(self._links + name, digest)))

    async def linked_many(self, name: str, digests: Sequence[str]) -> list[bool]:
        """One SISMEMBER per digest, pipelined: one round trip, and no need for SMISMEMBER,
        which Redis 6.0 lacks."""
        if not digests:
            return []
        key = self._links + name

        def ask(pipe: Any) -> None:
            for digest in digests:
                pipe.sismember(key, digest)

        return [bool(found) for found in await self._read_all(ask)]

    async def _read(self, command: Callable[[Any], Any], *, replies: int = 1) -> Any:
        """`command` and the ready flag in one round trip; IndexNotReady unless ready."""
        answers = await self._read_all(command)
        return answers[0] if replies == 1 else tuple(answers[:replies])

    async def _read_all(self, command: Callable[[Any], Any]) -> list[Any]:
        """The ready flag, then every command `command` queued: their answers, in order."""
        with self._unavailable():
            pipe = self._redis.pipeline(transaction=False)
            pipe.exists(self._ready)
            command(pipe)
            answers = await pipe.execute()
        if not answers[0]:
            raise IndexNotReady()
        return list(answers[1:])

    async def set_tag(self, name: str, tag: str, record: bytes) -> None:
        await self._run_change(name, "set", tag, record)

    async def delete_tag(self, name: str, tag: str) -> None:
        await self._run_change(name, "del", tag)

    async def add_repository(self, name: str) -> None:
        await self._run_change(name, "add")

    async def add_link(self, name: str, digest: str) -> None:
        await self._run_change(name, "link", digest)

    async def delete_link(self, name: str, digest: str) -> None:
        await self._run_change(name, "unlink", digest)

    async def drop_repository(self, name: str) -> bool:
        return await self._run_change(name, "drop")

    async def _run_change(self, name: str, op: str, *args: str | bytes) -> bool:
        keys = [self._ready, self._dirty, self._repos, self._tags + name, self._links + name]
        with self._unavailable():
            return bool(await self._change(keys=keys, args=[name, op, *args]))

    async def replace_repository(
        self, name: str, tags: dict[str, bytes], links: frozenset[str]
    ) -> None:
        with self._unavailable():
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(self._tags + name, self._links + name)
            if tags:
                pipe.hset(self._tags + name, mapping=tags)  # type: ignore[arg-type]
            if links:
                pipe.sadd(self._links + name, *sorted(links))
            pipe.zadd(self._repos, {name: 0})
            await pipe.execute()

    async def take_dirty(self) -> list[str]:
        with self._unavailable():
            names = await self._take_dirty(keys=[self._dirty])
        return sorted(_text(name) for name in names)

    async def mark_ready(self) -> bool:
        with self._unavailable():
            return bool(await self._mark_ready(keys=[self._ready, self._dirty]))

    async def invalidate(self) -> None:
        with self._unavailable():
            await self._redis.delete(self._ready)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: object) -> bytes | None:
    if value is None:
        return None
    return _bytes_required(value)


def _bytes_required(value: object) -> bytes:
    if not isinstance(value, bytes):  # only if someone set decode_responses
        raise TypeError("the Redis client must return bytes")
    return value
