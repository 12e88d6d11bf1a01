"""S3 driver: the same keys as the filesystem driver, stored as objects in one bucket.

One long-lived aiobotocore client per driver, created on first use inside the running event
loop (so its connection pool belongs to that loop) and released by `close()`. Small objects
are read and written whole; PutObject is atomic, so a reader sees the old object or the new one.
Blobs stream with ranged GetObject in bounded chunks. `move` is a server-side copy (multipart
UploadPartCopy above CopyObject's 5 GiB limit) followed by deleting the source.

Failures of the service itself (unreachable, timed out, 5xx after the client's retries,
credentials or bucket that no longer work) surface as `StorageUnavailable`, which the registry
answers with 503. Messages name the endpoint, bucket and operation, never a credential.

Chunked uploads (`append`) come with the S3 upload design (multipart state in `coord`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from registry.storage.base import ObjectNotFound, StorageUnavailable

STREAM_CHUNK = 1024 * 1024  # the largest chunk `stream` yields
COPY_LIMIT = 5 * 1024**3  # CopyObject copies at most 5 GiB; larger objects go part by part
COPY_PART = 512 * 1024**2  # part size of a multipart copy (S3: 5 MiB .. 5 GiB)
MAX_PARTS = 10_000  # S3's limit on parts per multipart upload
COPY_CONCURRENCY = 8  # UploadPartCopy requests in flight per move
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys

_NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404"})
# The request was refused because of how the registry is set up (credentials, bucket, region,
# KMS key), not because of what it asked: the service is unusable until an operator acts.
_MISCONFIGURED = frozenset(
    {
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidBucketName",
        "InvalidToken",
        "KMS.DisabledException",
        "KMS.KMSInvalidStateException",
        "KMS.NotFoundException",
        "NoSuchBucket",
        "PermanentRedirect",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
_THROTTLED = frozenset({"SlowDown", "RequestTimeout", "ServiceUnavailable", "Throttling"})
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    BotoConnectionError,  # connect refused/timed out, DNS, TLS, proxy
    HTTPClientError,  # read timeout, connection closed, body stream broken
    IncompleteReadError,  # the body ended before its Content-Length
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
)
_CREDENTIAL_ERRORS: tuple[type[BaseException], ...] = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
)


class S3Driver:
    name = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        region: str | None = None,
        endpoint_url: str | None = None,
        path_style: bool = False,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        storage_class: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 60,
        max_attempts: int = 3,
        max_pool_connections: int = 64,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 bucket name is required")
        if (access_key is None) != (secret_key is None):
            raise ValueError("give both an S3 access key and a secret key, or neither")
        if sse_kms_key_id is not None and sse != "aws:kms":
            raise ValueError('an SSE KMS key id needs sse="aws:kms"')
        if max_attempts < 1:
            raise ValueError("max_attempts counts the first try: at least 1")
        self.bucket = bucket
        self.prefix = _normalize_prefix(prefix)
        self.region = region
        self.endpoint_url = endpoint_url
        self._where = _redact_url(endpoint_url) if endpoint_url else "AWS S3"
        self._access_key = access_key
        self._secret_key = secret_key
        self._session_token = session_token
        options: dict[str, Any] = {}
        if "request_checksum_calculation" in BotoConfig.OPTION_DEFAULTS:  # botocore >= 1.36
            # The registry verifies digests itself; "when_required" also keeps S3-compatible
            # stores that do not know the newer flexible checksums working.
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        self._config = AioConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_pool_connections,
            s3={"addressing_style": "path" if path_style else "auto"},
            **options,
        )
        self._put_options: dict[str, str] = {}
        if sse is not None:
            self._put_options["ServerSideEncryption"] = sse
        if sse_kms_key_id is not None:
            self._put_options["SSEKMSKeyId"] = sse_kms_key_id
        if storage_class is not None:
            self._put_options["StorageClass"] = storage_class
        # Tunable by tests, to exercise the multipart copy without 5 GiB objects.
        self.copy_limit = COPY_LIMIT
        self.copy_part_size = COPY_PART
        self._session: Any = get_session()
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"S3Driver(bucket={self.bucket!r}, prefix={self.prefix!r}, at {self._where})"

    # --- the client

    async def _s3(self) -> Any:
        """The client, created once per event loop (its connection pool is bound to it)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # First use, or a new loop (a CLI that runs several `asyncio.run`): the old
            # client's connections belong to a loop that is gone, so start afresh.
            self._loop, self._client, self._stack = loop, None, None
            self._lock = asyncio.Lock()
        if self._client is not None:
            return self._client
        assert self._lock is not None
        async with self._lock:
            if self._client is None:
                stack = contextlib.AsyncExitStack()
                with self._errors("connect"):
                    self._client = await stack.enter_async_context(
                        self._session.create_client(
                            "s3",
                            region_name=self.region,
                            endpoint_url=self.endpoint_url,
                            aws_access_key_id=self._access_key,
                            aws_secret_access_key=self._secret_key,
                            aws_session_token=self._session_token,
                            config=self._config,
                        )
                    )
                self._stack = stack
        return self._client

    async def close(self) -> None:
        """Release the client and its connections; the next call makes a new one."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None and self._loop is asyncio.get_running_loop():
            await stack.aclose()

    async def check(self) -> None:
        """Raise StorageUnavailable unless the bucket answers with these credentials."""
        with self._errors("HeadBucket"):
            s3 = await self._s3()
            await s3.head_bucket(Bucket=self.bucket)

    # --- keys and errors

    def _key(self, key: str) -> str:
        """Keys come from validated parts; this re-checks them as a second line of defence."""
        _check_key(key)
        return self.prefix + key

    @contextlib.contextmanager
    def _errors(self, operation: str, key: str | None = None) -> Iterator[None]:
        """Translate botocore's errors: a missing key into ObjectNotFound (when `key` is the
        object asked for), an unusable service into StorageUnavailable; others pass through."""
        try:
            yield
        except ClientError as exc:
            code, status = _error_code(exc), _http_status(exc)
            if key is not None and code in _NOT_FOUND:
                raise ObjectNotFound(key) from None
            what = f"S3 {operation} on bucket {self.bucket!r} at {self._where}"
            if status >= 500 or code in _THROTTLED:
                raise StorageUnavailable(
                    f"{what} failed: {code} (HTTP {status}), still after retries"
                ) from exc
            if code in _MISCONFIGURED or code in _NOT_FOUND or status in (301, 307, 403):
                raise StorageUnavailable(
                    f"{what} was refused: {code} (HTTP {status}); check the bucket, region, "
                    "endpoint and credentials"
                ) from exc
            raise
        except _CREDENTIAL_ERRORS as exc:
            raise StorageUnavailable(
                f"no usable S3 credentials for bucket {self.bucket!r}: {type(exc).__name__}"
            ) from exc
        except _NETWORK_ERRORS as exc:
            raise StorageUnavailable(
                f"S3 {operation} on bucket {self.bucket!r}: {self._where} is unreachable or "
                f"timed out ({type(exc).__name__}: {self._redact(str(exc))})"
            ) from exc

    def _redact(self, text: str) -> str:
        for secret in (self._secret_key, self._session_token):
            if secret:
                text = text.replace(secret, "***")
        return text

    # --- the StorageDriver protocol

    async def read(self, key: str) -> bytes:
        full = self._key(key)
        with self._errors("GetObject", key):
            s3 = await self._s3()
            response = await s3.get_object(Bucket=self.bucket, Key=full)
            async with response["Body"] as body:
                return bytes(await body.read())

    async def write(self, key: str, data: bytes) -> None:
        full = self._key(key)
        with self._errors("PutObject"):
            s3 = await self._s3()
            await s3.put_object(Bucket=self.bucket, Key=full, Body=data, **self._put_options)

    async def size(self, key: str) -> int | None:
        full = self._key(key)
        try:
            with self._errors("HeadObject", key):
                s3 = await self._s3()
                head = await s3.head_object(Bucket=self.bucket, Key=full)
        except ObjectNotFound:
            return None
        return int(head["ContentLength"])

    async def delete(self, key: str) -> bool:
        # DeleteObject succeeds for absent keys, so whether there was one is asked first.
        if await self.size(key) is None:
            return False
        with self._errors("DeleteObject"):
            s3 = await self._s3()
            await s3.delete_object(Bucket=self.bucket, Key=self._key(key))
        return True

    async def delete_prefix(self, prefix: str) -> None:
        start = self._key(prefix) + "/"
        with self._errors("DeleteObjects"):
            s3 = await self._s3()
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start, PaginationConfig={"PageSize": DELETE_BATCH}
            )
            async for page in pages:
                keys = [item["Key"] for item in page.get("Contents", ())]
                for first in range(0, len(keys), DELETE_BATCH):
                    batch = keys[first : first + DELETE_BATCH]
                    answer = await s3.delete_objects(
                        Bucket=self.bucket,
                        Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                    )
                    if errors := answer.get("Errors"):
                        raise StorageUnavailable(
                            f"S3 DeleteObjects on bucket {self.bucket!r} at {self._where} left "
                            f"{len(errors)} object(s) under {prefix!r}: {errors[0].get('Code')}"
                        )

    async def list(self, prefix: str) -> list[str]:
        start = self._key(prefix) + "/"
        names: list[str] = []
        with self._errors("ListObjectsV2"):
            s3 = await self._s3()
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start, Delimiter="/"
            )
            async for page in pages:
                for item in page.get("Contents", ()):
                    names.append(item["Key"][len(start) :])
                for common in page.get("CommonPrefixes", ()):
                    names.append(common["Prefix"][len(start) : -1])
        # "" would be a directory marker ("a/" itself) or a key with "//": not a child.
        return [name for name in names if name]

    async def stream(
        self, key: str, start: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Ranged GetObject; chunks of at most STREAM_CHUNK, read as the consumer asks."""
        full = self._key(key)
        if start < 0 or (length is not None and length < 0):
            raise ValueError(f"bad range start={start} length={length}")
        if length == 0:
            if await self.size(key) is None:
                raise ObjectNotFound(key)
            return
        ranged: dict[str, str] = {}
        if start > 0 or length is not None:
            end = "" if length is None else str(start + length - 1)
            ranged["Range"] = f"bytes={start}-{end}"
        with self._errors("GetObject", key):
            s3 = await self._s3()
            try:
                response = await s3.get_object(Bucket=self.bucket, Key=full, **ranged)
            except ClientError as exc:
                if _error_code(exc) == "InvalidRange":
                    return  # starts at or past the end (the object exists): no bytes
                raise
        body = response["Body"]
        try:
            if ranged and not str(response.get("ContentRange", "")).startswith(f"bytes {start}-"):
                raise StorageUnavailable(
                    f"S3 GetObject at {self._where} ignored the Range header of {key!r}"
                )
            pieces: list[bytes] = []
            have = 0
            while True:
                with self._errors("GetObject", key):
                    piece = await body.read(STREAM_CHUNK - have)
                if not piece:
                    break
                pieces.append(piece)
                have += len(piece)
                if have >= STREAM_CHUNK:
                    chunk, pieces, have = b"".join(pieces), [], 0
                    yield chunk
            if pieces:
                yield b"".join(pieces)
        finally:
            body.close()  # also when the consumer stops early: drop the connection

    async def append(
        self,
        key: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        observe: Callable[[bytes], None] | None = None,
    ) -> int:
        raise NotImplementedError("chunked uploads on S3 come with the S3 upload design")

    async def move(self, source: str, target: str) -> None:
        src, dst = self._key(source), self._key(target)
        with self._errors("HeadObject", source):
            s3 = await self._s3()
            head = await s3.head_object(Bucket=self.bucket, Key=src)
        if src == dst:
            return
        size, etag = int(head["ContentLength"]), str(head["ETag"])
        copy_source = {"Bucket": self.bucket, "Key": src}
        with self._errors("CopyObject", source):
            if size <= self.copy_limit:
                await s3.copy_object(
                    Bucket=self.bucket, Key=dst, CopySource=copy_source, **self._put_options
                )
            else:
                await self._copy_parts(s3, copy_source, dst, size, etag)
        with self._errors("DeleteObject"):
            await s3.delete_object(Bucket=self.bucket, Key=src)

    async def _copy_parts(
        self, s3: Any, copy_source: dict[str, str], dst: str, size: int, etag: str
    ) -> None:
        """Multipart UploadPartCopy; the target appears whole at CompleteMultipartUpload."""
        part_size = max(self.copy_part_size, math.ceil(size / MAX_PARTS))
        created = await s3.create_multipart_upload(Bucket=self.bucket, Key=dst, **self._put_options)
        upload_id = str(created["UploadId"])
        slots = asyncio.Semaphore(COPY_CONCURRENCY)

        async def copy_part(number: int, first: int) -> dict[str, Any]:
            last = min(first + part_size, size) - 1
            async with slots:
                answer = await s3.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dst,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=copy_source,
                    CopySourceRange=f"bytes={first}-{last}",
                    CopySourceIfMatch=etag,  # every part from the same version of the source
                )
            return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

        tasks = [
            asyncio.ensure_future(copy_part(number, first))
            for number, first in enumerate(range(0, size, part_size), start=1)
        ]
        try:
            parts = await asyncio.gather(*tasks)
            await s3.complete_multipart_upload(
                Bucket=self.bucket, Key=dst, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await s3.abort_multipart_upload(Bucket=self.bucket, Key=dst, UploadId=upload_id)
            raise


def _check_key(key: str) -> None:
    """The filesystem driver's rules, so a key is valid on both or on neither."""
    if not key or "\x00" in key or key[0] == "/" or "//" in key or key[-1] == "/":
        raise ValueError(f"unsafe storage key {key!r}")
    if "." in key and any(p in (".", "..") for p in key.split("/")):
        raise ValueError(f"unsafe storage key {key!r}")


def _normalize_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if not prefix:
        return ""
    try:
        _check_key(prefix)
    except ValueError:
        raise ValueError(f"unsafe S3 key prefix {prefix!r}") from None
    return prefix + "/"


def _error_code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _http_status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _redact_url(url: str) -> str:
    """The endpoint without any user:password@ part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
