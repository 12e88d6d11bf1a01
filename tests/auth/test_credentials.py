"""The verified-credentials cache: bcrypt once, never a stored password."""

from __future__ import annotations

import asyncio

import bcrypt
import pytest

from registry.auth import credentials
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


def test_expired_entries_are_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry lasts `ttl` from the check that added it; then bcrypt runs again. The clock
    is the cache's own timer, moved by hand; bcrypt is the real one, counted."""
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    now = [1000.0]
    cache = VerifiedCredentials(ttl=60, timer=lambda: now[0])
    bcrypt_calls = []
    real = credentials._bcrypt_matches

    def counted(password: str, password_hash: str) -> bool:
        bcrypt_calls.append(password)
        return real(password, password_hash)

    monkeypatch.setattr(credentials, "_bcrypt_matches", counted)

    async def check_at(moment: float) -> bool:
        now[0] = moment
        return await cache.check("u", "pw", hashed)

    async def run() -> list[bool]:
        return [await check_at(t) for t in (1000.0, 1030.0, 1059.9, 1060.0, 1100.0)]

    assert asyncio.run(run()) == [True] * 5
    # Checked at 1000 and again at 1060 (the first entry had just expired); hits otherwise.
    assert bcrypt_calls == ["pw", "pw"]


def test_bounded_size() -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    cache = VerifiedCredentials(max_entries=2)

    async def run() -> None:
        for user in ("a", "b", "c"):
            await cache.check(user, "pw", hashed)

    asyncio.run(run())
    assert len(cache._entries) == 2
