"""The client side of the Docker token dance, for tests that talk to the upstream directly.

On a 401 with `WWW-Authenticate: Bearer realm=..,service=..,scope=..` it asks the realm for a
token (with HTTP Basic credentials when given) and sends the request again with it, as docker,
containerd and skopeo do. One token per challenge, no caching: tests count token requests.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Generator

import httpx

_PARAM = re.compile(r'(\w+)="([^"]*)"')


def challenge(header: str) -> dict[str, str]:
    """The parameters of a `Bearer` challenge (realm, service, scope, error)."""
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "bearer":
        raise ValueError(f"not a Bearer challenge: {header!r}")
    return dict(_PARAM.findall(params))


class BearerAuth(httpx.Auth):
    """httpx auth running the token dance; `username` None means anonymous."""

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.credentials = None if username is None else (username, password or "")

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Sync clients only; it reads the token answer alone, so a streamed blob stays
        streamed (httpx's `requires_response_body` would read every response whole)."""
        response = yield request
        header = response.headers.get("WWW-Authenticate", "")
        if response.status_code != 401 or not header.lower().startswith("bearer "):
            return
        params = challenge(header)
        query: dict[str, str] = {k: params[k] for k in ("service", "scope") if k in params}
        headers = {}
        if self.credentials is not None:
            pair = ":".join(self.credentials).encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        token_response = yield httpx.Request("GET", params["realm"], params=query, headers=headers)
        if token_response.status_code != 200:
            return
        token_response.read()
        body = token_response.json()
        token = body.get("token") or body.get("access_token")
        request.headers["Authorization"] = f"Bearer {token}"
        yield request
