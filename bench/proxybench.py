"""Pull-through cache benchmark: our cache against Distribution 2.8.2 in proxy mode.

One plain Distribution (no auth, filesystem) holds the content: a random layer of
`--size-mib` (32) MiB in `bench/big`. In front of it, on loopback:

* ours: `python -m registry serve -workers 1` with a `PullThroughCache` manifest in its
  `-cfgdir` (`prefix: up/`, `ttl: 1h`): the layer is `up/bench/big` here;
* Distribution with `proxy: remoteurl:` set to the upstream: the layer is `bench/big` there.

Three measurements, each GET read by a raw-socket client into one preallocated buffer (the
bytes are hashed after the clock stops, so every client checks the sha256 it got):

1. cold pull, one client, a fresh cache store per rep (a new datadir and a new process), the
   two caches taking turns rep by rep: time to the first body byte, and MB/s;
2. warm pull of the cached layer, against our own pull of a 32 MiB blob pushed to a plain
   repository of the same process, and Distribution's warm proxy pull, in turns (one pull
   of 32 MiB takes about 20 ms, so each of `--warm-reps` does `--warm-rounds` turns);
3. `--clients` (8) concurrent cold pulls on a fresh cache: the bytes the upstream sent.

The upstream's bytes are read from its own access log (the combined format's size field:
the body bytes it wrote), so no proxy sits between a cache and its upstream. Before anything
else the upstream alone is measured with the same client, a ceiling for the cold pulls.

    .venv/bin/python bench/proxybench.py
    .venv/bin/python bench/proxybench.py --reps 3 --warm-reps 5 --concurrent-reps 1  # quick
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import servers
from gcbench import digest_of, push_blob
from rawhttp import Connection
from report import grid

REPOSITORY = "bench/big"  # upstream name; ours serves it as PREFIX + REPOSITORY
PREFIX = "up/"
OWN_REPOSITORY = "own/big"  # a plain repository of ours, no cache
TIMEOUT = 120.0
SETTLE_QUIET = 0.5  # seconds without a new upstream log line once the cache stored the blob
SETTLE_LIMIT = 60.0
_ACCESS = re.compile(rb'"GET (\S+) HTTP/[\d.]+" (\d{3}) (\d+|-)')


def cache_manifest(upstream_url: str) -> str:
    """Our `PullThroughCache` for the upstream (JSON is YAML)."""
    document = {
        "apiVersion": "simple-registry.dev/v1",
        "kind": "PullThroughCache",
        "metadata": {"name": "up"},
        "spec": {
            "upstream": {"url": upstream_url, "ttl": "1h"},
            "scopes": [f"^{PREFIX}.+$"],
            "prefix": PREFIX,
        },
    }
    return json.dumps(document) + "\n"


@dataclass
class Pull:
    """One GET: time to the first body byte and to the last, what came, and its sha256."""

    status: int
    ttfb: float
    seconds: float
    length: int
    sha256: str
    started: float = 0.0  # time.perf_counter() when the request was sent

    @property
    def mb_per_s(self) -> float:
        return self.length / self.seconds / 1e6


def timed_get(port: int, target: str, auth: str | None, buffer: bytearray) -> Pull:
    """GET `target` on a new connection; the body lands in `buffer` (no copy, no hashing
    while the clock runs). Needs a Content-Length, which all three servers send here."""
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    if auth:
        request += f"Authorization: {auth}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        sock.sendall((request + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more or len(data) > 65536:
                raise RuntimeError(f"GET {target}: no response head: {data[:2000]!r}")
            data += more
        arrived = time.perf_counter()
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = (line.partition(":") for line in lines[1:])
        headers = {k.strip().lower(): v.strip() for k, _, v in fields}
        if status != 200 or "content-length" not in headers:
            raise RuntimeError(f"GET {target}: {head.decode('latin-1')}\n{rest[:2000]!r}")
        size = int(headers["content-length"])
        if len(buffer) < size:
            buffer.extend(bytes(size - len(buffer)))
        view = memoryview(buffer)[:size]
        view[: len(rest)] = rest
        got = len(rest)
        first = arrived if got else 0.0
        while got < size:
            n = sock.recv_into(view[got:])
            if n == 0:
                raise RuntimeError(f"GET {target}: the body ended after {got} of {size} bytes")
            if not first:
                first = time.perf_counter()
            got += n
        seconds = time.perf_counter() - started
    digest = hashlib.sha256(view).hexdigest()
    return Pull(status, first - started, seconds, size, digest, started)


class Upstream:
    """The Distribution that holds the content, and the blob bytes its access log says it
    sent."""

    def __init__(self, binary: str, work: Path) -> None:
        self.log = work / "upstream-access.log"
        self.server = servers.start_distribution(
            binary, work / "upstream", "upstream", access_log=self.log
        )
        self.url = f"http://127.0.0.1:{self.server.port}"

    def push(self, data: bytes) -> str:
        conn = Connection("127.0.0.1", self.server.port)
        try:
            return push_blob(conn, REPOSITORY, data)
        finally:
            conn.close()

    def served(self, digest: str) -> tuple[int, int]:
        """(GETs of the blob, body bytes sent for them) so far."""
        wanted = f"/v2/{REPOSITORY}/blobs/{digest}".encode()
        gets = sent = 0
        for match in _ACCESS.finditer(self.log.read_bytes()):
            if match.group(1) == wanted:
                gets += 1
                sent += int(match.group(3)) if match.group(3) != b"-" else 0
        return gets, sent

    def settle(self, stored: Callable[[], bool]) -> None:
        """Wait until the cache stored the blob and no upstream request ended for a while:
        Distribution's proxy stores in a goroutine of its own, which may outlive the pull."""
        deadline = time.monotonic() + SETTLE_LIMIT
        last_size, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            size = self.log.stat().st_size
            if size != last_size:
                last_size, quiet_since = size, time.monotonic()
            elif stored() and time.monotonic() - quiet_since >= SETTLE_QUIET:
                return
            time.sleep(0.05)
        raise RuntimeError("the cache never stored the blob, or the upstream never went quiet")

    def stop(self) -> None:
        self.server.stop()


