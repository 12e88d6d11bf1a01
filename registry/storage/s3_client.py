"""The S3 driver's aiobotocore clients: how they are configured, made, shared and released.

One long-lived client per driver, created on first use inside the running event loop (so its
connection pool belongs to that loop) and released by `close()`. Presigned URLs are signed for
the host clients will use, so a public endpoint other than the one the registry talks to gets
a second client that only signs. The credentials stay in here: they go to botocore and nowhere
else (no attribute of the driver, no message, no log).

This module loads aiobotocore; like `s3.py`, it is imported only when S3 is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config as BotoConfig

if TYPE_CHECKING:  # the stubs are a test dependency
    from types_aiobotocore_s3 import S3Client

    from registry.storage.s3_options import S3Settings

# One S3 call under its deadline, its errors translated: the driver's `S3Driver._call`.
Bounded = Callable[[str], contextlib.AbstractAsyncContextManager[None]]


class S3Clients:
    """The pooled client (`get`) and the presigning one (`signer`) of one driver."""

    def __init__(
        self, settings: S3Settings, bounded: Bounded, *, session_token: str | None = None
    ) -> None:
        """Nothing connects here. `bounded` puts the creation of a client under a deadline:
        without static keys, the AWS credential chain asks the network (the instance metadata
        service, STS for web identity)."""
        self.region = settings.region
        self.endpoint_url = settings.endpoint_url
        self.public_endpoint = settings.public_endpoint
        self.config = _config(settings)
        self._bounded = bounded
        self._access_key = settings.access_key
        self._secret_key = settings.secret_key
        self._session_token = session_token
        self._session = get_session()
        self._client: S3Client | None = None
        self._public: S3Client | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> S3Client:
        """The client, created once per event loop (its connection pool is bound to it)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # First use, or a new loop (a CLI that runs several `asyncio.run`): the old
            # client's connections belong to a loop that is gone, so start afresh.
            self._loop, self._client, self._public, self._stack = loop, None, None, None
            self._lock = asyncio.Lock()
        if self._client is not None:
            return self._client
        assert self._lock is not None
        async with self._lock:
            if self._client is None:
                stack = contextlib.AsyncExitStack()
                self._client = await self._new_client(stack, self.endpoint_url)
                self._stack = stack
        return self._client

    async def signer(self) -> S3Client:
        """The client that presigns: the main one, or one for the public endpoint."""
        client = await self.get()
        if self.public_endpoint is None:
            return client
        if self._public is None:
            assert self._lock is not None and self._stack is not None
            async with self._lock:
                if self._public is None:
                    self._public = await self._new_client(self._stack, self.public_endpoint)
        return self._public

    async def _new_client(
        self, stack: contextlib.AsyncExitStack[bool | None], endpoint: str | None
    ) -> S3Client:
        async with self._bounded("connect"):
            return await stack.enter_async_context(
                self._session.create_client(
                    "s3",
                    region_name=self.region,
                    endpoint_url=endpoint,
                    aws_access_key_id=self._access_key,
                    aws_secret_access_key=self._secret_key,
                    aws_session_token=self._session_token,
                    config=self.config,
                )
            )

    async def close(self) -> None:
        """Release the clients and their connections; the next call makes new ones."""
        stack, self._stack, self._client, self._public = self._stack, None, None, None
        if stack is not None and self._loop is asyncio.get_running_loop():
            await stack.aclose()


def _config(settings: S3Settings) -> AioConfig:
    """The clients' timeouts, retries, pool size and signing, from the `storage.s3` section."""
    options: dict[str, Any] = {}
    if "request_checksum_calculation" in BotoConfig.OPTION_DEFAULTS:  # botocore >= 1.36
        # The registry verifies digests itself; "when_required" also keeps S3-compatible
        # stores that do not know the newer flexible checksums working.
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    return AioConfig(
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
        max_pool_connections=settings.max_connections,
        s3={
            "addressing_style": "path" if settings.path_style else "auto",
            # Over TLS, botocore would SHA-256 every part a second time just to sign its
            # payload; TLS already protects the bytes, and the registry verifies the
            # blob's digest itself. Over plain HTTP, payloads stay signed.
            "payload_signing_enabled": not _is_tls(settings.endpoint_url),
        },
        # SigV4 everywhere: botocore would presign with SigV2 in us-east-1, which S3 is
        # retiring and newer regions and most S3-compatible stores refuse.
        signature_version="s3v4",
        **options,
    )


def _is_tls(endpoint_url: str | None) -> bool:
    """AWS itself (no endpoint) or an `https://` endpoint."""
    return endpoint_url is None or endpoint_url.lower().startswith("https://")
