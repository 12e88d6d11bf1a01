"""An upstream's authentication: its challenges, and the bearer tokens it hands out.

Registries answer a request without the right credentials with `401` and a
`WWW-Authenticate` challenge: `Basic realm=...`, or `Bearer realm=...,service=...,scope=...`
for the Docker token flow, where the realm is a token service that exchanges the configured
credentials (or none) for a token valid for that scope. Tokens are kept per scope until
shortly before they expire, so a busy cache asks the token service once per scope and lifetime
rather than once per request (the Go simple-registry asked every time).

Only the realm an upstream names in its own challenge is ever contacted: the hosts a request
may make this registry dial are the configured upstreams and their token services.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from registry.numbers import whole_number

# The lifetime a token service means when it does not say (the Docker token spec's default).
DEFAULT_LIFETIME = 60
# A token is used until this many seconds before it expires (at most half its lifetime):
# a request that takes it just before then still arrives while it is valid.
EXPIRY_MARGIN = 10.0
# Scopes remembered per upstream at most; the oldest goes first past it.
TOKENS_KEPT = 1000

_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed `WWW-Authenticate` header: its scheme (lower case) and its parameters."""

    scheme: str
    params: dict[str, str]

    @classmethod
    def parse(cls, header: str) -> Challenge | None:
        """The first challenge of the header; None when it is not one."""
        scheme, _, rest = header.strip().partition(" ")
        if not scheme:
            return None
        params: dict[str, str] = {}
        position = 0
        while position < len(rest):
            match = _PARAM.match(rest, position)
            if match is None or match.end() == position:
                break
            quoted, bare = match.group(2), match.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
            params[match.group(1).lower()] = value
            position = match.end()
        return cls(scheme.lower(), params)


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires: float  # time.monotonic() after which it is not used


def token_from(answer: object, now: float) -> Token | None:
    """The token of a token service's JSON answer (`token`, or OAuth2's `access_token`);
    None when it holds neither."""
    if not isinstance(answer, dict):
        return None
    value = answer.get("token") or answer.get("access_token")
    if not isinstance(value, str) or not value:
        return None
    raw = answer.get("expires_in")
    lifetime = whole_number(str(raw)) if raw is not None else None
    seconds = float(lifetime if lifetime else DEFAULT_LIFETIME)
    return Token(value, now + seconds - min(EXPIRY_MARGIN, seconds / 2))


class TokenCache:
    """Bearer tokens by scope, until they expire. Event loop only."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}

    def get(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token is None:
            return None
        if token.expires <= time.monotonic():
            del self._tokens[scope]
            return None
        return token.value

    def put(self, scope: str, token: Token) -> None:
        self._tokens.pop(scope, None)
        if len(self._tokens) >= TOKENS_KEPT:
            del self._tokens[next(iter(self._tokens))]
        self._tokens[scope] = token

    def forget(self, scope: str) -> None:
        """A token the upstream refused (revoked, or its key rotated) is not used again."""
        self._tokens.pop(scope, None)
