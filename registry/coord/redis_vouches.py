"""Vouch records in Redis (see `Vouches` in `registry.coord.base`).

One hash per store, `<prefix><hash of the store>:vouches`, so that every script works on one
key of its own:

    <digest>       "<last vouch> <pinned until> <pins> <claim token or nothing>" (text;
                   `pins` counts the writes that pinned it and did not unpin yet)
    ~horizon       the horizon; set to now by the first script of any kind when absent, so
                   a Redis that lost its data protects everything again for a grace window
    ~generation    the generation; absent means 0

Every operation is one script, and every script takes its time from Redis (`TIME`), so a
record changes atomically against every other and hosts' clocks never matter. A claim is
valid while the leader key its token names (`<prefix>leader:<name>`, see `leases`) still
holds that token: the scripts read that key, which they cannot declare in advance, so the
records want a single Redis (or Sentinel), not a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from registry.coord import leases

HORIZON = "~horizon"
GENERATION = "~generation"
PRUNE_BATCH = 500  # fields per HSCAN step, and so per prune script

# Every script: KEYS[1] the hash, ARGV[1] the prefix of leader keys. Reads the clock, sets the
# horizon if absent, and defines `valid` (is a claim's token still held?) and `parse`.
_PRELUDE = f"""
local t = redis.call('time')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function fmt(x) return string.format('%.6f', x) end
redis.call('hsetnx', KEYS[1], '{HORIZON}', fmt(now))
local known = {{}}
local function valid(tok)
    if tok == nil or tok == '' then return false end
    if string.sub(tok, 1, 1) == '@' then return (tonumber(string.sub(tok, 2)) or 0) > now end
    if known[tok] == nil then
        local ok = false
        if #tok >= {leases.NAME_AT} then
            local held = redis.call('get', ARGV[1] .. string.sub(tok, {leases.NAME_AT}))
            if held then
                local parsed, doc = pcall(cjson.decode, held)
                ok = parsed and type(doc) == 'table' and doc.token == tok
            end
        end
        known[tok] = ok
    end
    return known[tok]
end
local function parse(rec)
    local last, pinned, pins, tok = string.match(rec, '^(%S+) (%S+) (%S+) ?(.*)$')
    return tonumber(last) or 0, tonumber(pinned) or 0, tonumber(pins) or 0, tok
end
local function record(last, pinned, pins, tok)
    return fmt(last) .. ' ' .. fmt(pinned) .. ' ' .. string.format('%d', pins) .. ' ' .. tok
end
local function is_pinned(pinned, pins) return pins > 0 and pinned > now end
"""

# ARGV[2]: 'vouch', 'unpin', or seconds to pin for; ARGV[3...]: digests. 1 or 0 for each
# (0: a valid claim holds it, and nothing changed).
_VOUCH = (
    _PRELUDE
    + """
