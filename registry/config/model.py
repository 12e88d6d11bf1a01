"""The typed result of loading the YAML manifests (`-cfgdir`): what every other layer reads.

The loader (`registry.config.manifests`) turns files into these objects after strict
validation; RBAC, the token service and later the proxy, storage and GC read only these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

# Resources a Role may name (those of the Go simple-registry's manifests), and "*" for all.
RESOURCES = frozenset({"catalog", "tags", "blobs", "manifests", "*"})
# HTTP verbs a Role may name; "*" means all. HEAD is always allowed by GET.
HTTP_VERBS = frozenset({"HEAD", "GET", "POST", "PUT", "PATCH", "DELETE"})
# Registry actions a Role may also name, as in the Docker token specification.
ACTIONS = frozenset({"pull", "push", "delete"})
# A cached tag whose upstream fails is served for a day past its ttl unless `maxStale` says.
DEFAULT_MAX_STALE_SECONDS = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Source:
    """Where a manifest came from, for error messages and `check-config`."""

    file: Path
    document: int  # 1-based index of the YAML document in the file


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str | None  # bcrypt; None: the user cannot log in with a password
    groups: tuple[str, ...] = ()
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    resources: frozenset[str]  # subset of RESOURCES
    verbs: frozenset[str]  # HTTP verbs (upper case) and/or ACTIONS (lower case), or {"*"}
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Subject:
    kind: str  # "User" or "Group"
    name: str


@dataclass(frozen=True, slots=True)
class RoleBinding:
    name: str
    subjects: tuple[Subject, ...]
    role: str
    scopes: tuple[re.Pattern[str], ...]  # searched (not anchored) in the repository name
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class StaticToken:
    """A bearer token for robots and CI, bound to a user."""

    name: str
    username: str
    value_sha256: str  # hex SHA-256 of the token value; the value itself is never kept
    expires_at: datetime | None = None  # timezone-aware
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Upstream:
    url: str
    # Bounds the connection and each wait for more bytes, never a whole download; None: none.
    timeout_seconds: float | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # password, passwordFile, passwordEnv
    # How long a cached tag is served without asking the upstream; None: asked every time.
    ttl_seconds: float | None = None
    # How long past its ttl a cached tag may still be served while the upstream fails.
    max_stale_seconds: float = DEFAULT_MAX_STALE_SECONDS
    # The registry hosts this upstream answers for (containerd's `?ns=`): lower case, maybe
    # with `:port`; listed by one cache at most.
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PullThroughCache:
    name: str
    upstream: Upstream
    scopes: tuple[re.Pattern[str], ...]  # searched (not anchored) in the local name
    source: Source | None = None
    # Stripped from the local name to make the upstream one: "" or a name ending in "/". A
    # local name that does not start with it is never this cache's.
    prefix: str = ""
    # Pushes and deletes under the cache's names, where RBAC allows them; refused otherwise.
    allow_pushes: bool = False


@dataclass(frozen=True, slots=True)
class WebConfig:
    addr: str | None = None
    token_secret: str | None = field(default=None, repr=False)  # tokenSecret(File|Env)
    token_timeout_seconds: int | None = None
    body_timeout_seconds: float | None = None
    ui: bool | None = None
    certfile: str | None = None
    keyfile: str | None = None
    trust_forwarded_headers: bool | None = None
    service: str | None = None  # the token `service`/`aud`; default: the registry's host


@dataclass(frozen=True, slots=True)
class Configuration:
    """The merged `Configuration` documents (later documents override earlier fields).

    Sections for later features (storage, redis, proxy, gc, metrics) are kept as validated
    plain mappings until their issues give them types.
    """

    data_dir: str | None = None
    web: WebConfig = field(default_factory=WebConfig)
    sections: dict[str, dict[str, object]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Manifests:
    configuration: Configuration = field(default_factory=Configuration)
    users: tuple[User, ...] = ()
    roles: tuple[Role, ...] = ()
    bindings: tuple[RoleBinding, ...] = ()
    tokens: tuple[StaticToken, ...] = ()
    caches: tuple[PullThroughCache, ...] = ()
    warnings: tuple[str, ...] = ()  # e.g. a Token with a plaintext `value`
