"""What only S3Driver does, against moto's HTTP server (see conftest.py): real requests over
loopback. The behaviour every driver shares is in test_storage_conformance.py.

Each test has its own bucket; `raw_s3` is a plain client to look at the bucket behind the
driver's back. Failure tests point drivers at endpoints that refuse, hang or fail, and bound
how long the driver may take to give up. No test sleeps to synchronize.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from registry.storage.base import Incoming, StorageDriver, StorageUnavailable
from registry.storage.s3 import STREAM_CHUNK, S3Driver
from registry.storage.s3_options import S3Settings
from registry.storage.s3_uploads import MIN_PART
from tests.backends.s3 import MotoServer

pytestmark = pytest.mark.anyio

MakeDriver = Callable[..., S3Driver]
MiB = 1024 * 1024
PART = MIN_PART


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _keys(raw_s3: Any, bucket: str, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    async for page in raw_s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix
    ):
        keys.update(item["Key"] for item in page.get("Contents", ()))
    return keys


def test_implements_the_protocol() -> None:
    driver: StorageDriver = S3Driver(S3Settings(bucket="bucket"))
    assert driver.name == "s3"


@pytest.mark.parametrize(
    ("endpoint", "signed"),
    [(None, False), ("https://minio.example.com", False), ("http://minio:9000", True)],
)
def test_payloads_are_hashed_for_signing_only_without_tls(
    endpoint: str | None, signed: bool
) -> None:
    """Over TLS a second SHA-256 of every part buys nothing (the registry checks digests)."""
    config: Any = S3Driver(S3Settings(bucket="bucket", endpoint_url=endpoint)).clients.config
    assert config.s3["payload_signing_enabled"] is signed
    assert config.signature_version == "s3v4"


# --- object options


async def test_sse_and_storage_class_apply_to_writes_and_moves(
    make_s3_driver: MakeDriver, raw_s3: Any, s3_bucket: str
) -> None:
    driver = make_s3_driver(sse="AES256", storage_class="STANDARD_IA")
    await driver.write("a", b"data")
    head = await raw_s3.head_object(Bucket=s3_bucket, Key="a")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["StorageClass"] == "STANDARD_IA"

    await driver.move("a", "b")
    head = await raw_s3.head_object(Bucket=s3_bucket, Key="b")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["StorageClass"] == "STANDARD_IA"


@pytest.mark.parametrize("size", [10, PART + 10], ids=["put-object", "multipart"])
async def test_s3_options_apply_to_the_object_written_verified(
    make_s3_driver: MakeDriver, raw_s3: Any, s3_bucket: str, size: int
) -> None:
    driver = make_s3_driver(sse="AES256", storage_class="STANDARD_IA")
    driver.part_size = PART
    data = b"s" * size
    await driver.write_verified("blobs/k", Incoming(_pieces(data, MiB)), lambda: None)
    head = await raw_s3.head_object(Bucket=s3_bucket, Key="blobs/k")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ContentLength"] == size


# --- delete_prefix and move


async def test_delete_prefix_keeps_an_object_named_like_the_prefix(
    s3_driver: S3Driver, raw_s3: Any, s3_bucket: str
) -> None:
    """On S3 (unlike a directory tree) `a` may be an object and a prefix at once."""
    await s3_driver.write("_uploads/u1", b"object")
    await s3_driver.write("_uploads/u1/data", b"scratch")
    await s3_driver.delete_prefix("_uploads/u1")
    assert await _keys(raw_s3, s3_bucket) == {"registry/_uploads/u1"}


async def test_move_above_the_copy_limit_copies_part_by_part(
    s3_driver: S3Driver, raw_s3: Any, s3_bucket: str
) -> None:
    # As if 5 MiB were CopyObject's limit: 12 MiB and a bit go as three UploadPartCopy parts.
    s3_driver.copy_limit = 5 * MiB
    s3_driver.copy_part_size = 5 * MiB
    data = random.Random(2).randbytes(12 * MiB + 7)
    await s3_driver.write("_uploads/u/data", data)

    await s3_driver.move("_uploads/u/data", "blobs/sha256/dd/dd")
    head = await raw_s3.head_object(Bucket=s3_bucket, Key="registry/blobs/sha256/dd/dd")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object of three parts
    assert await s3_driver.read("blobs/sha256/dd/dd") == data
    assert await s3_driver.size("_uploads/u/data") is None
    uploads = await raw_s3.list_multipart_uploads(Bucket=s3_bucket)
    assert uploads.get("Uploads", []) == []


# --- keys


async def test_prefixes_keep_drivers_apart(
    make_s3_driver: MakeDriver, raw_s3: Any, s3_bucket: str
) -> None:
    one, two = make_s3_driver(prefix="one"), make_s3_driver(prefix="/two/")
    await one.write("repositories/a/tag", b"one")
    await two.write("repositories/a/tag", b"two")
    await two.write("repositories/b/tag", b"two")
    assert await _keys(raw_s3, s3_bucket) == {
        "one/repositories/a/tag",
        "two/repositories/a/tag",
        "two/repositories/b/tag",
    }
    assert await one.read("repositories/a/tag") == b"one"
    assert await two.read("repositories/a/tag") == b"two"
    assert await one.list("repositories") == ["a"]
    assert sorted(await two.list("repositories")) == ["a", "b"]
    assert await one.size("repositories/b/tag") is None

    await one.delete_prefix("repositories")
    assert await one.list("repositories") == []
    assert await two.read("repositories/a/tag") == b"two"


@pytest.mark.parametrize("prefix", ["a/../b", "a//b", "..", "./a", "a\x00"])
def test_unsafe_prefixes_are_rejected(prefix: str) -> None:
    with pytest.raises(ValueError, match="unsafe S3 key prefix"):
        S3Driver(S3Settings(bucket="bucket", prefix=prefix))


# --- an unusable service


SECRET = "SECRET-sentinel-0123456789"
TOKEN = "TOKEN-sentinel-0123456789"


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    async for _ in chunks:
        pass


def _assert_no_credentials(exc: BaseException) -> None:
    assert SECRET not in str(exc) and TOKEN not in str(exc)


async def _fails_quickly(call: Awaitable[object], within: float) -> StorageUnavailable:
    """The call fails as unavailable; one that hangs past a generous bound raises TimeoutError
    instead, which fails the test without measuring how long the failure took."""
    with pytest.raises(StorageUnavailable) as caught:
        await asyncio.wait_for(call, timeout=within + 5)
    _assert_no_credentials(caught.value)
    return caught.value


async def test_stopped_endpoint_is_unavailable_quickly(
    start_s3: Callable[[], MotoServer], make_s3_driver: MakeDriver
) -> None:
    server = start_s3()
    driver = make_s3_driver(
        endpoint_url=server.endpoint,
        secret_key=SECRET,
        session_token=TOKEN,
        max_attempts=2,
        connect_timeout=1,
    )
    server.create_bucket(driver.bucket)
    await driver.write("k", b"v")  # the driver works, and holds pooled connections
    assert await driver.read("k") == b"v"

    server.stop()
    error = await _fails_quickly(driver.read("k"), within=4)
    assert server.endpoint in str(error)
    await _fails_quickly(driver.size("k"), within=4)
    await _fails_quickly(driver.write("k", b"w"), within=4)
    await _fails_quickly(driver.list("x"), within=4)
    await _fails_quickly(_drain(driver.stream("k", 1, 5)), within=4)
    await _fails_quickly(driver.check(), within=4)


async def test_endpoint_that_never_answers_times_out(make_s3_driver: MakeDriver) -> None:
    # A listening socket nobody accepts on: connections complete, no answer ever comes.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        driver = make_s3_driver(
            endpoint_url=f"http://127.0.0.1:{port}",
            secret_key=SECRET,
            read_timeout=0.5,
            max_attempts=1,
        )
        error = await _fails_quickly(driver.read("k"), within=3)
        assert "timed out" in str(error)


async def test_a_silent_endpoint_gives_up_at_the_deadline_retries_included(
    make_s3_driver: MakeDriver,
) -> None:
    """Connections open and nothing answers, as from a store that is slow rather than down:
    the call ends at its deadline, whether botocore's read timeout is longer than it (no
    attempt ends by itself) or shorter (retries fit in it no matter how many are allowed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        for options in ({}, {"read_timeout": 0.3, "max_attempts": 20}):
            driver = make_s3_driver(endpoint_url=endpoint, request_timeout=0.5, **options)
            with pytest.raises(StorageUnavailable) as caught:
                await asyncio.wait_for(driver.size("k"), timeout=30)  # bounds a hang only
            assert "S3 HeadObject on bucket" in str(caught.value)
            assert "did not finish within its deadline of 0.5 s" in str(caught.value)


async def test_a_body_that_stalls_ends_the_stream(make_s3_driver: MakeDriver) -> None:
    """A GetObject that sends its headers and part of its body, then nothing: the stream
    yields what came and then fails, rather than waiting for the rest."""
    stalled = asyncio.Event()

    async def stalling(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % (3 * STREAM_CHUNK)
        )
        writer.write(b"x" * (STREAM_CHUNK + 100))
        await writer.drain()
        await stalled.wait()  # the connection stays open, silent
        writer.close()

    server = await asyncio.start_server(stalling, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        driver = make_s3_driver(endpoint_url=f"http://127.0.0.1:{port}", request_timeout=0.5)
        received: list[bytes] = []

        async def pull() -> None:
            async for chunk in driver.stream("k"):
                received.append(chunk)

        try:
            with pytest.raises(StorageUnavailable, match=r"GetObject .* within its deadline"):
                await asyncio.wait_for(pull(), timeout=30)  # bounds a hang only
        finally:
            stalled.set()
    assert received == [b"x" * STREAM_CHUNK]


async def test_server_errors_after_retries_are_unavailable(make_s3_driver: MakeDriver) -> None:
    requests = 0

    async def failing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await reader.readuntil(b"\r\n\r\n")
        requests += 1
        body = b"<Error><Code>InternalError</Code><Message>We failed</Message></Error>"
        writer.write(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(failing, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        driver = make_s3_driver(
            endpoint_url=f"http://127.0.0.1:{port}",
            secret_key=SECRET,
            session_token=TOKEN,
            max_attempts=2,
        )
        error = await _fails_quickly(driver.read("k"), within=4)
    assert "InternalError (HTTP 500)" in str(error)
    assert requests == 2  # the first try and one retry


async def test_missing_bucket_is_unavailable(make_s3_driver: MakeDriver) -> None:
    driver = make_s3_driver(bucket="no-such-bucket-here")
    error = await _fails_quickly(driver.check(), within=4)
    assert "no-such-bucket-here" in str(error)
    with pytest.raises(StorageUnavailable, match="NoSuchBucket"):
        await driver.read("k")


async def test_close_then_use_again(s3_driver: S3Driver) -> None:
    await s3_driver.write("k", b"v")
    await s3_driver.close()
    assert await s3_driver.read("k") == b"v"  # a fresh client
