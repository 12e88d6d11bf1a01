"""Password checks that stay cheap: bcrypt once, then a short-lived verified-credentials cache.

bcrypt at cost 10 takes tens of milliseconds by design; a docker pull sends Basic credentials
on every request. A successful check is remembered for a minute under an HMAC of the user name
and password with a per-process random key, so the cache never holds a password or anything
that can be tested offline against one, and a changed password stops matching at once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable

import bcrypt
from anyio import to_thread
from cachetools import TTLCache

CACHE_SECONDS = 60.0
CACHE_ENTRIES = 10_000


class VerifiedCredentials:
    def __init__(
        self,
        ttl: float = CACHE_SECONDS,
        max_entries: int = CACHE_ENTRIES,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = os.urandom(32)
        # Each entry lasts `ttl` from the check that added it (a hit does not extend it); the
        # least recently used go first beyond `max_entries`. Used from the event loop only.
        self._entries: TTLCache[bytes, bool] = TTLCache(max_entries, ttl, timer=timer)

    def _fingerprint(self, user: str, password: str, password_hash: str) -> bytes:
        message = b"\0".join(s.encode() for s in (user, password, password_hash))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    async def check(self, user: str, password: str, password_hash: str) -> bool:
        fingerprint = self._fingerprint(user, password, password_hash)
        if fingerprint in self._entries:
            return True
        if not await to_thread.run_sync(_bcrypt_matches, password, password_hash):
            return False
        self._entries[fingerprint] = True
        return True


def _bcrypt_matches(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), password_hash.encode())
    except ValueError:  # a malformed hash, or a password bcrypt refuses
        return False


def token_fingerprint(value: str) -> str:
    """How static token values are stored and compared: their SHA-256, in hex."""
    return hashlib.sha256(value.encode()).hexdigest()
