"""Authentication and authorization for the embedded default.

With an admin password, every `/v2/` request must carry that user's Basic credentials and the
admin may do everything; with `-anonymous` and no password, everyone may do everything. The
class is the seam the RBAC policy replaces: handlers only call `require` and `may`.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import HTTPConnection

from registry.auth.scopes import ANONYMOUS, Need, Principal
from registry.config.settings import Settings
from registry.oci.errors import Unauthorized


class Gate:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._challenge = f'Basic realm="{settings.realm}", charset="UTF-8"'

    def _unauthorized(self, message: str) -> Unauthorized:
        return Unauthorized(message, headers={"WWW-Authenticate": self._challenge})

    async def identify(self, request: HTTPConnection) -> Principal:
        """The caller, or 401 with a challenge when credentials are missing or wrong."""
        header = request.headers.get("authorization")
        if self._settings.admin_password is None:
            return ANONYMOUS
        if header is None:
            raise self._unauthorized("authentication required")
        user, password = _basic_credentials(header)
        if user is None or password is None:
            raise self._unauthorized("only Basic credentials are accepted")
        name_ok = hmac.compare_digest(user.encode(), self._settings.admin_name.encode())
        if not (self._settings.admin_password.matches(password) and name_ok):
            raise self._unauthorized("invalid username or password")
        return Principal(user)

    async def may(self, principal: Principal, need: Need) -> bool:
        """Anonymous mode grants everything; otherwise only the admin gets this far."""
        del principal, need
        return True

    async def require(self, request: HTTPConnection, *needs: Need) -> Principal:
        principal = await self.identify(request)
        for need in needs:
            if not await self.may(principal, need):
                raise self._unauthorized(f"access to {need.token_scope} is denied")
        return principal


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, None)
