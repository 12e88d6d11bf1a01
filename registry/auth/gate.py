"""Authentication and authorization on the request path, and the challenges that follow.

Every `/v2/` request is answered as the Docker token specification expects: credentials are
Basic (a user's password or a static token), a bearer JWT issued by `/token`, or a static
token as a bearer; without any, the caller is `anonymous` when the manifests define that user.
A refusal says what would help: 401 with a `Bearer` challenge naming the realm, the service and
the scope (plus `error="invalid_token"` or `error="insufficient_scope"` for bearer tokens), and
403 `DENIED` only for a caller who logged in with a password and still lacks the right, since
authenticating again cannot change that.
"""

from __future__ import annotations

import base64
import binascii
import re

from starlette.requests import HTTPConnection

from registry.auth.policy import Policy
from registry.auth.scopes import Need, Principal
from registry.auth.tokens import InvalidToken, TokenIssuer, allows
from registry.config.settings import Settings
from registry.observe import events
from registry.oci.errors import Denied, Unauthorized

# What may name this registry in a challenge: an RFC 3986 host (a name of unreserved
# characters, an IPv4 address, or an IPv6 address in brackets) and an optional port. Anything
# else in `Host` or `X-Forwarded-Host` (quotes, commas, spaces) would be copied into the
# quoted `realm` and `service` of `WWW-Authenticate` and break the header for the client.
_HOST = re.compile(r"(?:[A-Za-z0-9._~-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
_SCHEMES = ("http", "https")


class Gate:
    def __init__(self, settings: Settings, policy: Policy, issuer: TokenIssuer) -> None:
        self._settings = settings
        self.policy = policy
        self.issuer = issuer

    # -- who -------------------------------------------------------------------------------

    async def identify(self, request: HTTPConnection, *needs: Need) -> Principal:
        """The caller, or 401 with a challenge when credentials are missing or wrong."""
        header = request.headers.get("authorization")
        if header is None:
            anonymous = self.policy.anonymous()
            if anonymous is None:
                raise self.challenge(request, needs, "authentication required")
            events.authenticated("anonymous", anonymous.name)
            return anonymous
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "basic":
            user, password = basic_credentials(value)
            principal = None
            if user is not None and password is not None:
                principal = await self.policy.by_password(user, password)
            if principal is None:
                events.auth_failed("basic")
                raise self.challenge(request, needs, "invalid username or password")
            events.authenticated("basic", principal.name)
            return principal
        if scheme.lower() == "bearer":
            try:
                principal = self._bearer(request, value, needs)
            except Unauthorized:
                events.auth_failed("bearer")
                raise
            events.authenticated("bearer", principal.name)
            return principal
        events.auth_failed("other")
        raise self.challenge(request, needs, f"unsupported authorization scheme {scheme[:20]!r}")

    def _bearer(self, request: HTTPConnection, value: str, needs: tuple[Need, ...]) -> Principal:
        static = self.policy.by_token(value)
        if static is not None:
            return static
        try:
            verified = self.issuer.verify(value, self.service(request))
        except InvalidToken as exc:
            raise self.challenge(request, needs, exc.reason, error="invalid_token") from None
        principal = Principal(verified.subject, verified.subject == "anonymous", verified.access)
        if not self.policy.exists(principal):
            raise self.challenge(request, needs, "the token's user is gone", error="invalid_token")
        return principal

    # -- may -------------------------------------------------------------------------------

    async def may(self, principal: Principal, need: Need) -> bool:
        """RBAC decides; a bearer token can only narrow that to its `access` claim."""
        if principal.access is not None and not allows(
            principal.access, need.token_type, need.token_name, need.action
        ):
            return False
        return self.policy.may(principal, need)

    async def may_list(self, principal: Principal, need: Need) -> bool:
        """Whether a listing the caller may already read (the catalog) shows `need`'s name.

        A bearer JWT gets here with `registry:catalog:*`, which is what clients ask for alone,
        so its repository claims would hide everything; its subject's RBAC decides instead, as
        Harbor does. Any other caller (a password, a static token) keeps its own limits.
        """
        if principal.access is not None:
            return self.policy.may(principal, need)
        return await self.may(principal, need)

    async def require(self, request: HTTPConnection, *needs: Need) -> Principal:
        principal = await self.identify(request, *needs)
        for need in needs:
            if await self.may(principal, need):
                continue
            message = f"{principal.name} may not {need.verb} {need.resource} of {need.name!r}"
            if principal.access is not None:
                raise self.challenge(request, needs, message, error="insufficient_scope")
            if principal.anonymous:
                raise self.challenge(request, needs, message)
            raise Denied(message, detail={"scope": need.token_scope})
        return principal

    # -- the challenge ---------------------------------------------------------------------

    def service(self, request: HTTPConnection) -> str:
        return self._settings.service or self._host(request)

    def realm(self, request: HTTPConnection) -> str:
        scheme = str(request.scope.get("scheme", "http"))
        if self._settings.trust_forwarded:
            forwarded = _first(request.headers.get("x-forwarded-proto")).lower()
            scheme = forwarded if forwarded in _SCHEMES else scheme
        return f"{scheme}://{self._host(request)}/token"

    def _host(self, request: HTTPConnection) -> str:
        """The host the client asked for, when it is one; else one that still works."""
        candidates = [request.headers.get("host", "")]
        if self._settings.trust_forwarded:
            candidates.insert(0, _first(request.headers.get("x-forwarded-host")))
        for host in candidates:
            if _HOST.fullmatch(host):
                return host
        return self._fallback_host(request)

    def _fallback_host(self, request: HTTPConnection) -> str:
        """For a request without a usable host: the configured service when it is a host name
        (the docs advise setting it to the public one), else the address this connection
        reached, which a client that connected directly can reach again."""
        service = self._settings.service or ""
        if _HOST.fullmatch(service):
            return service
        server = request.scope.get("server")
        if not server or server[1] is None:
            return "localhost"
        address, port = str(server[0]), int(server[1])
        return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"

    def challenge(
        self,
        request: HTTPConnection,
        needs: tuple[Need, ...],
        message: str,
        error: str | None = None,
    ) -> Unauthorized:
        parts = [f'realm="{self.realm(request)}"', f'service="{self.service(request)}"']
        scopes = " ".join(dict.fromkeys(need.token_scope for need in needs))
        if scopes:
            parts.append(f'scope="{scopes}"')
        if error:
            parts.append(f'error="{error}"')
        return Unauthorized(message, headers={"WWW-Authenticate": "Bearer " + ",".join(parts)})


def _first(header: str | None) -> str:
    """The first entry of a header a chain of proxies may have appended to."""
    return (header or "").split(",")[0].strip()


def basic_credentials(value: str) -> tuple[str | None, str | None]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, None)
