"""Real Redis servers for the coordination tests.

One server is shared by the whole session (tests keep apart by key prefix); tests that stop,
restart or configure a server (password, TLS, Sentinel) start private ones. Every server runs
on a free loopback port with no persistence and its own directory, and counts as started only
once it answered a PING (a bounded number of tries, never a fixed sleep).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from registry.coord.base import Coordinator, Index
from registry.coord.local import LocalCoordinator
from registry.coord.redis import RedisCoordinator, Tuning
from tests.backends.process import ServerProcess


def _redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    return path


class RedisProcess(ServerProcess):
    """One redis-server; `stop` then `start` again keeps its port, password and TLS setup.

    `tls` is (certificate, key) for a TLS-only server; the certificate is also its CA.
    `sentinel_of` makes it a Sentinel monitoring that server as the master `mymaster`.
    """

    what = "redis-server"

    def __init__(
        self,
        directory: Path,
        *,
        password: str | None = None,
        tls: tuple[Path, Path] | None = None,
        sentinel_of: RedisProcess | None = None,
    ) -> None:
        super().__init__(directory)
        self.password = password
        self.tls = tls
        self.sentinel_of = sentinel_of

    def url(self, password: str | None = None, db: int = 0) -> str:
        auth = f":{password}@" if password is not None else ""
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/{db}"
        return f"rediss://{auth}127.0.0.1:{self.port}/{db}?ssl_ca_certs={self.tls[0]}"

    def start(self) -> None:
        log = self.dir / "redis.log"
        if self.sentinel_of is not None:
            # Sentinel rewrites its configuration file, so it gets a file of its own.
            conf = self.dir / "sentinel.conf"
            conf.write_text(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nlogfile {log}\n"
                f"sentinel monitor mymaster 127.0.0.1 {self.sentinel_of.port} 1\n"
            )
            args = [_redis_server(), str(conf), "--sentinel"]
        else:
            args = [
                _redis_server(),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
                "--logfile", str(log),
            ]  # fmt: skip
            if self.tls is None:
                args += ["--port", str(self.port)]
            else:
                cert, key = self.tls
                args += ["--port", "0", "--tls-port", str(self.port)]
                args += ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
                args += ["--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
            if self.password is not None:
                args += ["--requirepass", self.password]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        self._wait_ready(log)

    def answers(self) -> bool:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
        if self.tls is not None:
            context = ssl.create_default_context(cafile=str(self.tls[0]))
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        with sock:
            sock.sendall(b"PING\r\n")
            # +PONG, or -NOAUTH from a server with a password: either way it serves.
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 that is its own CA: (certificate, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "simple-registry test redis")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One Redis for the session; tests keep apart by key prefix."""
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    """Start private redis-servers the test may stop and restart; all stopped at its end."""
    started: list[RedisProcess] = []

    def factory(**options: Any) -> RedisProcess:
        server = RedisProcess(tmp_path / f"redis{len(started)}", **options)
        started.append(server)
        server.start()
        return server

    yield factory
    for server in reversed(started):
        server.stop()


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses, so tests share the server without seeing each other."""
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture
async def make_coord(
    redis_server: RedisProcess, prefix: str
) -> AsyncIterator[Callable[..., RedisCoordinator]]:
    """Coordinators under this test's prefix, each with its own client and connection pool
    (like separate workers); on the shared server unless given a URL; closed at the end."""
    made: list[RedisCoordinator] = []

    def factory(url: str | None = None, **options: Any) -> RedisCoordinator:
        options.setdefault("prefix", prefix)
        coord = RedisCoordinator(url or redis_server.url(), Tuning(**options))
        made.append(coord)
        return coord

    yield factory
    for coord in made:
        await coord.close()


# --- coordinators as the conformance suites see them (test_coord_*conformance.py)

TTL = 60.0  # the session TTL of their coordinators
STORE = "file:///conformance"  # the store their indexes and vouches are of


@dataclass
class Coords:
    """`make` gives another worker on the shared state; `expire` makes a session's time run
    out (its last put is older than the session TTL); `root` is the local coordinator's
    folder (None for Redis), for other processes to share."""

    name: str
    make: Callable[[], Coordinator]
    expire: Callable[[str], Awaitable[None]]
    root: Path | None = None


def _local(root: Path) -> Coords:
    async def expire(session_id: str) -> None:
        then = time.time() - TTL - 1
        os.utime(root / "sessions" / session_id, (then, then))

    return Coords("local", lambda: LocalCoordinator(root, session_ttl=TTL), expire, root)


def _redis(make_coord: Callable[..., RedisCoordinator], raw: Redis, prefix: str) -> Coords:
    async def expire(session_id: str) -> None:
        await raw.pexpire(f"{prefix}session:{session_id}", 1)
        for _ in range(500):  # bounded poll: Redis drops the key within a few milliseconds
            if not await raw.exists(f"{prefix}session:{session_id}"):
                return
            await asyncio.sleep(0.01)
        pytest.fail("the session did not expire")

    return Coords("redis", lambda: make_coord(session_ttl=TTL), expire)


@pytest.fixture
async def raw(redis_server: RedisProcess) -> AsyncIterator[Redis]:
    """A plain client on the shared server, to look at keys behind the coordinator's back."""
    client = Redis.from_url(redis_server.url())
    yield client
    await client.aclose()


