"""Identities and grants: the users, static tokens and role bindings of the manifests.

One object per worker, built from the immutable `Manifests`. It answers three questions on the
request path — who is this (password or static token), may they do this (`Need`), and which
of the requested token scopes may they have (downscoping) — without touching storage.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from cachetools import LRUCache

from registry.auth.credentials import VerifiedCredentials, token_fingerprint
from registry.auth.rbac import allowed
from registry.auth.scopes import ANONYMOUS, Need, Principal
from registry.auth.tokens import Access
from registry.config.model import Manifests

DECISIONS = 50_000  # remembered RBAC answers per process

# What a token action means in RBAC terms: granted when any of these is allowed.
_ACTION_NEEDS = {
    "pull": (("manifests", "GET"), ("blobs", "GET"), ("tags", "GET")),
    "push": (("blobs", "POST"), ("manifests", "PUT")),
    "delete": (("manifests", "DELETE"), ("blobs", "DELETE")),
}


class Policy:
    def __init__(self, manifests: Manifests) -> None:
        self.manifests = manifests
        self._users = {user.name: user for user in manifests.users}
        self._tokens = {token.value_sha256: token for token in manifests.tokens}
        self._credentials = VerifiedCredentials()
        self._decisions: LRUCache[tuple[str, Need], bool] = LRUCache(DECISIONS)

    @property
    def anonymous_enabled(self) -> bool:
        return "anonymous" in self._users

    def anonymous(self) -> Principal | None:
        return ANONYMOUS if self.anonymous_enabled else None

    async def by_password(self, name: str, password: str) -> Principal | None:
        """A user's bcrypt password, or a static token given as the password."""
        user = self._users.get(name)
        if (
            user is not None
            and user.password_hash
            and name != "anonymous"
            and await self._credentials.check(name, password, user.password_hash)
        ):
            return Principal(name)
        bound = self.by_token(password)
        if bound is not None and hmac.compare_digest(bound.name, name):
            return bound
        return None

    def by_token(self, value: str) -> Principal | None:
        """A static (robot) token: the principal is the user it is bound to."""
        token = self._tokens.get(token_fingerprint(value))
        if token is None or token.username not in self._users:
            return None
        if token.expires_at is not None and token.expires_at <= datetime.now(UTC):
            return None
        return Principal(token.username)

    def exists(self, principal: Principal) -> bool:
        """Removing a user from the manifests ends every token issued to them."""
        return principal.name in self._users

    def may(self, principal: Principal, need: Need) -> bool:
        """RBAC's answer, remembered: the manifests never change while the process runs, and
        `allowed` scans every user and binding, which is too much for every request."""
        key = (principal.name, need)
        answer = self._decisions.get(key)
        if answer is None:
            answer = self.exists(principal) and bool(
                allowed(
                    self.manifests, principal.name, need.resource, need.name, need.verb, need.tag
                )
            )
            self._decisions[key] = answer
        return answer

    def grant(self, principal: Principal, requested: list[Access]) -> list[Access]:
        """The requested token scopes cut down to what RBAC allows (never a refusal)."""
        granted: list[Access] = []
        for access in requested:
            actions = tuple(a for a in access.actions if self._may_action(principal, access, a))
            if actions:
                granted.append(Access(access.type, access.name, actions))
        return granted

    def _may_action(self, principal: Principal, access: Access, action: str) -> bool:
        if access.type == "registry":
            return access.name == "catalog" and self.may(principal, Need.catalog())
        if access.type != "repository":
            return False
        if action == "*":
            return all(self._may_action(principal, access, a) for a in _ACTION_NEEDS)
        needs = _ACTION_NEEDS.get(action, ())
        return any(self.may(principal, Need(r, access.name, v)) for r, v in needs)
