"""The race contract under load (docs/gc.md): pushers, a deleter and a puller work through
the registry while `simple-registry gc` runs again and again, on the filesystem with two
workers and on two instances sharing S3 (moto) and Redis. Afterwards every acknowledged
manifest, and every blob and child it names, reads back byte-exact; what was deleted stays
gone; unreferenced content older than the window is gone.

Pushers do what clients do: `HEAD` a blob, upload it when missing (monolithic, chunked, or
mounted from another repository), sometimes wait before the manifest `PUT`, push indexes
over two images and artifacts whose `subject` is an earlier manifest, and reuse a pool of
shared layers that go unreferenced when their manifests are deleted and are pushed again.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.gc.conftest import GcRun, Store
from tests.oci import OCI_INDEX, OCI_MANIFEST, descriptor, digest_of
from tests.server import RunningRegistry

REPOS = ("soak", "soak/a", "soak/a/b", "team/x", "team/y", "solo")
PUSHERS = 8
SHARED = [os.urandom(1024) for _ in range(16)]
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
REFUSALS = ("MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN")


@dataclass
class Acked:
    repo: str
    digest: str
    body: bytes
    media_type: str
    blobs: list[bytes]
    children: list[Acked] = field(default_factory=list)
    is_child: bool = False


@dataclass
class Ledger:
    """What the clients were told, under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[str, Acked] = field(default_factory=dict)  # by "repo@digest"
    deleted: set[str] = field(default_factory=set)
    vouched: dict[str, float] = field(default_factory=dict)  # blob digest -> last vouch
    linked: dict[str, set[str]] = field(default_factory=dict)  # blob digest -> repositories
    refused: list[str] = field(default_factory=list)  # manifest PUTs refused
    retried: list[str] = field(default_factory=list)  # 503s that ask for a retry
    errors: list[str] = field(default_factory=list)  # anything else unexpected
    collections: list[GcRun] = field(default_factory=list)

    def vouch(self, repo: str, blob: bytes) -> None:
        digest = digest_of(blob)
        with self.lock:
            self.vouched[digest] = time.time()
            self.linked.setdefault(digest, set()).add(repo)

    def ack(self, acked: Acked) -> None:
        with self.lock:
            self.acked[f"{acked.repo}@{acked.digest}"] = acked
            now = time.time()
            for blob in acked.blobs:
                self.vouched[digest_of(blob)] = now

    def live(self) -> list[Acked]:
        with self.lock:
            return [a for key, a in self.acked.items() if key not in self.deleted]


class Failed(Exception):
    """A request the soak does not expect; recorded, and the client goes on."""