@pytest.fixture(params=["local", "redis"])
def coords(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_coord: Callable[..., RedisCoordinator],
    raw: Redis,
    prefix: str,
) -> Coords:
    """Each coordinator in turn: the local one in a temporary folder, Redis under this
    test's prefix."""
    if request.param == "local":
        return _local(tmp_path / "coord")
    return _redis(make_coord, raw, prefix)


@pytest.fixture(params=["redis"])
def index(make_coord: Callable[..., RedisCoordinator]) -> Callable[[], Index]:
    """The index of STORE as another worker sees it, on every coordinator that keeps one."""

    def another() -> Index:
        made = make_coord().index(STORE)
        assert made is not None
        return made

    return another


# --- S3: moto's HTTP server (see tests/backends/s3.py)

from aiobotocore.session import get_session  # noqa: E402

from registry.storage.s3 import S3Driver  # noqa: E402
from registry.storage.s3_options import S3Settings  # noqa: E402
from tests.backends.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoServer  # noqa: E402
from tests.backends.stores import Store, filesystem_store, s3_store  # noqa: E402


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server for the session; tests keep apart by bucket."""
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_s3(tmp_path: Path) -> Iterator[Callable[[], MotoServer]]:
    """Start private moto servers the test may stop; all stopped at its end."""
    started: list[MotoServer] = []

    def factory() -> MotoServer:
        server = MotoServer(tmp_path / f"moto{len(started)}")
        started.append(server)
        server.start()
        return server

    yield factory
    for server in reversed(started):
        server.stop()


@pytest.fixture
async def raw_s3(s3_server: MotoServer) -> AsyncIterator[Any]:
    """A plain aiobotocore client on the shared server, to look behind a driver's back."""
    async with get_session().create_client(
        "s3",
        region_name=REGION,
        endpoint_url=s3_server.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        yield client


@pytest.fixture
async def s3_bucket(raw_s3: Any) -> str:
    """A bucket no other test uses."""
    name = f"test-{uuid.uuid4().hex}"
    await raw_s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def make_s3_driver(
    s3_server: MotoServer, s3_bucket: str
) -> AsyncIterator[Callable[..., S3Driver]]:
    """S3Drivers on this test's bucket of the shared server (unless given another endpoint),
    each with its own client, like separate workers; closed at the end."""
    made: list[S3Driver] = []

    def factory(**options: Any) -> S3Driver:
        options.setdefault("bucket", s3_bucket)
        options.setdefault("endpoint_url", s3_server.endpoint)
        options.setdefault("region", REGION)
        options.setdefault("path_style", True)
        options.setdefault("access_key", ACCESS_KEY)
        options.setdefault("secret_key", SECRET_KEY)
        session_token = options.pop("session_token", None)
        driver = S3Driver(S3Settings(**options), session_token=session_token)
        made.append(driver)
        return driver

    yield factory
    for driver in made:
        await driver.close()


@pytest.fixture
def s3_driver(make_s3_driver: Callable[..., S3Driver]) -> S3Driver:
    """A driver on this test's own bucket, under a key prefix."""
    return make_s3_driver(prefix="registry")


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store of this test's own on every driver (see `tests.backends.stores`)."""
    if request.param == "filesystem":
        return filesystem_store(tmp_path / "data")
    make: Callable[..., S3Driver] = request.getfixturevalue("make_s3_driver")
    raw_s3 = request.getfixturevalue("raw_s3")
    return s3_store(make(prefix="registry"), raw_s3, request.getfixturevalue("s3_bucket"))