def holds(datadir: Path, digest: str, size: int) -> bool:
    """Whether a store under `datadir` holds the blob: ours as a file named by its hex,
    Distribution's as `<hex>/data`; only complete ones count."""
    hex_digest = digest.split(":", 1)[1]
    for path in datadir.rglob(hex_digest):
        candidate = path / "data" if path.is_dir() else path
        if candidate.is_file() and candidate.stat().st_size == size:
            return True
    return False


@dataclass
class Cache:
    """A cache in front of the upstream: its server and the path of the layer there."""

    who: str  # "ours" or "distribution"
    server: servers.Server

    def target(self, digest: str) -> str:
        name = PREFIX + REPOSITORY if self.who == "ours" else REPOSITORY
        return f"/v2/{name}/blobs/{digest}"

    def pull(self, digest: str, buffer: bytearray) -> Pull:
        return timed_get(self.server.port, self.target(digest), self.server.auth, buffer)

    def holds(self, digest: str, size: int) -> bool:
        return holds(self.server.datadir, digest, size)

    def cpu(self) -> float:
        return sum(servers.cpu_seconds(pid) for pid in self.server.tree())

    def stop(self) -> None:
        self.server.stop()


def start_cache(args: argparse.Namespace, who: str, datadir: Path, upstream: Upstream) -> Cache:
    if who == "ours":
        cfgdir = datadir.parent / (datadir.name + "-cfg")
        cfgdir.mkdir(parents=True, exist_ok=True)
        (cfgdir / "cache.yaml").write_text(cache_manifest(upstream.url))
        extra = ["-cfgdir", str(cfgdir)]
        return Cache(who, servers.start_ours(args.python, datadir, args.workers, extra=extra))
    proxy = f"proxy:\n  remoteurl: {upstream.url}\n"
    return Cache(who, servers.start_distribution(args.distribution, datadir, who, extra=proxy))


def quiet() -> float:
    busy = servers.wait_for_quiet()
    if busy >= 0.25:
        print(f"  (the machine stayed busy: {busy:.2f} other cores in use)", file=sys.stderr)
    return busy


@dataclass
class Sample:
    """One measured pull, with what the upstream sent for it and the server's CPU seconds."""

    mb_per_s: float
    ttfb_ms: float
    sha_ok: bool
    upstream_gets: int = 0
    upstream_bytes: int = 0
    server_cpu: float = 0.0
    other_cores: float = 0.0


@dataclass
class Blob:
    digest: str
    size: int