class Client:
    """One pusher's, deleter's or puller's view, recording into the ledger."""

    def __init__(self, http: httpx.Client, ledger: Ledger, rng: random.Random) -> None:
        self.http = http
        self.ledger = ledger
        self.rng = rng

    def _unexpected(self, what: str, r: httpx.Response) -> Failed:
        message = f"{what}: {r.status_code} {r.text[:200]}"
        with self.ledger.lock:
            if r.status_code == 503:
                self.ledger.retried.append(message)
            else:
                self.ledger.errors.append(message)
        return Failed(message)

    # --- blobs

    def ensure(self, repo: str, blob: bytes) -> None:
        """What a client does: HEAD, and upload when missing."""
        digest = digest_of(blob)
        r = self.http.head(f"/v2/{repo}/blobs/{digest}")
        if r.status_code == 200:
            self.ledger.vouch(repo, blob)
            return
        if r.status_code != 404:
            raise self._unexpected(f"HEAD {repo} {digest}", r)
        way = self.rng.choice((self.monolithic, self.chunked, self.mounted))
        way(repo, blob)
        self.ledger.vouch(repo, blob)

    def monolithic(self, repo: str, blob: bytes) -> None:
        r = self.http.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": digest_of(blob)}, content=blob
        )
        if r.status_code != 201:
            raise self._unexpected(f"monolithic {repo}", r)

    def chunked(self, repo: str, blob: bytes) -> None:
        r = self.http.post(f"/v2/{repo}/blobs/uploads/")
        if r.status_code != 202:
            raise self._unexpected(f"POST {repo}", r)
        location = r.headers["Location"]
        half = len(blob) // 2
        r = self.http.patch(
            location,
            content=blob[:half],
            headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{half - 1}"},
        )
        if r.status_code != 202:
            raise self._unexpected(f"PATCH {repo}", r)
        r = self.http.put(
            r.headers["Location"], params={"digest": digest_of(blob)}, content=blob[half:]
        )
        if r.status_code != 201:
            raise self._unexpected(f"PUT upload {repo}", r)

    def mounted(self, repo: str, blob: bytes) -> None:
        with self.ledger.lock:
            sources = sorted(self.ledger.linked.get(digest_of(blob), set()) - {repo})
        if not sources:
            self.monolithic(repo, blob)
            return
        r = self.http.post(
            f"/v2/{repo}/blobs/uploads/",
            params={"mount": digest_of(blob), "from": self.rng.choice(sources)},
        )
        if r.status_code == 201:
            return
        if r.status_code != 202:
            raise self._unexpected(f"mount {repo}", r)
        self.http.delete(r.headers["Location"])  # not mountable now: upload it instead
        self.monolithic(repo, blob)

    # --- manifests

    def image(self, repo: str, reference: str | None, *, child: bool = False) -> Acked | None:
        config = json.dumps({"seed": self.rng.getrandbits(64)}).encode()
        layers = [self._layer() for _ in range(self.rng.randint(1, 3))]
        for blob in (config, *layers):
            self.ensure(repo, blob)
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(CONFIG, config),
            "layers": [descriptor(LAYER, b) for b in layers],
        }
        if self.rng.random() < 0.3:  # a client that takes its time (well within the window)
            time.sleep(self.rng.uniform(0.2, 2.0))
        return self.put(repo, reference, doc, [config, *layers], child=child)

    def _layer(self) -> bytes:
        if self.rng.random() < 0.5:
            return self.rng.choice(SHARED)
        return os.urandom(self.rng.randint(256, 64 * 1024))

    def put(
        self,
        repo: str,
        reference: str | None,
        doc: dict[str, Any],
        blobs: list[bytes],
        *,
        child: bool = False,
    ) -> Acked | None:
        """PUT a manifest; `child` ones (an index's, pushed first) are never deleted."""
        body = json.dumps(doc).encode()
        digest = digest_of(body)
        r = self.http.put(
            f"/v2/{repo}/manifests/{reference or digest}",
            content=body,
            headers={"Content-Type": doc["mediaType"]},
        )
        if r.status_code == 201:
            acked = Acked(repo, digest, body, doc["mediaType"], blobs, is_child=child)
            self.ledger.ack(acked)
            return acked
        codes = [e.get("code") for e in r.json().get("errors", [])] if r.content else []
        if r.status_code == 400 and set(codes) <= set(REFUSALS):
            with self.ledger.lock:
                self.ledger.refused.append(f"{repo}: {r.text[:200]}")
            return None
        raise self._unexpected(f"PUT manifest {repo}", r)

    def index(self, repo: str, tag: str) -> None:
        children = [self.image(repo, None, child=True) for _ in range(2)]
        if None in children:
            return
        acked_children = [c for c in children if c is not None]
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                descriptor(OCI_MANIFEST, c.body, platform={"os": "linux", "architecture": arch})
                for c, arch in zip(acked_children, ("amd64", "arm64"), strict=True)
            ],
        }
        acked = self.put(repo, tag, doc, [])
        if acked is not None:
            with self.ledger.lock:
                acked.children = acked_children

    def artifact(self, repo: str) -> None:
        with self.ledger.lock:
            subjects = [
                a
                for k, a in self.ledger.acked.items()
                if a.repo == repo and k not in self.ledger.deleted
            ]
        if not subjects:
            return
        subject = self.rng.choice(subjects)
        empty, payload = b"{}", os.urandom(512)
        for blob in (empty, payload):
            self.ensure(repo, blob)
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sbom",
            "config": descriptor("application/vnd.oci.empty.v1+json", empty),
            "layers": [descriptor("application/octet-stream", payload)],
            "subject": descriptor(subject.media_type, subject.body),
        }
        self.put(repo, None, doc, [empty, payload])


def _pusher(client: Client, stop: threading.Event) -> None:
    while not stop.is_set():
        repo = client.rng.choice(REPOS)
        kind = client.rng.random()
        try:
            if kind < 0.6:
                client.image(repo, f"t{client.rng.randint(0, 4)}")
            elif kind < 0.8:
                client.index(repo, f"i{client.rng.randint(0, 2)}")
            else:
                client.artifact(repo)
        except Failed:
            continue


def _deleter(client: Client, stop: threading.Event) -> None:
    """Deletes images and artifacts that no index holds, by digest (their tags go too)."""
    while not stop.wait(0.3):
        with client.ledger.lock:
            candidates = [
                (k, a)
                for k, a in client.ledger.acked.items()
                if k not in client.ledger.deleted and not a.is_child and not a.children
            ]
            if not candidates:
                continue
            key, acked = client.rng.choice(candidates)
            client.ledger.deleted.add(key)  # from now on, a pull may find it gone
        r = client.http.delete(f"/v2/{acked.repo}/manifests/{acked.digest}")
        if r.status_code != 202:
            client._unexpected(f"DELETE {key}", r)


