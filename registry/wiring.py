"""The composition root: the settings made into the parts the registry runs on.

This is the one module that picks drivers. The section that is configured decides: `storage.s3`
gives the S3 driver, otherwise the filesystem under the data directory; `redis` gives the Redis
coordinator, otherwise the local one under the data directory. Each driver reads its own
section (the S3 driver is built from it, the Redis coordinator by `from_settings`), so
nothing here copies their fields. The S3 and Redis modules are
imported only when configured: the embedded default never loads aiobotocore or redis-py.

- `build_backends`: storage, coordination and the model over them, with their readiness
  checks and what to close; no HTTP. Start-up cleaning and garbage collection use it.
- `build_services`: that plus access control (the `Gate` with its policy, token issuer and
  keys), as `registry.api.app.create_app` receives it; each worker builds its own.
- `share_token_secret` and `check_local_state`: run once by `serve` before any worker starts.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from registry.config.settings import ConfigError, Settings
from registry.coord.base import Coordinator
from registry.coord.local import LocalCoordinator
from registry.model.registry import Registry
from registry.observe import health
from registry.observe.coord import InstrumentedCoordinator
from registry.observe.storage import InstrumentedStorage
from registry.storage.base import StorageDriver
from registry.storage.filesystem import FilesystemDriver

if TYPE_CHECKING:
    # Imported where used: `gc` and start-up cleaning build backends only, and need neither
    # HTTP, auth nor the pull-through cache's client (whose imports cost a CLI run 0.1 s).
    from registry.api.common import Services
    from registry.auth.gate import Gate
    from registry.auth.keys import TokenKeys

# Under the data directory: the local coordinator's locks, upload sessions and scratch files.
COORD_DIR = "_coord"
ISSUER = "simple-registry"

Close = Callable[[], Awaitable[None]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Part(Generic[T]):
    """One built driver, how readiness probes it, and what releases it (None: nothing to)."""

    driver: T
    check: health.Check
    close: Close | None = None


@dataclass(frozen=True, slots=True)
class Backends:
    """Storage and coordination as configured and the model over them.

    `storage` and `coord` are the drivers themselves, for work that needs to know which one
    it has (sweeping the filesystem's temp files); `registry` reaches them through the
    metrics wrappers, as requests do.
    """

    storage: StorageDriver
    coord: Coordinator
    registry: Registry
    checks: tuple[health.Check, ...]
    closers: tuple[Close, ...]

    async def close(self) -> None:
        """Release every client, even when releasing one of them fails (that error is
        raised afterwards)."""
        async with contextlib.AsyncExitStack() as stack:
            for close in self.closers:
                stack.push_async_callback(close)


def build_backends(settings: Settings) -> Backends:
    datadir = settings.datadir.resolve()
    storage, store = _storage(settings, datadir)
    coord = _coordinator(settings, datadir)
    registry = Registry(
        InstrumentedStorage(storage.driver),
        InstrumentedCoordinator(coord.driver),
        store,
        redirect_seconds=_redirect_seconds(settings),
    )
    parts: tuple[_Part[StorageDriver] | _Part[Coordinator], ...] = (storage, coord)
    return Backends(
        storage.driver,
        coord.driver,
        registry,
        tuple(part.check for part in parts),
        tuple(part.close for part in parts if part.close is not None),
    )


def build_services(settings: Settings) -> Services:
    """Everything one serving process answers requests with."""
    from registry.api.common import Services
    from registry.proxy.mirror import Mirror

    backends = build_backends(settings)
    mirror = Mirror(backends.registry, backends.registry.coord, settings.manifests.caches)

    async def close() -> None:
        try:
            await mirror.close()
        finally:
            await backends.close()

    return Services(
        settings,
        backends.registry,
        build_gate(settings),
        health.Health(backends.checks),
        close,
        mirror,
    )


def build_gate(settings: Settings) -> Gate:
    from registry.auth.gate import Gate
    from registry.auth.policy import Policy
    from registry.auth.tokens import TokenIssuer

    issuer = TokenIssuer(
        _token_keys(settings), issuer=ISSUER, lifetime_seconds=settings.token_lifetime
    )
    return Gate(settings, Policy(settings.manifests), issuer)


def _storage(settings: Settings, datadir: Path) -> tuple[_Part[StorageDriver], str]:
    """The storage driver, and the name of the store it holds (for the coordinator's index,
    which must tell two buckets or prefixes on one Redis apart)."""
    if settings.s3 is not None:
        from registry.storage.s3 import S3Driver

        s3 = S3Driver(settings.s3)
        store = f"s3 {s3.endpoint_url or 'aws'} {s3.bucket}/{s3.prefix}"
        return _Part(s3, health.Check("storage", s3.name, s3.check), s3.close), store
    files = FilesystemDriver(datadir)
    probe = health.directory_probe(datadir)
    return _Part(files, health.Check("storage", files.name, probe)), f"file://{datadir}"


def _coordinator(settings: Settings, datadir: Path) -> _Part[Coordinator]:
    if settings.redis is not None:
        from registry.coord.redis import RedisCoordinator

        redis = RedisCoordinator.from_settings(settings.redis)
        return _Part(redis, health.Check("coordinator", redis.name, redis.ping), redis.close)
    root = datadir / COORD_DIR
    local = LocalCoordinator(root)
    probe = health.directory_probe(root / "locks", root / "sessions")
    return _Part(local, health.Check("coordinator", local.name, probe))


def share_token_secret(settings: Settings) -> Settings:
    """With Redis and no configured key, the token secret lives in Redis: every worker of
    every host must sign and verify with the same one."""
    if settings.redis is None or settings.token_secret or settings.token_key_file:
        return settings
    from registry.coord.base import CoordinatorUnavailable
    from registry.coord.redis import shared_secret

    try:
        secret = shared_secret(settings.redis.url, "token-secret", prefix=settings.redis.key_prefix)
    except CoordinatorUnavailable as exc:
        raise ConfigError(f"{exc} (or give -tokensecret)") from None
    return replace(settings, token_secret=secret)


def check_local_state(settings: Settings) -> None:
    """Make the data directory and the token key ready, or fail with one line naming the path.

    Run once by `serve` before it binds and announces: workers are spawned processes, and each
    would otherwise meet the same problem on its own after "listening on" was printed. The
    directories are made by the very constructors the workers run, then written to, since
    an existing directory may still refuse writes (a read-only mount, another owner).
    """
    datadir = settings.datadir.resolve()
    try:
        if settings.s3 is None:
            _probe_writes(FilesystemDriver(datadir).root)
        if settings.redis is None:
            LocalCoordinator(datadir / COORD_DIR)
            _probe_writes(datadir / COORD_DIR)
    except OSError as exc:
        inner = f"{exc.filename}: " if exc.filename and Path(exc.filename) != datadir else ""
        raise ConfigError(
            f"cannot use the data directory {settings.datadir}: {inner}{exc.strerror}"
        ) from None
    # Reads and checks a key file, or makes the secret kept in the data directory.
    _token_keys(settings)


def _probe_writes(directory: Path | str) -> None:
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:  # named after the directory, not the random file name
        raise OSError(exc.errno, exc.strerror, str(directory)) from None


def _token_keys(settings: Settings) -> TokenKeys:
    from registry.auth.keys import TokenKeys, load_or_create_secret

    """A configured key or secret; otherwise the one every worker shares in the data dir."""
    if settings.token_key_file is not None:
        return TokenKeys.from_pem_file(settings.token_key_file)
    if settings.token_secret is not None:
        return TokenKeys.from_secret(settings.token_secret)
    return TokenKeys.from_secret(load_or_create_secret(settings.datadir.resolve()))


def _redirect_seconds(settings: Settings) -> int | None:
    """How long the presigned URLs blob pulls are redirected to stay valid; None when pulls
    are not redirected."""
    s3 = settings.s3
    return s3.redirect_seconds if s3 is not None and s3.redirect else None
