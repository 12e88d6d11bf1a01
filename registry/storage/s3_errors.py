"""What an S3 failure means to the registry: a missing object, an unusable service, or a
request the registry got wrong (which passes through, as a bug would).

`S3Errors` translates botocore's exceptions inside a `with` block, and `bounded` adds a
deadline to it. Its messages name the endpoint (without credentials), the bucket and the
operation, never a key or token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp
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

NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404"})
# An upload's multipart upload or staged tail is gone (completed, aborted, or expired).
GONE = NOT_FOUND | {"NoSuchUpload"}
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


class S3Errors:
    """The translation for one driver: its bucket, where it connects, and the secrets that
    must never appear in a message."""

    def __init__(self, bucket: str, endpoint_url: str | None, secrets: tuple[str | None, ...]):
        self.bucket = bucket
        self.where = redact_url(endpoint_url) if endpoint_url else "AWS S3"
        self._secrets = [secret for secret in secrets if secret]

    @contextlib.contextmanager
    def __call__(
        self, operation: str, key: str | None = None, missing: frozenset[str] = NOT_FOUND
    ) -> Iterator[None]:
        """Translate botocore's errors: a missing key into ObjectNotFound (when `key` is the
        object asked for; `missing` are the codes that mean so), an unusable service into
        StorageUnavailable; others pass through."""
        try:
            yield
        except ClientError as exc:
            code, status = error_code(exc), _http_status(exc)
            if key is not None and code in missing:
                raise ObjectNotFound(key) from None
            what = f"S3 {operation} on bucket {self.bucket!r} at {self.where}"
            if status >= 500 or code in _THROTTLED:
                raise StorageUnavailable(
                    f"{what} failed: {code} (HTTP {status}), still after retries"
                ) from exc
            if code in _MISCONFIGURED or code in NOT_FOUND or status in (301, 307, 403):
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
                f"S3 {operation} on bucket {self.bucket!r}: {self.where} is unreachable or "
                f"timed out ({type(exc).__name__}: {self._redact(str(exc))})"
            ) from exc

    @contextlib.asynccontextmanager
    async def bounded(
        self,
        operation: str,
        seconds: float,
        key: str | None = None,
        missing: frozenset[str] = NOT_FOUND,
    ) -> AsyncIterator[None]:
        """`__call__`'s translation, and StorageUnavailable once the block has run `seconds`.

        botocore bounds each attempt's connect and each wait for bytes, then retries, so a
        store that answers slowly (or not at all, on connections that still open) holds a
        call for up to its read timeout times its attempts. Over this deadline the block is
        cancelled, which also drops its connection, and the request answers 503 like any
        other outage.
        """
        with self(operation, key, missing):
            deadline = asyncio.timeout(seconds)
            try:
                async with deadline:
                    yield
            except TimeoutError:
                if not deadline.expired():
                    raise  # a timeout of botocore's own: translated as a network error
                raise StorageUnavailable(
                    f"S3 {operation} on bucket {self.bucket!r} at {self.where} did not finish "
                    f"within its deadline of {round(seconds, 1):g} s (requestTimeoutSeconds)"
                ) from None

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def redact_url(url: str) -> str:
    """The endpoint without any user:password@ part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