def alone(args: argparse.Namespace, upstream: Upstream, blob: Blob) -> list[Sample]:
    """The upstream pulled directly: the most a cache in front of it could pass on."""
    buffer = bytearray(blob.size)
    out = []
    for _ in range(args.reps):
        busy = quiet()
        target = f"/v2/{REPOSITORY}/blobs/{blob.digest}"
        pull = timed_get(upstream.server.port, target, None, buffer)
        ok = pull.sha256 == hex_of(blob)
        out.append(Sample(pull.mb_per_s, pull.ttfb * 1e3, ok, other_cores=busy))
    return out


def hex_of(blob: Blob) -> str:
    return blob.digest.split(":", 1)[1]


def cold(args: argparse.Namespace, upstream: Upstream, blob: Blob, work: Path) -> dict[str, Any]:
    """One client's first pull from a fresh cache, the caches taking turns rep by rep."""
    results: dict[str, list[Sample]] = {"ours": [], "distribution": []}
    buffer = bytearray(blob.size)
    for rep in range(args.reps):
        order = ["ours", "distribution"] if rep % 2 == 0 else ["distribution", "ours"]
        for who in order:
            cache = start_cache(args, who, work / f"cold-{who}-{rep}", upstream)
            try:
                os.sync()
                busy = quiet()
                gets0, sent0 = upstream.served(blob.digest)
                cpu0 = cache.cpu()
                pull = cache.pull(blob.digest, buffer)
                upstream.settle(functools.partial(cache.holds, blob.digest, blob.size))
                gets, sent = upstream.served(blob.digest)
                sample = Sample(
                    pull.mb_per_s,
                    pull.ttfb * 1e3,
                    pull.sha256 == hex_of(blob),
                    gets - gets0,
                    sent - sent0,
                    cache.cpu() - cpu0,
                    busy,
                )
            finally:
                cache.stop()
            print(
                f"  cold rep {rep + 1} {who}: {sample.mb_per_s:.0f} MB/s, "
                f"TTFB {sample.ttfb_ms:.1f} ms, upstream {sample.upstream_gets} GETs "
                f"{sample.upstream_bytes / blob.size:.2f}x, sha256 ok {sample.sha_ok}",
                file=sys.stderr,
            )
            results[who].append(sample)
    return {who: [asdict(s) for s in samples] for who, samples in results.items()}


def warm(args: argparse.Namespace, upstream: Upstream, blob: Blob, work: Path) -> dict[str, Any]:
    """Pulls of the cached layer (ours, Distribution's) and of a blob pushed to a plain
    repository of ours, the three in rotating order within each rep."""
    ours = start_cache(args, "ours", work / "warm-ours", upstream)
    dist = start_cache(args, "distribution", work / "warm-distribution", upstream)
    try:
        buffer = bytearray(blob.size)
        for cache in (ours, dist):  # the cold pull that fills each cache
            if cache.pull(blob.digest, buffer).sha256 != hex_of(blob):
                raise RuntimeError(f"{cache.who}: the cold pull got other bytes")
            upstream.settle(functools.partial(cache.holds, blob.digest, blob.size))
        own_data = os.urandom(blob.size)
        conn = Connection("127.0.0.1", ours.server.port, ours.server.auth)
        try:
            own_digest = push_blob(conn, OWN_REPOSITORY, own_data)
        finally:
            conn.close()
        del own_data
        pulls: dict[str, Callable[[], tuple[Pull, str]]] = {
            "ours cached": lambda: (ours.pull(blob.digest, buffer), blob.digest),
            "ours own": lambda: (
                timed_get(
                    ours.server.port,
                    f"/v2/{OWN_REPOSITORY}/blobs/{own_digest}",
                    ours.server.auth,
                    buffer,
                ),
                own_digest,
            ),
            "distribution cached": lambda: (dist.pull(blob.digest, buffer), blob.digest),
        }
        results: dict[str, list[Sample]] = {k: [] for k in pulls}
        for kind, pull in pulls.items():  # untimed: the first read of each after the push
            got, digest = pull()
            if "sha256:" + got.sha256 != digest:
                raise RuntimeError(f"{kind}: got other bytes")
        kinds = list(pulls)
        for rep in range(args.warm_reps):
            busy = quiet()
            for turn in range(args.warm_rounds):
                shift = (rep * args.warm_rounds + turn) % 3
                for kind in kinds[shift:] + kinds[:shift]:
                    got, digest = pulls[kind]()
                    ok = "sha256:" + got.sha256 == digest
                    sample = Sample(got.mb_per_s, got.ttfb * 1e3, ok, other_cores=busy)
                    results[kind].append(sample)
            print(
                "  warm rep "
                + f"{rep + 1}: "
                + ", ".join(f"{k} {v[-1].mb_per_s:.0f} MB/s" for k, v in results.items()),
                file=sys.stderr,
            )
    finally:
        ours.stop()
        dist.stop()
    return {kind: [asdict(s) for s in samples] for kind, samples in results.items()}


