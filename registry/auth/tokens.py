"""Bearer tokens in the Docker token specification's shape, issued and checked by us alone.

Every decision a token carries sits in its signed `access` claim, so checking a request never
looks anything up. The verifier is deliberately narrow: exactly one algorithm (the key's), every
registered claim required, and the time claims checked here against an injectable clock with a
fixed leeway of `LEEWAY_SECONDS`, because clients and replicas disagree about the time by a few
seconds and a token that is refused the instant it is issued makes clients loop.

Refresh tokens (the OAuth2 `POST /token` flow) are JWTs from the same key, told apart from
access tokens by a `use` claim that both kinds carry and each verifier insists on, so neither
can stand in for the other.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from registry.auth.keys import TokenKeys
from registry.config.serve_options import MIN_TOKEN_TIMEOUT, WebOptions
from registry.oci.names import is_valid_name
from registry.options import default_of

LEEWAY_SECONDS = 30
"""Tolerated clock skew for `exp`, `nbf` and `iat` between the issuer and whoever verifies."""

MIN_LIFETIME_SECONDS = MIN_TOKEN_TIMEOUT
"""Docker clients assume 60 s when `expires_in` is absent and refresh on that basis."""

DEFAULT_LIFETIME_SECONDS: int = default_of(WebOptions, "token_lifetime")
DEFAULT_REFRESH_LIFETIME_SECONDS = 7 * 24 * 3600

_ACCESS_USE, _REFRESH_USE = "access", "refresh"
_WRONG_USE = {_ACCESS_USE: "not an access token", _REFRESH_USE: "not a refresh token"}
_REQUIRED = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti", "use")

_RESOURCE_TYPE = re.compile(r"([a-z0-9]+)(?:\([a-z0-9]+\))?")
_RESOURCE_NAME = re.compile(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*")
_ACTION = re.compile(r"[a-z]+|\*")
_MALFORMED_PREVIEW = 200


class InvalidToken(Exception):
    """The token cannot be trusted; `reason` is safe to show to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Access:
    """One entry of the `access` claim: what may be done to one resource."""

    type: str
    name: str
    actions: tuple[str, ...]

    def to_claim(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


@dataclass(frozen=True, slots=True)
class ParsedScopes:
    access: list[Access]
    malformed: list[str]  # each cut to 200 characters: they are for logs, and come from clients


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: str  # RFC 3339, UTC
    jti: str


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str
    access: tuple[Access, ...]
    expires_at: float  # seconds since the epoch
    jti: str


def parse_scopes(texts: Iterable[str]) -> ParsedScopes:
    """Every `scope` value of a token request, merged per resource, in first-seen order.

    Clients send one `scope` parameter per resource or several scopes space-separated in one;
    both end up here. A malformed scope is not an error: the token endpoint grants what it
    can (downscoping), so the bad ones are only set aside for the caller to log. The resource
    type may carry a class (`repository(plugin)`), which is dropped; `repository` names must
    follow the distribution grammar, so a `host:port/` prefix makes the scope malformed.
    """
    merged: dict[tuple[str, str], list[str]] = {}
    malformed: list[str] = []
    for text in texts:
        for item in text.split():
            parsed = _parse_one(item)
            if parsed is None:
                malformed.append(item[:_MALFORMED_PREVIEW])
                continue
            type_, name, actions = parsed
            known = merged.setdefault((type_, name), [])
            known.extend(action for action in actions if action not in known)
    access = [Access(type_, name, tuple(actions)) for (type_, name), actions in merged.items()]
    return ParsedScopes(access, malformed)


def parse_scope(text: str) -> list[Access]:
    """The well-formed scopes of one `scope` value; see `parse_scopes` for the malformed ones."""
    return parse_scopes([text]).access


def _parse_one(item: str) -> tuple[str, str, list[str]] | None:
    # The name sits between the first and the last colon: types and actions never contain one.
    type_part, sep, rest = item.partition(":")
    name, sep2, action_part = rest.rpartition(":")
    if not sep or not sep2:
        return None
    type_match = _RESOURCE_TYPE.fullmatch(type_part)
    if type_match is None:
        return None
    type_ = type_match.group(1)
    valid_name = is_valid_name(name) if type_ == "repository" else _RESOURCE_NAME.fullmatch(name)
    if not valid_name:
        return None
    actions: list[str] = []
    for action in action_part.split(","):
        if not action:  # the grammar allows empty actions; they grant nothing
            continue
        if not _ACTION.fullmatch(action):
            return None
        if action not in actions:
            actions.append(action)
    return (type_, name, actions) if actions else None


def allows(access: tuple[Access, ...], type_: str, name: str, action: str) -> bool:
    """Whether the granted access covers one action; a granted `*` covers them all."""
    return any(
        entry.type == type_
        and entry.name == name
        and (action in entry.actions or "*" in entry.actions)
        for entry in access
    )


class TokenIssuer:
    """Signs and checks our access and refresh tokens with one key."""

    def __init__(
        self,
        keys: TokenKeys,
        issuer: str,
        lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS,
        refresh_lifetime_seconds: int = DEFAULT_REFRESH_LIFETIME_SECONDS,
    ) -> None:
        for label, value in (
            ("lifetime_seconds", lifetime_seconds),
            ("refresh_lifetime_seconds", refresh_lifetime_seconds),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{label} must be an integer")
            if value < MIN_LIFETIME_SECONDS:
                raise ValueError(
                    f"{label} is {value}; clients assume tokens live at least "
                    f"{MIN_LIFETIME_SECONDS} s, so it must be {MIN_LIFETIME_SECONDS} or more"
                )
        if not issuer:
            raise ValueError("the token issuer must not be empty")
        self._keys = keys
        self._issuer = issuer
        self.lifetime_seconds = lifetime_seconds
        self.refresh_lifetime_seconds = refresh_lifetime_seconds

    def issue(
        self, subject: str, audience: str, access: list[Access], now: float | None = None
    ) -> IssuedToken:
        extra = {"access": [entry.to_claim() for entry in access]}
        token, iat, jti = self._sign(
            subject, audience, _ACCESS_USE, self.lifetime_seconds, extra, now
        )
        issued_at = datetime.fromtimestamp(iat, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return IssuedToken(token, self.lifetime_seconds, issued_at, jti)

    def verify(self, token: str, audience: str, now: float | None = None) -> VerifiedToken:
        claims = self._decode(token, audience, _ACCESS_USE, now)
        return VerifiedToken(
            subject=claims["sub"],
            access=_access_from_claim(claims.get("access")),
            expires_at=float(claims["exp"]),
            jti=claims["jti"],
        )

    def issue_refresh(self, subject: str, audience: str, now: float | None = None) -> str:
        token, _, _ = self._sign(
            subject, audience, _REFRESH_USE, self.refresh_lifetime_seconds, {}, now
        )
        return token

    def verify_refresh(self, token: str, audience: str, now: float | None = None) -> str:
        """The subject the refresh token was issued to; it must ask for fresh access anew."""
        claims = self._decode(token, audience, _REFRESH_USE, now)
        if "access" in claims:
            raise InvalidToken("not a refresh token")
        subject: str = claims["sub"]
        return subject

    def _sign(
        self,
        subject: str,
        audience: str,
        use: str,
        lifetime: int,
        extra: Mapping[str, Any],
        now: float | None,
    ) -> tuple[str, int, str]:
        if not audience:
            raise ValueError("the token audience (the service) must not be empty")
        iat = int(time.time() if now is None else now)
        jti = secrets.token_hex(16)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": subject,
            "aud": audience,
            "exp": iat + lifetime,
            "nbf": iat,
            "iat": iat,
            "jti": jti,
            "use": use,
            **extra,
        }
        token = jwt.encode(claims, self._keys.signing_key, algorithm=self._keys.algorithm)
        return token, iat, jti

    def _decode(self, token: str, audience: str, use: str, now: float | None) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._keys.verification_key,
                algorithms=[self._keys.algorithm],
                audience=audience,
                issuer=self._issuer,
                options={
                    "require": list(_REQUIRED),
                    # Checked below against `now`, which PyJWT cannot be given.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(_reason(exc)) from exc
        # PyJWT checks these types only from 2.10 on.
        if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
            raise InvalidToken("token claims are malformed")
        _check_times(claims, time.time() if now is None else now)
        if claims["use"] != use:
            raise InvalidToken(_WRONG_USE[use])
        return claims


def _check_times(claims: Mapping[str, Any], now: float) -> None:
    exp, nbf, iat = (_numeric_date(claims, name) for name in ("exp", "nbf", "iat"))
    if exp <= now - LEEWAY_SECONDS:
        raise InvalidToken("token has expired")
    if nbf > now + LEEWAY_SECONDS or iat > now + LEEWAY_SECONDS:
        raise InvalidToken("token is not valid yet")


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = claims[name]
    # bool is an int to Python, and json.loads accepts NaN and Infinity: a forever token.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidToken(f"token claim {name} is not a date")
    return float(value)


def _access_from_claim(claim: object) -> tuple[Access, ...]:
    if not isinstance(claim, list):
        raise InvalidToken("token access claim is malformed")
    entries: list[Access] = []
    for entry in claim:
        if not isinstance(entry, dict):
            raise InvalidToken("token access claim is malformed")
        type_, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if (
            not isinstance(type_, str)
            or not type_
            or not isinstance(name, str)
            or not name
            or not isinstance(actions, list)
            or not all(isinstance(action, str) for action in actions)
        ):
            raise InvalidToken("token access claim is malformed")
        entries.append(Access(type_, name, tuple(actions)))
    return tuple(entries)


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token lacks the {exc.claim} claim"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "token is for another service"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "token is from another issuer"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "token signature is invalid"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "token algorithm is not accepted"
    return "token is malformed"
