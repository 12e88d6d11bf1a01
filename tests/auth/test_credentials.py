"""The verified-credentials cache: bcrypt once, never a stored password."""

from __future__ import annotations

import asyncio

import bcrypt

from registry.auth.credentials import VerifiedCredentials


def test_cache_hits_skip_bcrypt_and_changes_miss() -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    other = bcrypt.hashpw(b"new", bcrypt.gensalt(rounds=4)).decode()
    cache = VerifiedCredentials()

    async def run() -> list[bool]:
        return [
            await cache.check("u", "pw", hashed),
            await cache.check("u", "pw", hashed),  # from the cache
            await cache.check("u", "wrong", hashed),
            await cache.check("u", "pw", other),  # the password changed: no stale hit
            await cache.check("v", "pw", hashed),  # another user, same password
        ]

    assert asyncio.run(run()) == [True, True, False, False, True]
    for fingerprint in cache._entries:
        assert b"pw" not in fingerprint and len(fingerprint) == 32


def test_expired_entries_are_checked_again() -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    cache = VerifiedCredentials(ttl=-1)

    async def run() -> bool:
        await cache.check("u", "pw", hashed)
        return await cache.check("u", "nope", hashed)

    assert asyncio.run(run()) is False


def test_bounded_size() -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    cache = VerifiedCredentials(max_entries=2)

    async def run() -> None:
        for user in ("a", "b", "c"):
            await cache.check(user, "pw", hashed)

    asyncio.run(run())
    assert len(cache._entries) == 2
