"""The composition root: which drivers the settings give, what they import, how they close.

The scaled cases build against the real redis-server and moto S3 server of `scaled_services`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from registry.api.app import create_app
from registry.config.settings import Settings
from registry.coord.local import LocalCoordinator
from registry.coord.redis import RedisCoordinator
from registry.coord.redis_options import RedisSettings
from registry.storage.filesystem import FilesystemDriver
from registry.storage.s3 import S3Driver
from registry.storage.s3_options import S3Settings
from registry.wiring import Backends, build_backends, build_services
from tests.conftest import new_bucket

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
# A database no other test's registry uses, so its client list shows only this test's clients.
REDIS_DB = 9


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _scaled(services: tuple[str, str], datadir: Path) -> Settings:
    redis_url, endpoint = services
    return Settings(
        datadir=datadir,
        s3=S3Settings(
            bucket=new_bucket(endpoint),
            endpoint_url=endpoint,
            region="us-east-1",
            path_style=True,
            access_key="testing",
            secret_key="testing",
        ),
        redis=RedisSettings(url=f"{redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"),
    )


async def _ready(backends: Backends) -> dict[str, str]:
    return {check.name: check.backend for check in backends.checks if await _passes(check.probe)}


async def _passes(probe: Callable[[], Awaitable[None]]) -> bool:
    await probe()  # raises when the backend does not answer
    return True


async def test_the_embedded_default_is_the_filesystem_and_local_coordination(
    tmp_path: Path,
) -> None:
    backends = build_backends(Settings(datadir=tmp_path))
    assert isinstance(backends.storage, FilesystemDriver)
    assert isinstance(backends.coord, LocalCoordinator)
    assert backends.closers == ()
    assert await _ready(backends) == {"storage": "filesystem", "coordinator": "local"}
    await backends.registry.storage.write("probe", b"x")
    assert (tmp_path / "probe").read_bytes() == b"x"
    await backends.close()


def test_the_embedded_default_never_imports_the_s3_or_redis_clients(tmp_path: Path) -> None:
    """In a fresh interpreter: this test process has loaded both already."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from registry.api.app import create_app\n"
        "from registry.config.settings import Settings\n"
        "from registry.startup import clean\n"
        "from registry.wiring import build_services, check_local_state\n"
        "settings = Settings(datadir=Path(sys.argv[1]))\n"
        "check_local_state(settings)\n"
        "create_app(build_services(settings))\n"
        "loaded = {m.partition('.')[0] for m in sys.modules}\n"
        "print(json.dumps(sorted(loaded & {'aiobotocore', 'botocore', 'aiohttp', 'redis'})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


async def test_scaled_settings_give_s3_and_redis(
    scaled_services: tuple[str, str], tmp_path: Path
) -> None:
    settings = _scaled(scaled_services, tmp_path / "data")
    backends = build_backends(settings)
    try:
        assert isinstance(backends.storage, S3Driver)
        assert isinstance(backends.coord, RedisCoordinator)
        assert settings.s3 is not None
        assert backends.storage.bucket == settings.s3.bucket
        assert await _ready(backends) == {"storage": "s3", "coordinator": "redis"}
    finally:
        await backends.close()
    # Nothing of the data went to the data directory.
    assert not (tmp_path / "data" / "_coord").exists()
    assert not (tmp_path / "data" / "blobs").exists()


async def test_closing_the_services_releases_the_redis_connections(
    scaled_services: tuple[str, str], tmp_path: Path
) -> None:
    services = build_services(_scaled(scaled_services, tmp_path / "data"))
    create_app(services)  # the application closes them through its lifespan
    admin = Redis.from_url(scaled_services[0])
    try:
        assert (await services.health.ready())[0]
        assert await _clients_on(admin, REDIS_DB) >= 1
        await services.close()
        assert await _clients_on(admin, REDIS_DB) == 0
    finally:
        await admin.aclose()


async def _clients_on(admin: Redis, db: int) -> int:
    clients = await admin.client_list()
    return sum(1 for client in clients if int(client["db"]) == db)


async def test_close_releases_every_client_even_when_one_fails(tmp_path: Path) -> None:
    closed: list[str] = []

    async def fails() -> None:
        closed.append("fails")
        raise OSError("connection reset")

    async def works() -> None:
        closed.append("works")

    backends = build_backends(Settings(datadir=tmp_path))
    broken = Backends(
        backends.storage, backends.coord, backends.registry, backends.checks, (works, fails)
    )
    with pytest.raises(OSError, match="connection reset"):
        await broken.close()
    assert sorted(closed) == ["fails", "works"]


def test_each_driver_reads_every_field_of_its_section() -> None:
    """Looks inside the drivers (nothing is connected here): a field mapped to the wrong
    option or dropped would otherwise only show against a real store that enforces it."""
    s3 = S3Driver(
        S3Settings(
            bucket="b",
            region="eu-west-3",
            endpoint_url="https://s3.example",
            prefix="team/",
            path_style=True,
            access_key="ak",
            secret_key="sk",
            sse="aws:kms",
            sse_kms_key_id="key-1",
            storage_class="STANDARD_IA",
            connect_timeout=1.5,
            read_timeout=7.0,
            max_attempts=5,
            request_timeout=3.0,
            max_connections=9,
            public_endpoint="https://cdn.example",
        )
    )
    clients = s3.clients
    config: Any = clients.config  # botocore reads these by name; its stubs do not declare them
    assert (s3.bucket, s3.prefix, s3.endpoint_url, s3.request_timeout) == (
        "b",
        "team/",
        "https://s3.example",
        3.0,
    )
    assert (clients.region, clients.endpoint_url, clients.public_endpoint) == (
        "eu-west-3",
        "https://s3.example",
        "https://cdn.example",
    )
    assert (clients._access_key, clients._secret_key) == ("ak", "sk")
    assert (config.connect_timeout, config.read_timeout, config.max_pool_connections) == (
        1.5,
        7.0,
        9,
    )
    assert config.retries["total_max_attempts"] == 5
    assert config.s3["addressing_style"] == "path"
    assert s3._put_options == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "key-1",
        "StorageClass": "STANDARD_IA",
    }
    redis = RedisCoordinator.from_settings(
        RedisSettings(
            url="redis://127.0.0.1:1/3",
            lock_lease_seconds=4.0,
            max_connections=7,
            timeout_seconds=0.5,
            key_prefix="team:",
        )
    )
    pool = redis._redis.connection_pool
    assert (redis._prefix, redis._lock_ttl) == ("team:", 4.0)
    assert (pool.max_connections, pool.connection_kwargs["db"]) == (7, 3)
    assert pool.connection_kwargs["socket_timeout"] == 0.5
