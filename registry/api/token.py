"""`/token`: the Docker token endpoint (GET) and its OAuth2 form (POST).

Credentials are checked, then each requested scope is cut down to what RBAC grants: a user
asking for `pull,push` where only `pull` is allowed gets a token for `pull` (the registry then
answers the push with `insufficient_scope`). Only wrong credentials are refused.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.api.common import services
from registry.auth.gate import basic_credentials
from registry.auth.scopes import Principal
from registry.auth.tokens import InvalidToken, parse_scopes
from registry.observe import events
from registry.oci.errors import RegistryError, Unauthorized, Unsupported

MAX_FORM_BYTES = 64 * 1024
MAX_SCOPES = 100  # a token names each granted scope; an unbounded list is a cheap attack


class _BadRequest(RegistryError):
    code, status = "UNSUPPORTED", 400


class Token(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        """The Docker flow: Basic credentials (or anonymous access), scopes in the query."""
        query = request.query_params
        principal = await _login(request)
        refresh = query.get("offline_token") == "true" and not principal.anonymous
        service = services(request).gate.service(request)
        return _answer(request, principal, service, query.getlist("scope"), refresh)

    async def post(self, request: Request) -> Response:
        """The OAuth2 flow: `grant_type=password` or `refresh_token`, form-encoded, as
        containerd and docker send it."""
        form = await _form(request)
        service = form.get("service") or services(request).gate.service(request)
        grant = form.get("grant_type")
        principal = await _grantee(request, form, service)
        refresh = form.get("access_type") == "offline" or grant == "refresh_token"
        return _answer(request, principal, service, form.get("scope", "").split(), refresh)


def _answer(
    request: Request, principal: Principal, service: str, scopes: list[str], refresh: bool
) -> Response:
    """The token for the granted part of `scopes`, in the shape both flows answer."""
    gate = services(request).gate
    if len(scopes) > MAX_SCOPES:
        raise _BadRequest(f"at most {MAX_SCOPES} scopes may be asked for at once")
    granted = gate.policy.grant(principal, parse_scopes(scopes).access)
    issued = gate.issuer.issue(principal.name, service, granted)
    events.token_issued("access")
    body: dict[str, object] = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
        "scope": " ".join(str(a) for a in granted),
    }
    if refresh:
        body["refresh_token"] = gate.issuer.issue_refresh(principal.name, service)
        events.token_issued("refresh")
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def _login(request: Request) -> Principal:
    """Basic credentials, or anonymous when the manifests allow it (never a bearer token)."""
    gate = services(request).gate
    header = request.headers.get("authorization")
    challenge = {"WWW-Authenticate": f'Basic realm="{services(request).settings.realm}"'}
    if header is None:
        anonymous = gate.policy.anonymous()
        if anonymous is None:
            raise Unauthorized("credentials required", headers=challenge)
        events.authenticated("anonymous", anonymous.name)
        return anonymous
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        events.auth_failed("other")
        raise Unauthorized("the token endpoint takes Basic credentials", headers=challenge)
    user, password = basic_credentials(value.strip())
    principal = None
    if user is not None and password is not None:
        principal = await gate.policy.by_password(user, password)
    if principal is None:
        events.auth_failed("basic")
        raise Unauthorized("invalid username or password", headers=challenge)
    events.authenticated("basic", principal.name)
    return principal


async def _form(request: Request) -> dict[str, str]:
    """The form-encoded body, its last value for each field, at most MAX_FORM_BYTES of it."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            raise _BadRequest("the form is too large")
    return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}


async def _grantee(request: Request, form: dict[str, str], service: str) -> Principal:
    """Who the form's grant proves the client to be: a password or a refresh token."""
    gate = services(request).gate
    grant = form.get("grant_type")
    if grant == "password":
        principal = await gate.policy.by_password(
            form.get("username", ""), form.get("password", "")
        )
        if principal is None:
            events.auth_failed("password")
            raise Unauthorized("invalid username or password")
        events.authenticated("password", principal.name)
        return principal
    if grant == "refresh_token":
        try:
            subject = gate.issuer.verify_refresh(form.get("refresh_token", ""), service)
        except InvalidToken as exc:
            events.auth_failed("refresh_token")
            raise Unauthorized(exc.reason) from None
        principal = Principal(subject)
        if not gate.policy.exists(principal):
            events.auth_failed("refresh_token")
            raise Unauthorized("the token's user is gone")
        events.authenticated("refresh_token", principal.name)
        return principal
    raise Unsupported(f"grant_type {str(grant)[:40]!r} is not supported")
