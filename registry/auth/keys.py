"""The keys bearer tokens are signed with, and the one secret we may have to invent.

A shared secret (HS256) is the default because it needs no setup; a PEM private key (RS256,
ES256/384/512) is for operators who want to hand the public half to someone else. Either way
the verification key and the algorithm travel together in one object, so the verifier can never
be talked into checking a token with an algorithm the key was not made for.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from registry.config.settings import ConfigError

SECRET_BYTES = 32
"""Generated secrets match HS256's 256-bit output: shorter keys weaken it, longer add nothing."""

MIN_RSA_BITS = 2048
SECRETS_DIR = "_secrets"
SECRET_FILE = "token-secret"

# The configured secret is not used as the HMAC key directly: it is first bound to this purpose,
# so a secret reused elsewhere (a password, another service's key) does not produce tokens that
# other service would accept, and PyJWT always sees a full-length key (it warns on short ones).
_HMAC_CONTEXT = b"simple-registry/token-signing/v1"

_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

SigningKey = bytes | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
VerificationKey = bytes | rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class TokenKeys:
    """An algorithm with its signing and verification keys; the repr never shows a key."""

    __slots__ = ("algorithm", "signing_key", "verification_key")

    algorithm: str
    signing_key: SigningKey
    verification_key: VerificationKey

    def __init__(
        self, algorithm: str, signing_key: SigningKey, verification_key: VerificationKey
    ) -> None:
        self.algorithm = algorithm
        self.signing_key = signing_key
        self.verification_key = verification_key

    @classmethod
    def from_secret(cls, secret: bytes) -> TokenKeys:
        if not secret:
            raise ConfigError("the token secret is empty")
        key = hmac.new(_HMAC_CONTEXT, secret, hashlib.sha256).digest()
        return cls("HS256", key, key)

    @classmethod
    def from_pem(cls, data: bytes, password: bytes | None = None, source: str = "key") -> TokenKeys:
        try:
            private = load_pem_private_key(data, password=password)
        except TypeError as exc:  # cryptography's way of saying the password is missing or extra
            raise ConfigError(f"{source}: {exc}") from None
        except ValueError:
            raise ConfigError(
                f"{source}: not a PEM private key (or a wrong password for an encrypted one)"
            ) from None
        if isinstance(private, rsa.RSAPrivateKey):
            if private.key_size < MIN_RSA_BITS:
                raise ConfigError(
                    f"{source}: RSA key of {private.key_size} bits; at least {MIN_RSA_BITS} "
                    "are required"
                )
            return cls("RS256", private, private.public_key())
        if isinstance(private, ec.EllipticCurvePrivateKey):
            algorithm = _EC_ALGORITHMS.get(private.curve.name)
            if algorithm is None:
                raise ConfigError(
                    f"{source}: EC curve {private.curve.name} is not supported; use P-256 "
                    "(ES256), P-384 or P-521"
                )
            return cls(algorithm, private, private.public_key())
        raise ConfigError(
            f"{source}: {type(private).__name__} keys are not supported; use an RSA or EC "
            "(P-256) private key"
        )

    @classmethod
    def from_pem_file(cls, path: Path, password: bytes | None = None) -> TokenKeys:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read token key {path}: {exc.strerror}") from None
        return cls.from_pem(data, password, source=f"token key {path}")

    def __repr__(self) -> str:
        return f"TokenKeys({self.algorithm}, <redacted>)"


def weak_secret_warning(secret: bytes) -> str | None:
    """A user-chosen secret is accepted whatever its length, but a short one deserves a word."""
    if len(secret) >= SECRET_BYTES:
        return None
    return (
        f"the token secret is {len(secret)} bytes long; tokens signed with it can be forged by "
        f"guessing it offline. Use at least {SECRET_BYTES} random bytes."
    )


def load_or_create_secret(datadir: Path) -> bytes:
    """The secret kept in the data directory, made on first use.

    Without it every restart and every worker process would sign with its own random key and
    reject the others' tokens. Workers start together, so creation must have a single winner:
    the secret is written in full to a private temporary file and then hard-linked into place,
    which fails for everyone but the first; the losers read the winner's file. The link makes
    the file appear complete or not at all, so no reader ever sees a partial secret.
    """
    directory = datadir / SECRETS_DIR
    path = directory / SECRET_FILE
    try:
        existing = _read_secret(path)
        if existing is not None:
            return existing
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)
        fd, temporary = tempfile.mkstemp(prefix=f".{SECRET_FILE}.", dir=directory)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(secrets.token_bytes(SECRET_BYTES))
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
        _fsync_directory(directory)
        created = _read_secret(path)
    except OSError as exc:
        raise ConfigError(f"cannot keep the token secret in {directory}: {exc.strerror}") from None
    if created is None:  # pragma: no cover - someone removed it between link and read
        raise ConfigError(f"the token secret {path} vanished while it was being created")
    return created


def _read_secret(path: Path) -> bytes | None:
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        return None
    if not secret:
        raise ConfigError(f"the token secret {path} is empty; delete it to have a new one made")
    return secret


def _fsync_directory(directory: Path) -> None:
    """Make the new name durable: a crash must not bring back a world without the secret."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
