"""Every driver refuses the same unsafe keys, in every method, before touching the store.

The S3 driver points at a port where nothing listens: a request it made would fail with
StorageUnavailable, not ValueError. The filesystem driver works in a temporary directory,
which must stay empty apart from its own temp-file directory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from registry.storage.base import Incoming, Listed, StorageDriver
from registry.storage.filesystem import FilesystemDriver
from registry.storage.keys import check_key
from registry.storage.s3 import S3Driver
from registry.storage.s3_options import S3Settings

pytestmark = pytest.mark.anyio

UNSAFE = ["", "/abs", "a//b", "a/", "..", ".", "a/../b", "a/./b", "../x", "a/..", "a\x00b"]
SAFE = ["a", "a/b", "a.b/c..d", ".hidden/x", "_uploads/1/data"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["filesystem", "s3"])
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    if request.param == "filesystem":
        yield FilesystemDriver(tmp_path / "store")
        assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["_tmp"]
        return
    s3 = S3Driver(
        S3Settings(
            bucket="bucket", endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="b"
        )
    )
    yield s3
    await s3.close()


async def _pieces() -> AsyncIterator[bytes]:
    yield b"x"


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    async for _ in chunks:
        pass


async def _drain_pages(pages: AsyncIterator[list[Listed]]) -> None:
    async for _ in pages:
        pass


def _calls(driver: StorageDriver, key: str) -> list[Callable[[], Awaitable[object]]]:
    """Every method of the protocol, with `key` in each of its key arguments in turn."""
    return [
        lambda: driver.read(key),
        lambda: driver.write(key, b"x"),
        lambda: driver.size(key),
        lambda: driver.modified(key),
        lambda: driver.delete(key),
        lambda: driver.delete_prefix(key),
        lambda: driver.list(key),
        lambda: _drain(driver.stream(key)),
        lambda: driver.url_for(key, 60),
        lambda: driver.append(key, 0, Incoming(_pieces())),
        lambda: driver.write_verified(key, Incoming(_pieces()), lambda: None),
        lambda: driver.complete(key, None, key),
        lambda: driver.complete(key, None, "ok"),
        lambda: driver.complete("ok", None, key),
        lambda: driver.abort(key, None),
        lambda: driver.move(key, "ok"),
        lambda: driver.move("ok", key),
        lambda: _drain_pages(driver.walk(key)),
        lambda: driver.delete_many([key]),
        lambda: driver.delete_many(["ok", key]),  # every key checked before any request
        lambda: driver.delete_blobs([key]),
        lambda: driver.delete_blobs(["ok", key]),
    ]


@pytest.mark.parametrize("key", UNSAFE)
async def test_unsafe_keys_are_refused_by_every_method(driver: StorageDriver, key: str) -> None:
    for index, call in enumerate(_calls(driver, key)):
        with pytest.raises(ValueError, match="unsafe storage key"):
            await call()
            pytest.fail(f"call {index} accepted {key!r}")


@pytest.mark.parametrize("key", UNSAFE)
def test_the_rule_refuses(key: str) -> None:
    with pytest.raises(ValueError, match="unsafe storage key"):
        check_key(key)


@pytest.mark.parametrize("key", SAFE)
def test_the_rule_accepts(key: str) -> None:
    assert check_key(key) == key