@dataclass
class Crowd:
    """`clients` concurrent cold pulls of one fresh cache."""

    seconds: float  # from the first request sent to the last body byte received
    slowest_s: float
    sha_ok: int
    clients: int
    upstream_gets: int
    upstream_bytes: int
    server_cpu: float
    other_cores: float
    pulls: list[dict[str, float]] = field(default_factory=list)


def crowd(args: argparse.Namespace, cache: Cache, upstream: Upstream, blob: Blob) -> Crowd:
    barrier = threading.Barrier(args.clients)
    got: list[Pull | BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        buffer = bytearray(blob.size)
        try:
            barrier.wait(timeout=TIMEOUT)
            pull: Pull | BaseException = cache.pull(blob.digest, buffer)
        except Exception as exc:
            pull = exc
        with lock:
            got.append(pull)

    busy = quiet()
    gets0, sent0 = upstream.served(blob.digest)
    cpu0 = cache.cpu()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)
    upstream.settle(functools.partial(cache.holds, blob.digest, blob.size))
    gets, sent = upstream.served(blob.digest)
    pulls = [p for p in got if isinstance(p, Pull)]
    failures = [p for p in got if not isinstance(p, Pull)]
    for failure in failures:
        print(f"  {cache.who}: a client failed: {failure!r}", file=sys.stderr)
    ends = [p.started + p.seconds for p in pulls]
    return Crowd(
        seconds=max(ends) - min(p.started for p in pulls) if pulls else 0.0,
        slowest_s=max((p.seconds for p in pulls), default=0.0),
        sha_ok=sum(p.sha256 == hex_of(blob) for p in pulls),
        clients=args.clients,
        upstream_gets=gets - gets0,
        upstream_bytes=sent - sent0,
        server_cpu=cache.cpu() - cpu0,
        other_cores=busy,
        pulls=[{"ttfb_ms": p.ttfb * 1e3, "seconds": p.seconds} for p in pulls],
    )


def concurrent(
    args: argparse.Namespace, upstream: Upstream, blob: Blob, work: Path
) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {"ours": [], "distribution": []}
    for rep in range(args.concurrent_reps):
        order = ["ours", "distribution"] if rep % 2 == 0 else ["distribution", "ours"]
        for who in order:
            cache = start_cache(args, who, work / f"crowd-{who}-{rep}", upstream)
            try:
                os.sync()
                result = crowd(args, cache, upstream, blob)
            finally:
                cache.stop()
            print(
                f"  {args.clients} clients rep {rep + 1} {who}: upstream {result.upstream_gets} "
                f"GETs, {result.upstream_bytes / blob.size:.2f}x the blob, "
                f"{result.sha_ok}/{result.clients} sha256 ok, {result.seconds:.2f} s",
                file=sys.stderr,
            )
            results[who].append(asdict(result))
    return results


def median(samples: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(s[key] for s in samples))


def paired(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], key: str) -> float:
    """Median of per-rep ratios: within a rep both ran at the same moment of the machine."""
    return float(statistics.median(a[key] / b[key] for a, b in zip(ours, theirs, strict=True)))


