"""Blob uploads: sessions that any worker can continue, and digest-verified commits.

The session record lives in the coordinator and holds the offset and the saved hash state, so
a PATCH that lands on another worker resumes hashing where the previous one stopped instead of
re-reading the data. Each step runs under the upload's lock. The data becomes a blob only after
its digest was verified, by a move within the store (never a copy).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from registry.coord.base import Coordinator, LockTimeout, Vouches
from registry.model import paths
from registry.model.blobs import Blobs
from registry.model.protection import pin_for_writing
from registry.oci.digests import Digest
from registry.oci.errors import (
    BlobUploadUnknown,
    DigestInvalid,
    RangeInvalid,
    Unavailable,
)
from registry.oci.hashing import ResumableHash, resumable_available
from registry.storage.base import Incoming, StorageDriver

# Chunks under this cannot be S3 multipart parts; clients that honour it send fewer requests.
CHUNK_MIN_LENGTH = 5 * 1024 * 1024
LOCK_TIMEOUT = 30.0


@dataclass(slots=True)
class Session:
    id: str
    name: str
    owner: str
    started: float
    offset: int = 0
    hash_state: bytes | None = None
    # The storage driver's own upload state (S3: multipart upload id, parts, staged tail).
    storage_state: bytes | None = None

    def encode(self) -> bytes:
        return json.dumps(
            {
                "name": self.name,
                "owner": self.owner,
                "started": self.started,
                "offset": self.offset,
                "hash": _b64(self.hash_state),
                "storage": _b64(self.storage_state),
            }
        ).encode()

    @classmethod
    def decode(cls, session_id: str, record: bytes) -> Session:
        doc = json.loads(record)
        state, storage = doc.get("hash"), doc.get("storage")
        return cls(
            id=session_id,
            name=doc["name"],
            owner=doc["owner"],
            started=doc["started"],
            offset=doc["offset"],
            hash_state=base64.b64decode(state) if state else None,
            storage_state=base64.b64decode(storage) if storage else None,
        )


class Uploads:
    def __init__(
        self, storage: StorageDriver, coord: Coordinator, blobs: Blobs, vouches: Vouches
    ) -> None:
        self._storage = storage
        self._coord = coord
        self._blobs = blobs
        self._vouches = vouches

    async def start(self, name: str, owner: str) -> Session:
        session = Session(id=uuid.uuid4().hex, name=name, owner=owner, started=time.time())
        if resumable_available():
            session.hash_state = ResumableHash().save()
        await self._coord.put_session(session.id, session.encode())
        return session

    async def get(self, name: str, upload_id: str, owner: str) -> Session:
        """The session, if it belongs to `name` and was opened by `owner`; else unknown.

        Someone else's session answers exactly like a missing one, so upload ids cannot be
        probed and continued by another principal.
        """
        if not valid_id(upload_id):
            raise BlobUploadUnknown(detail={"uuid": upload_id[:100]})
        record = await self._coord.get_session(upload_id)
        if record is None:
            raise BlobUploadUnknown(detail={"uuid": upload_id})
        session = Session.decode(upload_id, record)
        if session.name != name or session.owner != owner:
            raise BlobUploadUnknown(detail={"uuid": upload_id})
        return session

    async def append(
        self,
        name: str,
        upload_id: str,
        owner: str,
        chunks: AsyncIterable[bytes],
        content_range: tuple[int, int] | None,
    ) -> Session:
        """Add one chunk; a `Content-Range` must start at the current offset (else 416)."""
        async with self._locked(upload_id):
            session = await self.get(name, upload_id, owner)
            if content_range is not None:
                start, end = content_range
                if start != session.offset or end < start:
                    raise RangeInvalid(
                        f"chunk starts at {start}, upload is at {session.offset}",
                        headers={"Range": _range(session.offset)},
                    )
                chunks = _exactly(chunks, end - start + 1)
            await self._write(session, chunks)
            await self._coord.put_session(session.id, session.encode())
            return session

    async def finish(
        self,
        name: str,
        upload_id: str,
        owner: str,
        digest: Digest,
        chunks: AsyncIterable[bytes] | None,
    ) -> None:
        """Append the final chunk, verify the digest, make the blob visible in `name`."""
        async with self._locked(upload_id):
            session = await self.get(name, upload_id, owner)
            if session.offset == 0 and session.storage_state is None and chunks is not None:
                # POST then one PUT with the whole body: as monolithic as `POST ?digest=`.
                # Nothing was staged, so only the record goes; a body cut short leaves the
                # session as it was, for a retry.
                try:
                    await self._write_blob(name, digest, chunks)
                except DigestInvalid:
                    await self._coord.delete_session(session.id)
                    raise
                await self._coord.delete_session(session.id)
                return
            await self._write(session, chunks or _nothing())
            actual = await self._digest_of(session, digest.algorithm)
            if actual != digest.hex:
                await self._discard(session.id, session.storage_state)
                raise DigestInvalid(
                    f"content digest is {digest.algorithm}:{actual}, not {digest}",
                    detail={"digest": str(digest)},
                )
            await self._commit(session.id, session.storage_state, name, digest)

    async def cancel(self, name: str, upload_id: str, owner: str) -> None:
        async with self._locked(upload_id):
            session = await self.get(name, upload_id, owner)
            await self._discard(session.id, session.storage_state)

    async def monolithic(self, name: str, digest: Digest, chunks: AsyncIterable[bytes]) -> None:
        """A whole blob in one request with its digest known up front: no session record."""
        await self._write_blob(name, digest, chunks)

    async def checked(self, name: str, digest: Digest, chunks: AsyncIterable[bytes]) -> None:
        """As `monolithic`, for chunks whose digest the caller has already checked: it ends
        `chunks` only once every byte hashed to `digest`, and raises into the iteration
        otherwise (so the blob never appears). The pull-through cache's fetch hashes what it
        relays anyway; hashing the same bytes again here would cost a core's worth of work
        on a cold pull."""
        await self._write_blob(name, digest, chunks, hashed=False)

    async def _write_blob(
        self, name: str, digest: Digest, chunks: AsyncIterable[bytes], *, hashed: bool = True
    ) -> None:
        """The bytes go straight to the blob's own key, hashed on the way, and appear there
        only once the digest matched: no scratch copy, no move, no re-read."""
        hasher = _hasher(digest.algorithm)

        def verify() -> None:
            if hashed and hasher.hexdigest() != digest.hex:
                raise DigestInvalid(
                    f"content digest is {digest.algorithm}:{hasher.hexdigest()}, not {digest}",
                    detail={"digest": str(digest)},
                )

        incoming = Incoming(chunks, hasher.update if hashed else None)
        size = await self._storage.write_verified(paths.blob(digest), incoming, verify)
        # Pinned once the bytes are in (a long body must not outlast its pin). Had the garbage
        # collector been deleting an old copy meanwhile, the pin waited for it to finish, and
        # the content may have gone with it: then the client uploads again.
        pins = await pin_for_writing(self._vouches, digest)
        try:
            if await self._storage.size(paths.blob(digest)) != size:
                raise Unavailable(
                    f"blob {digest} was garbage collected as it arrived; upload it again"
                )
            pins.check()
            await self._blobs.link(name, digest)
        finally:
            await pins.done()
        self._blobs.remember(digest, size)

    async def _write(self, session: Session, chunks: AsyncIterable[bytes]) -> None:
        hasher = self._resume_hasher(session)
        appended = await self._storage.append(
            paths.upload_data(session.id),
            session.offset,
            Incoming(chunks, hasher.update if hasher is not None else None),
            session.storage_state,
        )
        session.offset, session.storage_state = appended.size, appended.state
        if hasher is not None:
            session.hash_state = hasher.save()

    def _resume_hasher(self, session: Session) -> ResumableHash | None:
        if session.hash_state is None:
            return None
        try:
            return ResumableHash("sha256", session.hash_state)
        except ValueError:
            session.hash_state = None  # corrupt state: fall back to re-reading at commit
            return None

    async def _digest_of(self, session: Session, algorithm: str) -> str:
        """The saved hash state when it fits; otherwise read the data back once."""
        if algorithm == "sha256" and session.hash_state is not None:
            return ResumableHash("sha256", session.hash_state).hexdigest()
        # The upload becomes a plain object where it is, so it can be read back once.
        key = paths.upload_data(session.id)
        await self._storage.complete(key, session.storage_state, key)
        session.storage_state = None
        hasher = _hasher(algorithm)
        async for chunk in self._storage.stream(key):
            hasher.update(chunk)
        return hasher.hexdigest()

    async def _commit(self, upload_id: str, state: bytes | None, name: str, digest: Digest) -> None:
        """Pinned throughout (see `protection`): the garbage collector never deletes the blob
        between the check that it is stored and the link."""
        key = paths.upload_data(upload_id)
        pins = await pin_for_writing(self._vouches, digest)
        try:
            stored = await self._storage.size(paths.blob(digest)) is not None
            if not stored:
                # `complete` consumes the upload and its driver state (S3: the multipart
                # upload, staged tails, the scratch key); what may remain is its folder.
                await self._storage.complete(key, state, paths.blob(digest))
            pins.check()
            await self._blobs.link(name, digest)
        finally:
            await pins.done()
        if stored:  # stored already: drop this copy
            await self._discard(upload_id, state)
            return
        await self._storage.delete_prefix(paths.upload_dir(upload_id))
        await self._coord.delete_session(upload_id)

    async def _discard(self, upload_id: str, state: bytes | None) -> None:
        await discard(self._storage, self._coord, upload_id, state)

    def _locked(self, upload_id: str) -> _UploadLock:
        return _UploadLock(self._coord, upload_id)


async def discard(
    storage: StorageDriver, coord: Coordinator, upload_id: str, state: bytes | None
) -> None:
    """Drop an upload: the store's upload state (S3: multipart upload, tails), its data and
    its record, in that order, so a crash halfway leaves data that a purge still finds."""
    await storage.abort(paths.upload_data(upload_id), state)
    await storage.delete_prefix(paths.upload_dir(upload_id))
    await coord.delete_session(upload_id)


def lock_name(upload_id: str) -> str:
    return f"upload:{upload_id}"


class _UploadLock:
    """The upload's lock; a lock that cannot be had in time is a retryable 503."""

    def __init__(self, coord: Coordinator, upload_id: str) -> None:
        self._cm = coord.lock(lock_name(upload_id), timeout=LOCK_TIMEOUT)

    async def __aenter__(self) -> None:
        try:
            await self._cm.__aenter__()
        except LockTimeout:
            raise Unavailable("the upload is busy with another request") from None

    async def __aexit__(self, *exc: object) -> None:
        await self._cm.__aexit__(*exc)  # type: ignore[arg-type]


class _Hasher:
    """hashlib fallback where libcrypto's resumable functions are missing."""

    def __init__(self, algorithm: str) -> None:
        import hashlib

        self._h = hashlib.new(algorithm)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _hasher(algorithm: str) -> ResumableHash | _Hasher:
    return ResumableHash(algorithm) if resumable_available(algorithm) else _Hasher(algorithm)


async def _exactly(chunks: AsyncIterable[bytes], length: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > length:
            raise RangeInvalid("chunk is longer than its Content-Range")
        yield chunk
    if seen != length:
        raise RangeInvalid("chunk is shorter than its Content-Range")


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data else None


def valid_id(upload_id: str) -> bool:
    return len(upload_id) == 32 and all(c in "0123456789abcdef" for c in upload_id)


def _range(offset: int) -> str:
    return f"0-{max(offset - 1, 0)}"


def upload_range(session: Session) -> str:
    return _range(session.offset)