local seconds = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV do
    local rec = redis.call('hget', KEYS[1], ARGV[i])
    local pinned, pins, tok = 0, 0, nil
    if rec then
        local _
        _, pinned, pins, tok = parse(rec)
    end
    if valid(tok) then
        out[#out + 1] = 0
    else
        if not is_pinned(pinned, pins) then pins = 0 end
        if seconds then
            pinned, pins = math.max(pinned, now + seconds), pins + 1
        elseif ARGV[2] == 'unpin' then
            pins = math.max(pins - 1, 0)
            if pins == 0 then pinned = 0 end
        end
        redis.call('hset', KEYS[1], ARGV[i], record(now, pinned, pins, ''))
        out[#out + 1] = 1
    end
end
return out
"""
)

# ARGV[2]: cutoff; ARGV[3]: the claimer's token, or '' to only ask (a dry run);
# ARGV[4...]: digests. Those claimed (or that a claim would take).
_CLAIM = (
    _PRELUDE
    + f"""
local cutoff, token = tonumber(ARGV[2]), ARGV[3]
local asking = token == ''
if not asking and not valid(token) then return {{}} end
local horizon = tonumber(redis.call('hget', KEYS[1], '{HORIZON}'))
local out = {{}}
for i = 4, #ARGV do
    local rec = redis.call('hget', KEYS[1], ARGV[i])
    local take, last, pinned, pins = false, 0, 0, 0
    if rec then
        local tok
        last, pinned, pins, tok = parse(rec)
        take = (not asking and tok == token)
            or (not valid(tok) and not is_pinned(pinned, pins) and last < cutoff)
    else
        take = horizon <= cutoff
    end
    if take then
        if not asking then
            redis.call('hset', KEYS[1], ARGV[i], record(last, pinned, pins, token))
        end
        out[#out + 1] = ARGV[i]
    end
end
return out
"""
)

# ARGV[2]: seconds to hold the claims for (0: forget at once); ARGV[3...]: digests. A held
# claim's token is `@<until>`: valid until then, whoever leads.
_RELEASE = (
    _PRELUDE
    + """
local hold = tonumber(ARGV[2])
for i = 3, #ARGV do
    if hold > 0 then
        redis.call('hset', KEYS[1], ARGV[i], record(0, 0, 0, '@' .. fmt(now + hold)))
    else
        redis.call('hdel', KEYS[1], ARGV[i])
    end
end
return 0
"""
)

# ARGV[2]: before; ARGV[3...]: fields to look at. Raises the horizon; how many were forgotten.
_PRUNE = (
    _PRELUDE
    + f"""
local before = tonumber(ARGV[2])
if tonumber(redis.call('hget', KEYS[1], '{HORIZON}')) < before then
    redis.call('hset', KEYS[1], '{HORIZON}', fmt(before))
end
local n = 0
for i = 3, #ARGV do
    local rec = redis.call('hget', KEYS[1], ARGV[i])
    if rec then
        local last, pinned, pins, tok = parse(rec)
        if last < before and not is_pinned(pinned, pins) and not valid(tok) then
            redis.call('hdel', KEYS[1], ARGV[i])
            n = n + 1
        end
    end
end
return n
"""
)

# ARGV[2]: the field to read (the horizon, the generation): as text, or nil.
_READ = (
    _PRELUDE
    + """
return redis.call('hget', KEYS[1], ARGV[2])
"""
)

# The first generation is the clock in milliseconds, not 1: after Redis lost its data, the
# numbers do not start over, so a process that remembers one from before sees a change.
_ADVANCE = (
    _PRELUDE
    + f"""
if redis.call('hexists', KEYS[1], '{GENERATION}') == 0 then
    redis.call('hset', KEYS[1], '{GENERATION}', string.format('%.0f', now * 1000))
end
return redis.call('hincrby', KEYS[1], '{GENERATION}', 1)
"""
)


class VouchScripts:
    """The scripts, registered once per client (each keeps its SHA for EVALSHA)."""

    def __init__(self, client: Redis) -> None:
        self.vouch = client.register_script(_VOUCH)
        self.claim = client.register_script(_CLAIM)
        self.release = client.register_script(_RELEASE)
        self.prune = client.register_script(_PRUNE)
        self.read = client.register_script(_READ)
        self.advance = client.register_script(_ADVANCE)


class RedisVouches:
    def __init__(
        self,
        client: Redis,
        scripts: VouchScripts,
        key: str,
        leaders: str,
        unavailable: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._redis = client
        self._scripts = scripts
        self._key = key
        self._leaders = leaders  # the prefix of leader keys
        self._unavailable = unavailable

    async def now(self) -> float:
        with self._unavailable():
            return await clock(self._redis)

    async def vouch(self, digests: Sequence[str]) -> list[bool]:
        return await self._vouch(digests, "vouch")

    async def pin(self, digests: Sequence[str], seconds: float) -> list[bool]:
        return await self._vouch(digests, _number(seconds))

    async def unpin(self, digests: Sequence[str]) -> None:
        await self._vouch(digests, "unpin")

    async def _vouch(self, digests: Sequence[str], seconds: str) -> list[bool]:
        if not digests:
            return []
        done = await self._run(self._scripts.vouch, seconds, *digests)
        return [bool(ok) for ok in done]

    async def claim(self, digests: Sequence[str], cutoff: float, token: str) -> list[str]:
        if not digests:
            return []
        claimed = await self._run(self._scripts.claim, _number(cutoff), token, *digests)
        return [_text(digest) for digest in claimed]

    async def claimable(self, digests: Sequence[str], cutoff: float) -> list[str]:
        if not digests:
            return []
        found = await self._run(self._scripts.claim, _number(cutoff), "", *digests)
        return [_text(digest) for digest in found]

    async def release(self, digests: Sequence[str], hold: float = 0.0) -> None:
        if digests:
            await self._run(self._scripts.release, _number(hold), *digests)

    async def prune(self, before: float) -> int:
        """HSCAN in batches, each looked at again by a script (a record vouched for since
        the scan stays). The first script raises the horizon, even for an empty hash."""
        pruned, cursor = 0, 0
        while True:
            with self._unavailable():
                cursor, found = await self._redis.hscan(self._key, cursor, count=PRUNE_BATCH)
            fields = [name for name in map(_text, found) if not name.startswith("~")]
            pruned += int(await self._run(self._scripts.prune, _number(before), *fields))
            if cursor == 0:
                return pruned

    async def horizon(self) -> float:
        return float(_text(await self._run(self._scripts.read, HORIZON)))

    async def generation(self) -> int:
        """One script: cheap enough for every process to ask every few seconds."""
        found = await self._run(self._scripts.read, GENERATION)
        return 0 if found is None else int(found)

    async def advance(self) -> int:
        return int(await self._run(self._scripts.advance))

    async def _run(self, script: AsyncScript, *args: str) -> Any:
        with self._unavailable():
            return await script(keys=[self._key], args=[self._leaders, *args])


async def clock(client: Redis) -> float:
    """Redis's clock (TIME), in seconds since the epoch."""
    seconds, micros = await client.time()
    return seconds + micros / 1_000_000


def _number(value: float) -> str:
    return f"{value:.6f}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
