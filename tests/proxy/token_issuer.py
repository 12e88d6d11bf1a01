"""A Docker token endpoint (`GET /token?service=..&scope=..`) for the test upstream.

Distribution with `auth: token` sends clients here through the `realm` of its
`WWW-Authenticate: Bearer` challenge, as Docker Hub sends them to auth.docker.io. The tokens
are JWTs Distribution 2.8 accepts: claims iss/sub/aud/exp/nbf/iat/jti and `access`, signed
ES256 by a key whose self-signed certificate is Distribution's `rootcertbundle` and travels in
the `x5c` header (so Distribution needs no libtrust key id).

Policy, like a public hub: a configured user (HTTP Basic) gets the requested actions among
those the user may do; an anonymous caller gets `pull` on repositories in `public` and nothing
elsewhere — an empty `access` list, not a 401, as Docker Hub answers. A wrong password is 401.
Tests choose which of `token`/`access_token` the answer carries (`include`) and `expires_in`,
and read `requests`/`count` to assert how many token fetches a client made.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.proxy.serving import LoopbackServer, QuietHandler, owner_of

ISSUER = "simple-registry-test-issuer"
SERVICE = "upstream.test"
# What a user may do unless configured otherwise: everything Distribution checks.
ALL_ACTIONS = frozenset({"pull", "push", "delete", "*"})
Include = Literal["token", "access_token", "both"]


@dataclass(frozen=True)
class Access:
    """One entry of a token's `access` claim (and one parsed `scope` parameter)."""

    type: str
    name: str
    actions: tuple[str, ...]

    def claim(self) -> dict[str, object]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def parse_scope(scope: str) -> Access | None:
    """`repository:NAME:pull,push` → Access; None when malformed. The name may hold a colon
    only before the last one (`TYPE:NAME:ACTIONS`), as Docker's parser reads it."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return Access(kind, name, tuple(a for a in actions.split(",") if a))


@dataclass(frozen=True)
class TokenRequest:
    """One call of the endpoint as the test sees it: who asked for what, and the answer."""

    user: str | None  # the authenticated user; None for anonymous (and for a failed login)
    account: str | None  # the `account` query parameter
    scopes: tuple[str, ...]
    status: int
    granted: tuple[Access, ...] = ()  # the token's `access` claim


class SigningKey:
    """An EC P-256 key with a self-signed certificate, made per session: nothing secret is
    kept in the repository, and the certificate is the whole trust bundle."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "simple-registry test tokens")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self._x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]

    def sign(self, claims: dict[str, object]) -> str:
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": self._x5c})


class TokenIssuer:
    """The endpoint, its policy and its counters; `start` serves it, `stop` ends it.

    Settings (`include`, `expires_in`, users, `public`) may change between requests; `reset`
    restores `include`/`expires_in` and clears the counters, not users or public repositories
    (tests use unique repository names)."""

    def __init__(self, service: str = SERVICE, issuer: str = ISSUER) -> None:
        self.service = service
        self.issuer = issuer
        self.key = SigningKey()
        self.users: dict[str, tuple[str, frozenset[str]]] = {}
        self.public: set[str] = set()
        self.include: Include = "both"
        self.expires_in: int | None = 300
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self._server: LoopbackServer | None = None

    # --- configuration

    def add_user(self, name: str, password: str, actions: Iterable[str] = ALL_ACTIONS) -> None:
        """A user who may do `actions` on every repository (and `registry:catalog:*` when
        allowed `*`)."""
        self.users[name] = (password, frozenset(actions))

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
        self.include = "both"
        self.expires_in = 300

    # --- counters

    @property
    def requests(self) -> list[TokenRequest]:
        """A copy of every request seen since the last `reset`, oldest first."""
        with self._lock:
            return list(self._requests)

    def count(
        self, scope: str | None = None, *, user: str | None = None, status: int | None = None
    ) -> int:
        """Requests (optionally: asking for `scope`, by `user`, answered `status`)."""
        return sum(
            1
            for r in self.requests
            if (scope is None or scope in r.scopes)
            and (user is None or r.user == user)
            and (status is None or r.status == status)
        )

    # --- tokens

    def grant(self, user: str | None, scopes: Iterable[str]) -> list[Access]:
        """What `user` (None: anonymous) gets of `scopes`; scopes granting nothing are left out."""
        allowed = self.users[user][1] if user is not None else frozenset()
        granted = []
        for scope in scopes:
            wanted = parse_scope(scope)
            if wanted is None:
                continue
            if user is None:
                public = wanted.type == "repository" and wanted.name in self.public
                may = frozenset({"pull"}) if public else frozenset()
            elif wanted.type == "registry":
                may = allowed if "*" in allowed else frozenset()
            else:
                may = allowed
            actions = tuple(a for a in wanted.actions if a in may)
            if actions:
                granted.append(Access(wanted.type, wanted.name, actions))
        return granted

    def mint(self, subject: str, access: Iterable[Access], lifetime: int = 300) -> str:
        """A token Distribution accepts, for seeding and for tests that need one directly."""
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + lifetime,
            "nbf": now,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": [a.claim() for a in access],
        }
        return self.key.sign(claims)

    def mint_for(self, subject: str, *scopes: str, lifetime: int = 300) -> str:
        """`mint` from scope strings, granted in full (`repository:NAME:pull,push`)."""
        return self.mint(subject, [a for s in scopes if (a := parse_scope(s))], lifetime)

    def answer(
        self, user: str | None, scopes: Iterable[str]
    ) -> tuple[dict[str, object], tuple[Access, ...]]:
        """The JSON body of a successful token response under the current settings, and the
        access it grants."""
        lifetime = self.expires_in if self.expires_in is not None else 60  # the spec's default
        granted = tuple(self.grant(user, scopes))
        token = self.mint(user or "", granted, max(lifetime, 1))
        body: dict[str, object] = {}
        if self.include in ("token", "both"):
            body["token"] = token
        if self.include in ("access_token", "both"):
            body["access_token"] = token
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        issued = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        body["issued_at"] = issued.isoformat().replace("+00:00", "Z")
        return body, granted

    def record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # --- serving

    @property
    def url(self) -> str:
        assert self._server is not None, "the token issuer is not started"
        return self._server.url

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def start(self) -> None:
        self._server = LoopbackServer(_TokenHandler, self)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic` header; None if absent or malformed."""
    if header is None or not header.lower().startswith("basic "):
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class _TokenHandler(QuietHandler):
    def do_GET(self) -> None:
        issuer: TokenIssuer = owner_of(self)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        scopes = tuple(s for value in query.get("scope", []) for s in value.split(" ") if s)
        account = query.get("account", [None])[0]
        credentials = basic_credentials(self.headers.get("Authorization"))
        if url.path != "/token":
            self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})
            return
        if credentials is not None:
            user, password = credentials
            if user not in issuer.users or issuer.users[user][0] != password:
                issuer.record(TokenRequest(None, account, scopes, 401))
                self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad login"}]})
                return
        else:
            user = None
        body, granted = issuer.answer(user, scopes)
        issuer.record(TokenRequest(user, account, scopes, 200, granted))
        self._send(200, body)

    def _send(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="test upstream tokens"')
        self.end_headers()
        self.wfile.write(data)
