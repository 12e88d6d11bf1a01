"""The validated, immutable settings every other layer reads.

Each option is declared once (`registry.config.serve_options` and the drivers' option
modules); the defaults here are read from those declarations, not written again.

Settings are built once in the CLI process and handed to each worker process; they are plain
data so they pickle across the process boundary. No password is kept in clear: the admin
password from the flags is bcrypt-hashed into a User before the settings object exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from registry.config.model import Manifests
from registry.config.serve_options import ServeOptions, WebOptions
from registry.coord.redis_options import RedisSettings
from registry.options import default_of
from registry.storage.s3_options import S3Settings


class ConfigError(Exception):
    """A setting is missing or wrong; the message is shown to the user as is."""


class ConfigErrors(ConfigError):
    """Every mistake found in one pass over the manifests, each with its own one-line message,
    so that a user fixes them all at once instead of one per run."""

    def __init__(self, messages: Sequence[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = tuple(messages)


@dataclass(frozen=True, slots=True)
class Settings:
    addr: str = default_of(WebOptions, "addr")
    datadir: Path = Path(default_of(ServeOptions, "datadir"))
    certfile: Path | None = None
    keyfile: Path | None = None
    workers: int = default_of(ServeOptions, "workers")
    cfgdirs: tuple[Path, ...] = field(default_factory=tuple)
    # Users, roles, bindings and tokens: from the manifests, plus the admin (and anonymous)
    # that the flags define.
    manifests: Manifests = field(default_factory=Manifests)
    # Bearer tokens: a shared secret (HS256) or a PEM private key (RS256/ES256); with neither,
    # a secret is generated once and kept in the data directory.
    token_secret: bytes | None = field(default=None, repr=False)
    token_key_file: Path | None = None
    token_lifetime: int = default_of(WebOptions, "token_lifetime")
    # Seconds a request body may go without a chunk arriving before the request fails.
    body_timeout: float = default_of(WebOptions, "body_timeout")
    # The token `service` (audience); None: the host the client used.
    service: str | None = None
    # The web UI at /ui/ (registry.ui), and / redirecting there.
    ui: bool = False
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
    log_level: str = default_of(ServeOptions, "log_level")
    log_format: str = "json"

    @property
    def tls(self) -> bool:
        return self.certfile is not None and self.keyfile is not None


__all__ = ["ConfigError", "ConfigErrors", "RedisSettings", "S3Settings", "Settings"]
