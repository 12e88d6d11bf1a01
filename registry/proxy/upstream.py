"""The client of one upstream registry: manifests, blobs and tags, with its authentication.

Every failure is one of two kinds, which is all the cache needs to decide what to answer:
`UpstreamNotFound` (the upstream says there is no such thing, or will not show it with the
configured credentials: Docker Hub answers `401` for a repository that does not exist) and
`UpstreamUnavailable` (it cannot be reached, timed out, failed with `5xx`, or asked us to slow
down with `429`). After a `429` or a `503` with `Retry-After`, no request goes to the upstream
until that time has passed: they fail at once as unavailable, so a rate-limited upstream is
not hammered by every pull that misses meanwhile.

The configured `timeout` bounds connecting and each wait for more bytes, never a whole
download: a large layer on a slow link takes as long as it takes while bytes keep coming.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpcore
import httpx

from registry.config.model import PullThroughCache
from registry.numbers import whole_number
from registry.observe import events
from registry.oci.digests import Digest
from registry.oci.errors import DigestInvalid
from registry.proxy.tokens import Challenge, TokenCache, token_from

# Every manifest kind a client may ask for; the upstream picks, and the cache keeps what it got.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# Seconds to keep away from an upstream that said 429 or 503 without saying how long.
DEFAULT_RETRY_AFTER = 10.0
# At most this long, whatever the upstream says (a broken header must not block it for days).
MAX_RETRY_AFTER = 3600.0
# httpcore reads a response 64 KiB at a time, which caps one async stream near 700 MB/s here
# (1.4 GB/s with 256 KiB reads, the upstream's own pace on loopback: bench/README.md, "Pull-
# through cache"). Its connections read this class attribute, and nothing else in the process
# uses httpcore's async connections: the cache's upstream clients read 256 KiB at a time.
READ_SIZE = 256 * 1024
if getattr(httpcore.AsyncHTTP11Connection, "READ_NUM_BYTES", READ_SIZE) < READ_SIZE:
    httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = READ_SIZE


class UpstreamError(Exception):
    """A request to the upstream did not give what was asked; the message says why."""


class UpstreamNotFound(UpstreamError):
    """The upstream has no such name, tag or digest, or does not show it to these credentials."""


class UpstreamUnavailable(UpstreamError):
    """The upstream cannot answer now: unreachable, timing out, failing, or rate-limiting."""


@dataclass(frozen=True, slots=True)
class Described:
    """What an upstream `HEAD` of a manifest says about it."""

    digest: Digest | None  # None when the upstream sends no Docker-Content-Digest
    media_type: str | None


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    body: bytes
    media_type: str | None
    digest: Digest  # of the body, checked against the upstream's header and the reference


@dataclass(frozen=True, slots=True)
class BlobStream:
    """An upstream blob (or a range of it) on its way: its status, headers and bytes."""

    status: int
    size: int | None  # the Content-Length of this answer
    content_range: str | None
    chunks: AsyncIterator[bytes]


class Upstream:
    def __init__(self, cache: PullThroughCache, transport: httpx.AsyncBaseTransport | None = None):
        self.cache = cache
        self.name = cache.name
        self._url = cache.upstream.url
        self._credentials = (
            (cache.upstream.username, cache.upstream.password or "")
            if cache.upstream.username is not None
            else None
        )
        timeout = cache.upstream.timeout_seconds or None
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=True,  # blobs are often served from a CDN the upstream names
            headers={"User-Agent": "simple-registry pull-through cache"},
        )
        self._tokens = TokenCache()
        self._blocked_until = 0.0  # time.monotonic(): after a 429 or a 503 with Retry-After

    async def close(self) -> None:
        await self._client.aclose()

    # --- manifests

    async def describe_manifest(self, name: str, reference: str) -> Described:
        """`HEAD` of a manifest: Docker Hub does not count it against the pull limit."""
        async with self._request("HEAD", name, f"manifests/{reference}", "manifest") as answer:
            header = answer.headers.get("docker-content-digest")
            digest = _digest_or_none(header)
            return Described(digest, _media_type(answer))

    async def fetch_manifest(self, name: str, reference: str) -> FetchedManifest:
        """`GET` of a manifest, its digest checked against the reference (when it is one) and
        the upstream's `Docker-Content-Digest` (when sent)."""
        async with self._request("GET", name, f"manifests/{reference}", "manifest") as answer:
            content = await self._read_limited(answer, f"the manifest {name}:{reference}")
            media_type = _media_type(answer)
            header = answer.headers.get("docker-content-digest")
        claimed = [d for d in (_digest_or_none(reference), _digest_or_none(header)) if d]
        algorithm = claimed[0].algorithm if claimed else "sha256"
        digest = Digest.of(content, algorithm)
        for expected in claimed:
            if Digest.of(content, expected.algorithm) != expected:
                raise UpstreamUnavailable(
                    f"the manifest {name}:{reference} from upstream {self.name} has digest "
                    f"{Digest.of(content, expected.algorithm)}, not {expected}: not kept"
                )
        return FetchedManifest(content, media_type, digest)

    # --- blobs

    async def blob_size(self, name: str, digest: Digest) -> int:
        async with self._request("HEAD", name, f"blobs/{digest}", "blob") as answer:
            size = whole_number(answer.headers.get("content-length", ""))
            if size is None:
                raise UpstreamUnavailable(f"upstream {self.name} gave no size for {digest}")
            return size

    @contextlib.asynccontextmanager
    async def blob(
        self, name: str, digest: Digest, byte_range: str | None = None
    ) -> AsyncIterator[BlobStream]:
        """The blob's bytes as they arrive (a `Range` passed on when given). A body cut short
        or a connection lost midway raises UpstreamUnavailable from the chunks."""
        headers = {"Range": byte_range} if byte_range is not None else {}
        async with self._request("GET", name, f"blobs/{digest}", "blob", headers) as answer:
            size = whole_number(answer.headers.get("content-length", ""))
            yield BlobStream(
                answer.status_code, size, answer.headers.get("content-range"), self._chunks(answer)
            )

    # --- tags

    async def tags(self, name: str) -> list[str]:
        """Every tag the upstream lists (following its pages)."""
        found: list[str] = []
        path = "tags/list?n=1000"
        for _ in range(1000):  # a bound on the pages of a broken upstream
            async with self._request("GET", name, path, "tags") as answer:
                body = await self._read_limited(answer, f"the tags of {name}")
                link = answer.headers.get("link")
            try:
                doc = json.loads(body)
                found.extend(t for t in doc.get("tags") or [] if isinstance(t, str))
            except (ValueError, AttributeError, TypeError):  # not JSON, or not the shape asked for
                raise UpstreamUnavailable(f"upstream {self.name} listed tags in no JSON") from None
            following = _next_page(link, name)
            if following is None:
                return found
            path = following
        return found

    # --- referrers

    async def referrers(self, name: str, subject: Digest) -> list[dict[str, object]]:
        """The descriptors of the upstream's referrers index for `subject` (OCI 1.1)."""
        async with self._request("GET", name, f"referrers/{subject}", "referrers") as answer:
            body = await self._read_limited(answer, f"the referrers of {subject}")
        try:
            found = json.loads(body).get("manifests") or []
            return [d for d in found if isinstance(d, dict) and isinstance(d.get("digest"), str)]
        except (ValueError, AttributeError, TypeError):  # not JSON, or not the shape asked for
            raise UpstreamUnavailable(f"upstream {self.name} sent referrers in no JSON") from None

    # --- requests

    @contextlib.asynccontextmanager
    async def _request(
        self,
        method: str,
        name: str,
        path: str,
        kind: str,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A successful answer, streamed, with the upstream's authentication done: a 401 with a
        challenge is answered (a token fetched, or Basic sent) and the request tried once more.
        Raises UpstreamNotFound or UpstreamUnavailable otherwise."""
        self._refuse_while_blocked()
        scope = f"repository:{name}:pull"
        url = f"{self._url}/v2/{name}/{path}"
        wanted = dict(headers or {})
        if kind == "manifest":
            wanted["Accept"] = MANIFEST_ACCEPT
        answer = await self._send(method, url, kind, wanted, self._auth_for(scope))
        try:
            if answer.status_code == 401:
                retry_auth = await self._answer_challenge(answer, scope)
                await answer.aclose()
                if retry_auth is None:
                    raise self._not_found(name, path, 401)
                answer = await self._send(method, url, kind, wanted, retry_auth)
            self._check_status(answer, name, path, scope)
            yield answer
        finally:
            await answer.aclose()

    async def _send(
        self,
        method: str,
        url: str,
        kind: str,
        headers: dict[str, str],
        auth: httpx.Auth | str | None,
    ) -> httpx.Response:
        sent = dict(headers)
        client_auth: httpx.Auth | None = None
        if isinstance(auth, str):
            sent["Authorization"] = auth
        else:
            client_auth = auth
        request = self._client.build_request(method, url, headers=sent)
        started = time.monotonic()
        try:
            answer = await self._client.send(
                request, stream=True, auth=client_auth or httpx.USE_CLIENT_DEFAULT
            )
        except httpx.TimeoutException:
            events.upstream_request(self.name, kind, "timeout", time.monotonic() - started)
            raise UpstreamUnavailable(f"upstream {self.name} did not answer in time") from None
        except httpx.HTTPError as exc:
            events.upstream_request(self.name, kind, "error", time.monotonic() - started)
            raise UpstreamUnavailable(f"upstream {self.name} cannot be reached: {exc}") from None
        events.upstream_request(
            self.name, kind, f"{answer.status_code // 100}xx", time.monotonic() - started
        )
        return answer

    def _auth_for(self, scope: str) -> httpx.Auth | str | None:
        token = self._tokens.get(scope)
        if token is not None:
            return f"Bearer {token}"
        if self._credentials is not None:
            return httpx.BasicAuth(*self._credentials)
        return None

    async def _answer_challenge(
        self, answer: httpx.Response, scope: str
    ) -> httpx.Auth | str | None:
        """The authorization to try again with, or None when there is none to try."""
        challenge = Challenge.parse(answer.headers.get("www-authenticate", ""))
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return None  # Basic was sent already when credentials are configured
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            return None
        self._tokens.forget(scope)
        token = await self._fetch_token(challenge, scope)
        return f"Bearer {token}"

    async def _fetch_token(self, challenge: Challenge, scope: str) -> str:
        realm = challenge.params["realm"]
        if not realm.startswith(("https://", "http://")):
            raise UpstreamUnavailable(f"upstream {self.name} named a token service {realm!r}")
        params = {"scope": challenge.params.get("scope") or scope}
        if "service" in challenge.params:
            params["service"] = challenge.params["service"]
        auth = httpx.BasicAuth(*self._credentials) if self._credentials is not None else None
        if self._credentials is not None:
            params["account"] = self._credentials[0]
        started = time.monotonic()
        try:
            answer = await self._client.get(
                realm, params=params, auth=auth or httpx.USE_CLIENT_DEFAULT
            )
        except httpx.HTTPError as exc:
            events.upstream_request(self.name, "token", "error", time.monotonic() - started)
            raise UpstreamUnavailable(
                f"the token service of upstream {self.name} cannot be reached: {exc}"
            ) from None
        events.upstream_request(
            self.name, "token", f"{answer.status_code // 100}xx", time.monotonic() - started
        )
        events.upstream_token(self.name)
        if answer.status_code != 200:
            raise UpstreamUnavailable(
                f"the token service of upstream {self.name} answered {answer.status_code}"
                + (" (check the cache's credentials)" if answer.status_code == 401 else "")
            )
        try:
            token = token_from(answer.json(), time.monotonic())
        except ValueError:
            token = None
        if token is None:
            raise UpstreamUnavailable(f"the token service of upstream {self.name} sent no token")
        self._tokens.put(scope, token)
        return token.value

    def _check_status(self, answer: httpx.Response, name: str, path: str, scope: str) -> None:
        status = answer.status_code
        if status < 300 or status == 206:
            return
        if status in (401, 403, 404):
            if status == 401:
                self._tokens.forget(scope)
            raise self._not_found(name, path, status)
        if status in (429, 503):
            self._block(answer.headers.get("retry-after"))
        why = "rate-limits this cache" if status == 429 else f"answered {status}"
        raise UpstreamUnavailable(f"upstream {self.name} {why} ({name}/{path})")

    def _not_found(self, name: str, path: str, status: int) -> UpstreamNotFound:
        if status == 404:
            return UpstreamNotFound(f"upstream {self.name} has no {name}/{path}")
        return UpstreamNotFound(
            f"upstream {self.name} refused {name}/{path} ({status}): it does not exist there, "
            "or the cache's credentials may not read it"
        )

    def _block(self, retry_after: str | None) -> None:
        self._blocked_until = time.monotonic() + retry_seconds(retry_after)

    def _refuse_while_blocked(self) -> None:
        left = self._blocked_until - time.monotonic()
        if left > 0:
            raise UpstreamUnavailable(
                f"upstream {self.name} asked for no requests for {left:.0f} s more (Retry-After)"
            )

    async def _read_limited(self, answer: httpx.Response, what: str) -> bytes:
        """A whole small body (a manifest, a tags page, a referrers index), refused past
        MAX_MANIFEST_BYTES: an upstream cannot make this registry hold more."""
        body = bytearray()
        async for chunk in self._chunks(answer):
            body += chunk
            if len(body) > MAX_MANIFEST_BYTES:
                raise UpstreamUnavailable(
                    f"{what} from upstream {self.name} is over {MAX_MANIFEST_BYTES} bytes"
                )
        return bytes(body)

    async def _chunks(self, answer: httpx.Response) -> AsyncIterator[bytes]:
        """The body exactly as sent (no content decoding: a blob's bytes are its digest's),
        in the pieces the connection reads."""
        try:
            async for chunk in answer.aiter_raw():
                yield chunk
        except httpx.TimeoutException:
            raise UpstreamUnavailable(f"upstream {self.name} stopped sending") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"upstream {self.name} broke off: {exc}") from None


def retry_seconds(header: str | None) -> float:
    """Seconds a `Retry-After` asks for (a number, or an HTTP date), within bounds."""
    if header:
        number = whole_number(header.strip())
        if number is not None:
            return min(float(number), MAX_RETRY_AFTER)
        with contextlib.suppress(TypeError, ValueError, IndexError):
            when = email.utils.parsedate_to_datetime(header)
            return max(0.0, min(when.timestamp() - time.time(), MAX_RETRY_AFTER))
    return DEFAULT_RETRY_AFTER


def _digest_or_none(text: str | None) -> Digest | None:
    if not text or ":" not in text:
        return None
    try:
        return Digest.parse(text.strip())
    except DigestInvalid:
        return None


def _media_type(answer: httpx.Response) -> str | None:
    value = answer.headers.get("content-type")
    return value.split(";", 1)[0].strip() if value else None


def _next_page(link: str | None, name: str) -> str | None:
    """The path (relative to `/v2/<name>/`) of the next page a `Link` header names."""
    if not link or 'rel="next"' not in link:
        return None
    target = link.split(";", 1)[0].strip().strip("<>")
    marker = f"/v2/{name}/"
    if marker not in target:
        return None
    return target.split(marker, 1)[1]
