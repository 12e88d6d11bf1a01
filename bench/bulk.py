"""Blob transfers: monolithic push, chunked push, pull, and a streamed multi-GiB push."""

from __future__ import annotations

import hashlib
import os
import random
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from rawhttp import Connection, HTTPFailure, target_of, with_query

OCTET = {"Content-Type": "application/octet-stream"}
MB = 1_000_000


@dataclass
class Blob:
    data: bytearray
    digest: str

    @property
    def size(self) -> int:
        return len(self.data)


def random_blob(size: int) -> Blob:
    data = bytearray(os.urandom(size))
    return Blob(data, "sha256:" + hashlib.sha256(data).hexdigest())


def variant(blob: Blob, n: int) -> Blob:
    """The same buffer with its first 8 bytes set to `n`: a new digest without a new buffer."""
    struct.pack_into(">Q", blob.data, 0, n)
    blob.digest = "sha256:" + hashlib.sha256(blob.data).hexdigest()
    return blob


def push_monolithic(conn: Connection, name: str, body: object, size: int, digest: str) -> float:
    """`POST` then one `PUT ?digest=` carrying the whole body; seconds from POST to 201."""
    started = time.perf_counter()
    r = conn.request("POST", f"/v2/{name}/blobs/uploads/", expect=[202])
    location = with_query(target_of(r.headers["location"]), "digest", digest)
    conn.request("PUT", location, headers=OCTET, body=body, length=size, expect=[201])  # type: ignore[arg-type]
    return time.perf_counter() - started


def push_chunked(
    conn: Connection | Sequence[Connection],
    name: str,
    chunks: Iterator[memoryview | bytearray],
    size: int,
    digest: str,
) -> float:
    """`POST`, one `PATCH` per chunk with `Content-Range`, then `PUT ?digest=` with no body.

    With several connections (to server processes of one registry), request n of the upload
    (POST is 0, the PATCHes 1, 2, ..., then the PUT) goes to connection n mod their number,
    each following the path of the `Location` the previous one returned.
    """
    conns = [conn] if isinstance(conn, Connection) else list(conn)
    started = time.perf_counter()
    r = conns[0].request("POST", f"/v2/{name}/blobs/uploads/", expect=[202])
    location = target_of(r.headers["location"])
    offset = 0
    n = 0
    for chunk in chunks:
        n += 1
        end = offset + len(chunk) - 1
        headers = {**OCTET, "Content-Range": f"{offset}-{end}"}
        r = conns[n % len(conns)].request(
            "PATCH", location, headers=headers, body=chunk, expect=[202]
        )
        location = target_of(r.headers["location"])
        offset = end + 1
    if offset != size:
        raise ValueError(f"chunks added up to {offset} bytes, not {size}")
    conns[(n + 1) % len(conns)].request("PUT", with_query(location, "digest", digest), expect=[201])
    return time.perf_counter() - started


def slices(data: bytearray, chunk: int) -> Iterator[memoryview]:
    view = memoryview(data)
    for start in range(0, len(data), chunk):
        yield view[start : start + chunk]


def pull(conn: Connection, name: str, digest: str, size: int, verify: bool = False) -> float:
    """`GET` the blob, dropping the bytes as they arrive (hashing them when `verify`).

    A `307` (a registry that redirects blob reads to presigned S3 URLs) is followed to where
    it points, on a kept-alive connection per host, and timed as part of the pull.
    """
    started = time.perf_counter()
    r = conn.request(
        "GET", f"/v2/{name}/blobs/{digest}", keep=False, hash_body=verify, expect=[200, 307]
    )
    if r.status == 307:
        location = urlsplit(r.headers["location"])
        target = location.path + (f"?{location.query}" if location.query else "")
        host, port = location.hostname or "127.0.0.1", location.port or 80
        redirected = _redirected.setdefault((host, port), Connection(host, port))
        r = redirected.request("GET", target, keep=False, hash_body=verify, expect=[200])
    if r.length != size:
        raise HTTPFailure(f"pulled {r.length} bytes, not {size}", f"GET {digest}", r.raw_head)
    if verify and f"sha256:{r.sha256}" != digest:
        raise HTTPFailure(f"pulled content has digest sha256:{r.sha256}", f"GET {digest}")
    return time.perf_counter() - started


_redirected: dict[tuple[str, int], Connection] = {}  # where pulls were redirected to


def check_blob(conn: Connection, name: str, digest: str, size: int) -> None:
    """`HEAD` the blob: its size must be the pushed one. Distribution redirects `HEAD`s too
    when it redirects reads (a `307` whose URL is signed for `GET`): that says it exists."""
    r = conn.request("HEAD", f"/v2/{name}/blobs/{digest}", expect=[200, 307])
    if r.status == 200 and int(r.headers.get("content-length", "-1")) != size:
        raise HTTPFailure(f"HEAD says {r.headers.get('content-length')} bytes, not {size}", digest)


def generated(total: int, chunk: int, seed: int) -> Iterator[bytearray]:
    """`total` bytes as `chunk`-sized pieces of one reused buffer: nothing accumulates."""
    base = bytearray(random.Random(seed).randbytes(chunk))
    for i in range(-(-total // chunk)):
        struct.pack_into(">Q", base, 0, i)
        last = total - i * chunk
        yield base if last >= chunk else base[:last]


def generated_digest(total: int, chunk: int, seed: int) -> str:
    hasher = hashlib.sha256()
    for piece in generated(total, chunk, seed):
        hasher.update(piece)
    return "sha256:" + hasher.hexdigest()


def mb_per_s(size: int, seconds: float) -> float:
    return size / MB / seconds if seconds > 0 else 0.0
