"""The validated, immutable settings every other layer reads.

Settings are built once in the CLI process and handed to each worker process; they are plain
data so they pickle across the process boundary. No secret is kept in clear: the admin
password is reduced to a salted hash before the settings object exists.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """A setting is missing or wrong; the message is shown to the user as is."""


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """A salted SHA-256 of a password given in clear, compared in constant time.

    The password arrives in clear (flag, file or environment), so a slow hash buys nothing
    against someone who can read the process; a fast salted one keeps every request cheap.
    """

    salt: bytes
    digest: bytes

    @classmethod
    def of(cls, password: str) -> PasswordCheck:
        salt = os.urandom(16)
        return cls(salt, hashlib.sha256(salt + password.encode()).digest())

    def matches(self, password: str) -> bool:
        candidate = hashlib.sha256(self.salt + password.encode()).digest()
        return hmac.compare_digest(candidate, self.digest)

    def __repr__(self) -> str:
        return "PasswordCheck(<redacted>)"


@dataclass(frozen=True, slots=True)
class Settings:
    addr: str = "0.0.0.0:5000"
    datadir: Path = Path("./data")
    admin_name: str = "admin"
    admin_password: PasswordCheck | None = None
    anonymous: bool = False
    certfile: Path | None = None
    keyfile: Path | None = None
    workers: int = 1
    cfgdirs: tuple[Path, ...] = field(default_factory=tuple)
    realm: str = "simple-registry"

    @property
    def tls(self) -> bool:
        return self.certfile is not None and self.keyfile is not None
