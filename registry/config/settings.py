"""The validated, immutable settings every other layer reads.

Settings are built once in the CLI process and handed to each worker process; they are plain
data so they pickle across the process boundary. No password is kept in clear: the admin
password from the flags is bcrypt-hashed into a User before the settings object exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from registry.config.model import Manifests


class ConfigError(Exception):
    """A setting is missing or wrong; the message is shown to the user as is."""


class ConfigErrors(ConfigError):
    """Every mistake found in one pass over the manifests, each with its own one-line message,
    so that a user fixes them all at once instead of one per run."""

    def __init__(self, messages: Sequence[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = tuple(messages)


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Where and how to reach the bucket; credentials default to the standard AWS chain."""

    bucket: str
    region: str | None = None
    endpoint_url: str | None = None
    prefix: str = ""
    path_style: bool = False
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    sse: str | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 3  # botocore's, counting the first try
    # Bound on each S3 call of a request, retries included (more for calls that move bytes).
    request_timeout: float = 10.0
    max_connections: int = 64  # per worker
    # Blob GETs answered with a 307 to a presigned URL, so the bytes flow from S3 directly.
    redirect: bool = False
    redirect_seconds: int = 1200
    # The host clients reach S3 by, when it differs from `endpoint_url` (a CDN, a public name).
    public_endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str = field(repr=False)
    # How long a lock outlives a worker that died holding it (it is renewed while held), and
    # the longest a request waits for a lock someone else holds.
    lock_lease_seconds: float = 15.0
    max_connections: int = 64  # per worker
    timeout_seconds: float = 5.0  # connecting, and each command
    key_prefix: str = "simple-registry:"


@dataclass(frozen=True, slots=True)
class Settings:
    addr: str = "0.0.0.0:5000"
    datadir: Path = Path("./data")
    certfile: Path | None = None
    keyfile: Path | None = None
    workers: int = 1
    cfgdirs: tuple[Path, ...] = field(default_factory=tuple)
    # Users, roles, bindings and tokens: from the manifests, plus the admin (and anonymous)
    # that the flags define.
    manifests: Manifests = field(default_factory=Manifests)
    # Bearer tokens: a shared secret (HS256) or a PEM private key (RS256/ES256); with neither,
    # a secret is generated once and kept in the data directory.
    token_secret: bytes | None = field(default=None, repr=False)
    token_key_file: Path | None = None
    token_lifetime: int = 300
    # Seconds a request body may go without a chunk arriving before the request fails.
    body_timeout: float = 60.0
    # The token `service` (audience); None: the host the client used.
    service: str | None = None
    # Honour X-Forwarded-Proto/-Host when building the token realm (behind a proxy only).
    trust_forwarded: bool = False
    realm: str = "simple-registry"
    # Scaled mode: upload sessions, locks and the tag index in Redis instead of under the
    # data directory.
    redis: RedisSettings | None = None
    # Blobs and metadata in S3-compatible object storage instead of the data directory.
    s3: S3Settings | None = None
    # /metrics: off entirely, or on its own address (unauthenticated there); with no address,
    # on the main one for authenticated users.
    metrics_enabled: bool = True
    metrics_addr: str | None = None
    # Log level (debug, info, warning, error) and format (json, text).
    log_level: str = "info"
    log_format: str = "json"

    @property
    def tls(self) -> bool:
        return self.certfile is not None and self.keyfile is not None