def _puller(client: Client, stop: threading.Event) -> None:
    while not stop.wait(0.05):
        live = client.ledger.live()
        if not live:
            continue
        acked = client.rng.choice(live)
        r = client.http.get(
            f"/v2/{acked.repo}/manifests/{acked.digest}", headers={"Accept": acked.media_type}
        )
        key = f"{acked.repo}@{acked.digest}"
        with client.ledger.lock:
            gone = key in client.ledger.deleted
        if r.status_code == 200 and r.content != acked.body:
            client._unexpected(f"pull {key}: other bytes", r)
        elif r.status_code != 200 and not gone:
            client._unexpected(f"pull {key}", r)


def _collector(store: Store, grace: str, ledger: Ledger, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        run = store.gc("-grace", grace, expect=None)
        with ledger.lock:
            ledger.collections.append(run)
            if run.returncode not in (0, 3):
                ledger.errors.append(f"gc exited {run.returncode}: {run.stderr[-500:]}")


def _soak(store: Store, servers: list[RunningRegistry], grace: str, seconds: float) -> Ledger:
    ledger = Ledger()
    stop = threading.Event()
    clients: list[httpx.Client] = []

    def client(i: int) -> Client:
        http = servers[i % len(servers)].client(timeout=120)
        clients.append(http)
        return Client(http, ledger, random.Random(i))

    jobs: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        *((_pusher, (client(i), stop)) for i in range(PUSHERS)),
        (_deleter, (client(100), stop)),
        (_puller, (client(101), stop)),
        (_collector, (store, grace, ledger, stop)),
    ]
    threads = [threading.Thread(target=job, args=args, daemon=True) for job, args in jobs]
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=300)
        assert not thread.is_alive()
    for http in clients:
        http.close()
    return ledger


def _reads_back(http: httpx.Client, acked: Acked) -> None:
    r = http.get(f"/v2/{acked.repo}/manifests/{acked.digest}", headers={"Accept": acked.media_type})
    assert r.status_code == 200, (acked.repo, acked.digest, r.text)
    assert r.content == acked.body
    for blob in acked.blobs:
        got = http.get(f"/v2/{acked.repo}/blobs/{digest_of(blob)}")
        assert got.status_code == 200, (acked.repo, digest_of(blob), got.text)
        assert got.content == blob
    for child in acked.children:
        _reads_back(http, child)


def _verify(ledger: Ledger, http: httpx.Client) -> None:
    assert not ledger.errors, ledger.errors[:10]
    live = ledger.live()
    assert len(live) > 20  # the soak did push
    for acked in live:
        _reads_back(http, acked)
    for key in ledger.deleted:
        repo, digest = key.split("@")
        assert http.get(f"/v2/{repo}/manifests/{digest}").status_code == 404, key
    assert any(run.returncode == 0 and run.deleted("blobs") for run in ledger.collections)


@pytest.fixture
def soaked_servers(store: Store) -> Iterator[list[RunningRegistry]]:
    if store.kind == "filesystem":
        yield [store.serve("-workers", "2")]
    else:
        yield [store.serve(), store.serve()]


def test_no_acknowledged_push_is_lost_or_refused(
    store: Store, soaked_servers: list[RunningRegistry]
) -> None:
    ledger = _soak(store, soaked_servers, "20s", 60.0)

    assert not ledger.refused, ledger.refused[:10]  # every push is shorter than the window
    assert not ledger.retried, ledger.retried[:10]
    with soaked_servers[0].client() as http:
        _verify(ledger, http)
        started = time.time()
        final = store.gc("-grace", "20s")
        assert final.report["outcome"] == "done"
        referenced = {digest_of(b) for a in ledger.live() for b in _all_blobs(a)}
        old = [
            digest
            for digest, vouched in ledger.vouched.items()
            if digest not in referenced and vouched < started - 20 - 1
        ]
        assert old  # deleted manifests left unreferenced content behind
        for digest in old:
            for repo in ledger.linked.get(digest, ()):
                assert http.head(f"/v2/{repo}/blobs/{digest}").status_code == 404, (repo, digest)


def test_a_zero_window_may_refuse_but_never_stores_a_broken_manifest(
    store: Store, soaked_servers: list[RunningRegistry]
) -> None:
    ledger = _soak(store, soaked_servers, "0s", 30.0)

    with soaked_servers[0].client() as http:
        _verify(ledger, http)


def _all_blobs(acked: Acked) -> Iterator[bytes]:
    yield from acked.blobs
    for child in acked.children:
        yield from _all_blobs(child)