def report(everything: dict[str, Any], size: int) -> str:
    lines = []
    up = everything["upstream_alone"]
    lines.append(
        f"upstream alone: {median(up, 'mb_per_s'):.0f} MB/s, "
        f"TTFB {median(up, 'ttfb_ms'):.2f} ms (median of {len(up)})"
    )
    c = everything["cold"]
    rows: list[tuple[str, ...]] = [
        ("cold pull", "MB/s median (range)", "TTFB ms median (range)", "upstream", "CPU s")
    ]
    for who in ("ours", "distribution"):
        s = c[who]
        rows.append(
            (
                who,
                _spread(s, "mb_per_s", "{:.0f}"),
                _spread(s, "ttfb_ms", "{:.1f}"),
                f"{median(s, 'upstream_gets'):g} GETs, "
                f"{median(s, 'upstream_bytes') / size:.2f}x blob",
                f"{median(s, 'server_cpu'):.2f}",
            )
        )
    lines.append(grid(rows))
    w = everything["warm"]
    rows = [("warm pull", "MB/s median (range)", "TTFB ms median")]
    for kind, s in w.items():
        rows.append((kind, _spread(s, "mb_per_s", "{:.0f}"), f"{median(s, 'ttfb_ms'):.2f}"))
    lines.append(grid(rows))
    k = everything["concurrent"]
    rows = [("clients", "upstream GETs", "upstream bytes", "sha256 ok", "all done s", "CPU s")]
    for who in ("ours", "distribution"):
        for r in k[who]:
            rows.append(
                (
                    f"{r['clients']} {who}",
                    str(r["upstream_gets"]),
                    f"{r['upstream_bytes']:,} ({r['upstream_bytes'] / size:.2f}x)",
                    f"{r['sha_ok']}/{r['clients']}",
                    f"{r['seconds']:.2f}",
                    f"{r['server_cpu']:.2f}",
                )
            )
    lines.append(grid(rows))
    lines += verdicts(everything, size)
    return "\n\n".join(lines[:4]) + "\n\n" + "\n".join(lines[4:])


def _spread(samples: list[dict[str, Any]], key: str, fmt: str) -> str:
    values = [s[key] for s in samples]
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return f"{fmt.format(statistics.median(values))} ({low}-{high})"


def verdicts(everything: dict[str, Any], size: int) -> list[str]:
    c, w, k = everything["cold"], everything["warm"], everything["concurrent"]
    cold_ratio = median(c["ours"], "mb_per_s") / median(c["distribution"], "mb_per_s")
    cold_paired = paired(c["ours"], c["distribution"], "mb_per_s")
    ttfb_ratio = median(c["ours"], "ttfb_ms") / median(c["distribution"], "ttfb_ms")
    warm_ratio = median(w["ours cached"], "mb_per_s") / median(w["ours own"], "mb_per_s")
    warm_paired = paired(w["ours cached"], w["ours own"], "mb_per_s")
    ones = [r["upstream_bytes"] / size for r in k["ours"]]
    every_sha = all(r["sha_ok"] == r["clients"] for who in k for r in k[who])
    every_sha = every_sha and all(s["sha_ok"] for part in (c, w) for v in part.values() for s in v)

    def met(ok: bool) -> str:
        return "met" if ok else "MISSED"

    return [
        f"cold throughput ours/Distribution: {cold_ratio:.2f}x (paired {cold_paired:.2f}), "
        f"target >= 1.0x: {met(cold_ratio >= 1.0)}; TTFB ours/Distribution {ttfb_ratio:.2f}x",
        f"warm cached / own pull: {warm_ratio:.2f}x (paired {warm_paired:.2f}), "
        f"target >= 1.0x: {met(warm_ratio >= 1.0)}",
        f"upstream bytes for {k['ours'][0]['clients']} concurrent cold pulls, ours: "
        + ", ".join(f"{x:.2f}x" for x in ones)
        + f" the blob, target 1x: {met(all(x == 1.0 for x in ones))}",
        f"every client got the right bytes (sha256): {'yes' if every_sha else 'NO'}",
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=32)
    parser.add_argument("--reps", type=int, default=7, help="cold pulls per cache")
    parser.add_argument("--warm-reps", type=int, default=11)
    parser.add_argument(
        "--warm-rounds", type=int, default=5, help="pulls of each kind per warm rep, in turns"
    )
    parser.add_argument("--concurrent-reps", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="our registry's -workers")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--distribution", default=servers.DISTRIBUTION_BINARY)
    parser.add_argument("--workdir", default=None, help="where the stores go (default: /tmp)")
    parser.add_argument("--json", default=None, help="write every sample here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = args.size_mib * 1024 * 1024
    everything: dict[str, Any] = {"size": size, "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="proxy-bench-", dir=args.workdir) as folder:
        work = Path(folder)
        upstream = Upstream(args.distribution, work)
        try:
            data = os.urandom(size)
            blob = Blob(upstream.push(data), size)
            assert blob.digest == digest_of(data)
            del data
            print(f"upstream {upstream.url} holds {REPOSITORY}@{blob.digest}", file=sys.stderr)
            everything["upstream_alone"] = [asdict(s) for s in alone(args, upstream, blob)]
            everything["cold"] = cold(args, upstream, blob, work)
            everything["warm"] = warm(args, upstream, blob, work)
            everything["concurrent"] = concurrent(args, upstream, blob, work)
        finally:
            upstream.stop()
    print(report(everything, size))
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
