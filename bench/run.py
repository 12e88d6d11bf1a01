"""Benchmark simple-registry against CNCF Distribution (Debian's docker-registry).

    python bench/run.py [--json bench/results/run1.json]

Each registry is started fresh for each part (bulk blobs, manifests, big streamed push) with its
data in a temporary directory, measured, and stopped; in the bulk part both run side by side
and take turns rep by rep. bench/README.md says what each number means and how the client was
checked not to be the bottleneck.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import bulk
import loadgen
import report
import scaled
import servers
from bulk import Blob
from profiling import PerfProfiler, Profiler, summarize
from rawhttp import Connection, HTTPFailure
from scaled import Census, Moto, Redis

MiB = 1024 * 1024
REPO = "bench/app"
SEQUENTIAL = 20  # manifest requests one after another, for the S3 calls of one request
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
T = TypeVar("T")


@dataclass
class Metric:
    """One measured number for one registry, and what the processes used meanwhile."""

    value: float
    unit: str
    samples: list[float] = field(default_factory=list)
    server_cpu_cores: float = 0.0
    server_sys_share: float = 0.0  # share of the server's CPU spent in the kernel
    client_cpu_cores: float = 0.0
    other_cpu_cores: float = 0.0
    peak_rss_max_mib: float = 0.0
    peak_rss_sum_mib: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


Results = dict[str, Metric]


def client_cpu() -> float:
    """CPU of this process (the bulk client) plus its reaped children (wrk)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Phase:
    """Accumulates wall time, server CPU and client CPU over the timed parts of a phase.

    `backends` (name -> pid: the S3 and Redis servers of the scaled mode) are measured apart
    and not counted as other processes.
    """

    def __init__(self, server: servers.AnyServer, backends: dict[str, int] | None = None) -> None:
        self.server = server
        self.meter = servers.Meter(server)
        self.backends = dict(backends or {})
        self.backend_cpu = dict.fromkeys(self.backends, 0.0)
        self.wall = self.server_cpu = self.server_sys = self.client_cpu = self.other_cpu = 0.0
        self.sys_share: list[float] = []

    def timed(self, fn: Callable[[], T]) -> T:
        """Run `fn`, adding its wall time and what each side used meanwhile."""
        (su0, ss0), c0, u0 = self._server_cpu(), client_cpu(), servers.userland_cpu()
        b0 = {name: servers.cpu_seconds(pid) for name, pid in self.backends.items()}
        t0 = time.perf_counter()
        result = fn()
        self.wall += time.perf_counter() - t0
        su1, ss1 = self._server_cpu()
        self.server_cpu += su1 + ss1 - su0 - ss0
        self.server_sys += ss1 - ss0
        self.sys_share.append(round((ss1 - ss0) / max(su1 + ss1 - su0 - ss0, 1e-9), 2))
        self.client_cpu += client_cpu() - c0
        for name, pid in self.backends.items():
            self.backend_cpu[name] += servers.cpu_seconds(pid) - b0[name]
        ours = {os.getpid(), *self.meter.pids, *self.backends.values()}
        self.other_cpu += servers.foreign_cpu(u0, servers.userland_cpu(), ours)
        return result

    def _server_cpu(self) -> tuple[float, float]:
        splits = [servers.cpu_split(p) for p in self.meter.pids]
        return sum(u for u, _ in splits), sum(s for _, s in splits)

    def metric(self, value: float, unit: str, **kwargs: Any) -> Metric:
        usage = self.meter.read()
        wall = self.wall or 1e-9
        if self.backends:
            cores = {f"{n}_cores": round(c / wall, 2) for n, c in self.backend_cpu.items()}
            kwargs["extra"] = {**kwargs.get("extra", {}), **cores}
        return Metric(
            value,
            unit,
            server_cpu_cores=round(max(self.server_cpu, 0.0) / wall, 2),
            server_sys_share=round(self.server_sys / max(self.server_cpu, 1e-9), 2),
            client_cpu_cores=round(self.client_cpu / wall, 2),
            other_cpu_cores=round(self.other_cpu / wall, 2),
            peak_rss_max_mib=round(usage.max_peak_mib, 1),
            peak_rss_sum_mib=round(usage.sum_peak_mib, 1),
            **kwargs,
        )


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.profiles: dict[str, str] = {}
        self.backends: dict[str, int] = {}  # scaled mode: moto and redis-server, by pid
        self._counter = 0

    @contextmanager
    def server(self, kind: str, workers: int) -> Iterator[servers.Server]:
        self._counter += 1
        datadir = self.workdir / f"{kind}-{self._counter}"
        os.sync()  # earlier phases' dirty pages must not be written back during this one
        if kind == "ours":
            server = servers.start_ours(self.args.python, datadir, workers)
        else:
            server = servers.start_distribution(self.args.distribution, datadir)
        try:
            yield server
        finally:
            _stop(server)

    @contextmanager
    def phase(self, server: servers.AnyServer, name: str) -> Iterator[Phase]:
        """A measured phase; with --profile, our server is sampled by py-spy meanwhile
        (each process of a cluster by a py-spy of its own, summarized together)."""
        profilers: list[Profiler | PerfProfiler] = []
        folder = Path(self.args.profile or ".")
        if self.args.profile and server.label == "ours":
            folder.mkdir(parents=True, exist_ok=True)
            if self.args.profiler == "perf":
                profilers.append(PerfProfiler("perf", server.tree(), folder / f"{name}.perf.data"))
            else:
                members = server.members if isinstance(server, servers.Cluster) else [server]
                for i, member in enumerate(members):
                    out = folder / (f"{name}.txt" if len(members) == 1 else f"{name}.{i}.txt")
                    profilers.append(Profiler(self.args.py_spy, member.process.pid, out))
            time.sleep(1.5)  # let the profiler attach to every process before the load starts
        busy = servers.wait_for_quiet(timeout=self.args.quiet_wait)
        if busy >= 0.25:
            print(f"  ! {name}: the machine is busy with other work ({busy:.2f} cores)")
        try:
            yield Phase(server, self.backends)
        finally:
            errors = [p.stop() for p in profilers]
            outputs = [p.output for p in profilers if p.output.exists()]
            if profilers and isinstance(profilers[0], PerfProfiler) and outputs:
                self.profiles[name] = profilers[0].render(name)
            elif profilers and outputs:
                merged = folder / f"{name}.txt"
                if len(profilers) > 1:  # raw collapsed stacks: one line each, concatenated
                    merged.write_text("".join(o.read_text(errors="replace") for o in outputs))
                self.profiles[name] = summarize(merged).render(name)
            elif profilers:
                print(f"  ! py-spy wrote nothing for {name}:\n" + "\n".join(errors))

    @staticmethod
    def connect(server: servers.AnyServer) -> Connection:
        return Connection("127.0.0.1", server.port, server.auth)

    # -- bulk blobs -----------------------------------------------------------------------
    def bulk(self, kinds: list[str], blob: bulk.Blob) -> dict[str, Results]:
        """Both registries run side by side and take turns, rep by rep, in alternating order,
        so that slow and fast moments of the machine fall on both alike (see README)."""
        with ExitStack() as stack:
            srv = {k: stack.enter_context(self.server(k, self.args.bulk_workers)) for k in kinds}
            return self.bulk_tests(srv, blob, self.args.bulk_tests.split(","))

    def bulk_tests(
        self,
        srv: Mapping[str, servers.AnyServer],
        blob: Blob,
        tests: list[str],
        prefix: str = "",
        census: Census | None = None,
        buckets: dict[str, str] | None = None,
    ) -> dict[str, Results]:
        """The bulk loop: for each test, `--reps` reps, the registries taking turns.

        A cluster (several processes of one registry) gets rep n's monolithic push and pull on
        process n mod their number, and the requests of a chunked push spread over all of them.
        With a `census`, the S3 requests of every timed operation are counted (in `buckets`).
        """
        a = self.args
        kinds = list(srv)
        size, chunk = blob.size, a.chunk_mib * MiB
        mib = size // MiB
        labels = {
            "push_monolithic": f"push monolithic ({mib} MiB)",
            "push_chunked": f"push chunked ({-(-size // chunk)} x {a.chunk_mib} MiB)",
            "pull": f"pull ({mib} MiB)",
        }
        results: dict[str, Results] = {k: {} for k in kinds}
        conns = {
            k: [Connection("127.0.0.1", m.port, m.auth) for m in _members(s)]
            for k, s in srv.items()
        }
        try:
            for test in tests:
                if test == "pull":
                    for k in kinds:  # correctness first, untimed: the bytes hash to the digest
                        bulk.pull(conns[k][0], REPO, blob.digest, size, verify=True)
                times: dict[str, list[float]] = {k: [] for k in kinds}
                with ExitStack() as phases:
                    ph = {
                        k: phases.enter_context(self.phase(srv[k], f"{k}-{prefix}{test}"))
                        for k in kinds
                    }
                    for rep in range(a.reps):
                        if test != "pull":
                            bulk.variant(blob, 2 * rep + (test == "push_chunked"))
                        for k in kinds if rep % 2 == 0 else kinds[::-1]:
                            os.sync()  # no writeback of the previous push during this one
                            conn = conns[k][rep % len(conns[k])]
                            if test == "push_monolithic":
                                job = partial(
                                    bulk.push_monolithic, conn, REPO, blob.data, size, blob.digest
                                )
                            elif test == "push_chunked":
                                chunks = bulk.slices(blob.data, chunk)
                                job = partial(
                                    bulk.push_chunked, conns[k], REPO, chunks, size, blob.digest
                                )
                            else:
                                job = partial(bulk.pull, conn, REPO, blob.digest, size)
                            before = census.before() if census else {}
                            times[k].append(ph[k].timed(job))
                            if census and buckets:
                                census.after(k, labels[test], buckets[k], before, times[k][-1])
                            if test != "pull":
                                before = census.before() if census else {}
                                t0 = time.perf_counter()
                                bulk.check_blob(conn, REPO, blob.digest, size)
                                if census and buckets:
                                    wall = time.perf_counter() - t0
                                    census.after(k, "blob HEAD", buckets[k], before, wall)
                    for k in kinds:
                        results[k][prefix + test] = rate(ph[k], size, times[k])
        finally:
            for conn in (c for cs in conns.values() for c in cs):
                conn.close()
        return results

    # -- manifests ------------------------------------------------------------------------
    def manifests(self, kind: str) -> Results:
        a = self.args
        results: Results = {}
        with self.server(kind, a.workers) as server:
            conn = self.connect(server)
            path, _ = push_image(conn)
            conn.close()
            headers = {"Accept": MANIFEST_TYPE}
            if server.auth:
                headers["Authorization"] = server.auth
            for method in ("HEAD", "GET"):
                self._load(server, path, method, headers, a.warmup)  # warm-up, discarded
                with self.phase(server, f"{kind}-manifest-{method.lower()}") as ph:
                    load = ph.timed(partial(self._load, server, path, method, headers))
                    if load.errors or load.non_2xx:
                        print(f"  ! {kind} {method}: {load.errors} errors, {load.non_2xx} non-2xx")
                        print("\n".join(f"    {m}" for m in load.messages))
                        print(capture_failure(server, path, method, headers))
                    worker_cpu = {
                        str(p): round(ph.meter.read([p]).total_cpu, 2) for p in server.workers()
                    }
                    results[f"manifest_{method.lower()}"] = ph.metric(
                        round(load.rps, 1),
                        "req/s",
                        samples=[round(load.rps, 1)],
                        extra={**load.as_dict(), "worker_cpu_seconds": worker_cpu},
                    )
        return results

    def _load(
        self,
        server: servers.Server,
        path: str,
        method: str,
        headers: dict[str, str],
        seconds: float | None = None,
    ) -> loadgen.LoadResult:
        a = self.args
        duration = a.duration if seconds is None else seconds
        if a.loadgen == "wrk" and method != "HEAD":  # wrk waits for a body after HEAD
            url = f"http://127.0.0.1:{server.port}{path}"
            return loadgen.run_wrk(
                a.wrk, url, method, headers, a.connections, duration, a.wrk_threads
            )
        return loadgen.run_python(
            "127.0.0.1", server.port, path, method, headers, a.connections, duration
        )

    # -- scaled mode: S3 + Redis ----------------------------------------------------------
    def scaled_mode(self, kinds: list[str]) -> tuple[dict[str, Results], dict[str, Any]]:
        """Both registries on one moto S3 server (a bucket each), ours with a fresh Redis:
        moto alone first, then the bulk tests, then manifest HEADs; S3 requests counted."""
        a = self.args
        results: dict[str, Results] = {k: {} for k in kinds}
        buckets = {k: f"bench-{k}" for k in kinds}
        with ExitStack() as stack:
            moto = stack.enter_context(scaled.Moto(a.python, self.workdir / "moto"))
            redis = stack.enter_context(scaled.Redis(self.workdir / "redis"))
            self.backends = {"moto": moto.pid, "redis": redis.pid}
            stack.callback(self.backends.clear)
            census = scaled.Census(moto)
            blob = bulk.random_blob(a.s3_size_mib * MiB)

            moto.create_bucket("bench-baseline")
            busy = servers.wait_for_quiet(timeout=a.quiet_wait)
            if busy >= 0.25:
                print(f"  ! moto alone: the machine is busy with other work ({busy:.2f} cores)")
            base = scaled.baseline(
                moto, "bench-baseline", blob.data, a.reps, a.duration, a.connections
            )
            print(scaled.render_baseline(base), flush=True)

            srv = {
                k: stack.enter_context(self.s3_registry(k, moto, redis, buckets[k])) for k in kinds
            }
            for kind, found in self.bulk_tests(
                srv, blob, ["push_monolithic", "push_chunked", "pull"], "s3_", census, buckets
            ).items():
                results[kind].update(found)
                report.progress(kind, results[kind], ("s3_push_monolithic", "s3_push_chunked"))
                report.progress(kind, results[kind], ("s3_pull",))
            for kind in kinds:
                results[kind].update(self.s3_manifests(srv[kind], census, buckets[kind]))
                report.progress(kind, results[kind], ("s3_manifest_head",))
            calls = census.as_dict()
        doc = {
            "baseline": scaled.baseline_dicts(base),
            "s3_calls": calls,
            "layout": {k: len(_members(s)) for k, s in srv.items()},
        }
        return results, doc

    @contextmanager
    def s3_registry(
        self, kind: str, moto: Moto, redis: Redis, bucket: str
    ) -> Iterator[servers.Cluster]:
        """Ours: `--s3-processes` serve processes (each `-workers --s3-workers`) on one bucket
        and one Redis; Distribution: `--s3-dist-processes` processes on one bucket."""
        a = self.args
        moto.create_bucket(bucket)
        cluster = servers.Cluster(kind, [])
        try:
            for _ in range(a.s3_processes if kind == "ours" else a.s3_dist_processes):
                self._counter += 1
                datadir = self.workdir / f"{kind}-s3-{self._counter}"
                if kind == "ours":
                    redirect_dir = datadir / "redirect-cfg" if a.s3_redirect else None
                    flags = scaled.ours_flags(moto, bucket, redis, redirect_dir)
                    member = servers.start_ours(
                        a.python, datadir, a.s3_workers, kind, flags, scaled.S3_ENV
                    )
                else:
                    backend = scaled.distribution_backend(moto, bucket, a.s3_redirect)
                    member = servers.start_distribution(a.distribution, datadir, kind, backend)
                cluster.members.append(member)
            yield cluster
        finally:
            for member in cluster.members:
                _stop(member)

    def s3_manifests(self, cluster: servers.Cluster, census: Census, bucket: str) -> Results:
        """Push an image, count the S3 requests of single manifest requests, then HEAD by tag
        from `--connections` clients spread over the cluster's processes."""
        a = self.args
        kind = cluster.label
        headers = {"Accept": MANIFEST_TYPE}
        if cluster.auth:
            headers["Authorization"] = cluster.auth
        conn = self.connect(cluster)
        try:
            path, body = push_image(conn)
            again = path.rsplit("/", 1)[0] + "/v2"
            before, t0 = census.before(), time.perf_counter()
            conn.request(
                "PUT", again, headers={"Content-Type": MANIFEST_TYPE}, body=body, expect=[201]
            )
            census.after(kind, "manifest PUT (new tag)", bucket, before, time.perf_counter() - t0)
            for method in ("GET", "HEAD"):
                before, t0 = census.before(), time.perf_counter()
                for _ in range(SEQUENTIAL):
                    conn.request(method, path, headers={"Accept": MANIFEST_TYPE}, expect=[200])
                wall = time.perf_counter() - t0
                label = f"manifest {method} by tag, one at a time"
                census.after(kind, label, bucket, before, wall, SEQUENTIAL)
        finally:
            conn.close()
        ports = [m.port for m in cluster.members]
        loadgen.run_python("127.0.0.1", ports, path, "HEAD", headers, a.connections, a.warmup)
        with self.phase(cluster, f"{kind}-s3_manifest_head") as ph:
            before = census.before()
            load = ph.timed(
                partial(
                    loadgen.run_python,
                    "127.0.0.1",
                    ports,
                    path,
                    "HEAD",
                    headers,
                    a.connections,
                    a.duration,
                )
            )
            # wall: connections x seconds, so that wall per request is the mean latency
            label = f"manifest HEAD by tag, {a.connections} connections"
            census.after(
                kind, label, bucket, before, load.seconds * a.connections, max(load.requests, 1)
            )
            if load.errors or load.non_2xx:
                print(f"  ! {kind} HEAD: {load.errors} errors, {load.non_2xx} non-2xx")
                print("\n".join(f"    {m}" for m in load.messages))
            worker_cpu = {str(p): round(ph.meter.read([p]).total_cpu, 2) for p in cluster.workers()}
            metric = ph.metric(
                round(load.rps, 1),
                "req/s",
                samples=[round(load.rps, 1)],
                extra={**load.as_dict(), "worker_cpu_seconds": worker_cpu},
            )
        return {"s3_manifest_head": metric}

    # -- big streamed push ----------------------------------------------------------------
    def big(self, kind: str, total: int, digest: str) -> Results:
        a = self.args
        chunk = a.chunk_mib * MiB
        results: Results = {}
        with self.server(kind, a.workers) as server:
            conn = self.connect(server)
            for method in ("monolithic", "chunked"):
                name = f"{REPO}-big-{method}"
                push = bulk.push_monolithic if method == "monolithic" else bulk.push_chunked
                with self.phase(server, f"{kind}-big-push-{method}") as ph:
                    stream = bulk.generated(total, chunk, a.seed)
                    seconds = ph.timed(partial(push, conn, name, stream, total, digest))
                    usage = ph.meter.read()
                    worker_pids = server.workers() if kind == "ours" else list(usage.peak_kib)
                    worst = max((usage.peak_kib.get(p, 0) for p in worker_pids), default=0)
                    results[f"big_push_{method}"] = ph.metric(
                        round(worst / 1024, 1),
                        "MiB",
                        extra={
                            "MB/s": round(bulk.mb_per_s(total, seconds), 1),
                            "peak_was_reset": ph.meter.peak_reset,
                        },
                    )
                bulk.check_blob(conn, name, digest, total)
            conn.close()
        return results


def _members(server: servers.AnyServer) -> list[servers.Server]:
    return server.members if isinstance(server, servers.Cluster) else [server]


def _stop(server: servers.Server) -> None:
    server.stop()
    if server.process.returncode not in (0, -15):
        tail = "".join(server.log[-20:])
        print(f"  ! {server.label} exited with {server.process.returncode}:\n{tail}")


def rate(ph: Phase, size: int, times: list[float]) -> Metric:
    rates = [bulk.mb_per_s(size, t) for t in times]
    return ph.metric(
        round(statistics.median(rates), 1),
        "MB/s",
        samples=[round(r, 1) for r in rates],
        extra={"seconds": [round(t, 3) for t in times], "sys_share_per_rep": ph.sys_share},
    )


def push_image(conn: Connection) -> tuple[str, bytes]:
    """A config blob and two small layers, then an OCI image manifest tagged `v1`.

    Returns the manifest's path and its bytes."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
    descriptors = []
    for data in (config.encode(), os.urandom(4096), os.urandom(8192)):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        bulk.push_monolithic(conn, REPO, data, len(data), digest)
        descriptors.append({"digest": digest, "size": len(data)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **descriptors[0]},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **d}
            for d in descriptors[1:]
        ],
    }
    body = json.dumps(manifest).encode()
    path = f"/v2/{REPO}/manifests/v1"
    conn.request("PUT", path, headers={"Content-Type": MANIFEST_TYPE}, body=body, expect=[201])
    accept = {"Accept": MANIFEST_TYPE}
    got = conn.request("GET", path, headers=accept, expect=[200])
    if got.body != body:
        raise HTTPFailure(
            "GET returned other bytes than were pushed", f"GET {path}", got.describe()
        )
    conn.request("HEAD", path, headers=accept, expect=[200])
    return path, body


def capture_failure(server: servers.Server, path: str, method: str, headers: dict[str, str]) -> str:
    """Repeat the request (bounded: 200 tries) until one fails, and show it on the wire."""
    conn = Connection("127.0.0.1", server.port)
    try:
        for _ in range(200):
            r = conn.request(method, path, headers=headers)
            if not 200 <= r.status < 400:
                return f"{method} {path}\n{r.describe()}"
        return "(the failure did not happen again in 200 sequential requests)"
    except HTTPFailure as exc:
        return str(exc)
    finally:
        conn.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--python",
        default=os.environ.get("BENCH_PYTHON") or _default_python(),
        help="interpreter that has simple-registry installed (default: this one)",
    )
    p.add_argument(
        "--distribution",
        default=servers.DISTRIBUTION_BINARY,
        help="Distribution binary; skipped when missing (default %(default)s)",
    )
    p.add_argument("--skip-distribution", action="store_true")
    p.add_argument("--size-mib", type=int, default=256, help="bulk blob size (default 256)")
    p.add_argument("--chunk-mib", type=int, default=8, help="PATCH chunk size (default 8)")
    p.add_argument("--reps", type=int, default=5, help="repetitions per bulk test (median)")
    p.add_argument(
        "--bulk-tests",
        default="push_monolithic,push_chunked,pull",
        help="bulk tests and their order (pull needs a push before it)",
    )
    p.add_argument("--bulk-workers", type=int, default=1, help="our -workers for bulk tests")
    p.add_argument("--workers", type=int, default=2, help="our -workers for manifests, big push")
    p.add_argument("--connections", type=int, default=32, help="concurrent manifest clients")
    p.add_argument("--duration", type=float, default=10, help="seconds per manifest test")
    p.add_argument("--warmup", type=float, default=2, help="seconds of discarded warm-up")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument("--wrk", default=loadgen.find_wrk(), help="wrk binary")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--big-gib", type=float, default=2.0, help="streamed push size (0 skips)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=120,
        help="seconds to wait for an idle machine before each phase (default 120)",
    )
    p.add_argument(
        "--parts",
        default="bulk,manifests,big",
        help="comma-separated parts to run: bulk, manifests, big (filesystem), s3 (scaled mode)",
    )
    p.add_argument("--s3-size-mib", type=int, default=128, help="s3 part: blob size (default 128)")
    p.add_argument(
        "--s3-processes",
        type=int,
        default=2,
        help="s3 part: our serve processes sharing the bucket and Redis (default 2)",
    )
    p.add_argument(
        "--s3-workers", type=int, default=1, help="s3 part: -workers of each of them (default 1)"
    )
    p.add_argument(
        "--s3-dist-processes",
        type=int,
        default=1,
        help="s3 part: Distribution processes sharing its bucket (default 1)",
    )
    p.add_argument(
        "--s3-redirect",
        action="store_true",
        help="s3 part: both registries answer blob GETs with a 307 to a presigned moto URL, "
        "which the pull client follows (default: they serve the bytes themselves)",
    )
    p.add_argument("--json", help="write the results here as JSON")
    p.add_argument("--workdir", help="parent folder for the registries' data (default: /tmp)")
    p.add_argument("--profile", metavar="DIR", help="profile our server into DIR (--profiler)")
    p.add_argument(
        "--profiler",
        choices=["py-spy", "perf"],
        default="py-spy",
        help="py-spy: Python functions; perf: kernel and C symbols",
    )
    p.add_argument("--py-spy", default="py-spy", help="py-spy binary for --profile")
    args = p.parse_args(argv)
    if args.loadgen == "auto":
        args.loadgen = "wrk" if args.wrk else "python"
    if args.loadgen == "wrk" and not args.wrk:
        p.error("wrk not found: install it (apt-get install wrk) or use --loadgen python")
    return args


def _default_python() -> str:
    return sys.executable


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = ["ours"]
    if args.skip_distribution:
        print("Distribution: skipped (--skip-distribution)")
    elif not Path(args.distribution).is_file():
        print(f"Distribution: skipped ({args.distribution} does not exist)")
    else:
        kinds.append("distribution")
    parts = set(args.parts.split(","))
    machine = report.machine_info(args)
    print(report.render_machine(machine))

    results: dict[str, Results] = {k: {} for k in kinds}
    s3doc: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="registry-bench-", dir=args.workdir) as tmp:
        bench = Bench(args, Path(tmp))
        if "bulk" in parts:
            print(
                f"bulk: {args.size_mib} MiB random blob, {args.chunk_mib} MiB chunks, "
                f"{args.reps} reps"
            )
            blob = bulk.random_blob(args.size_mib * MiB)
            for kind, found in bench.bulk(kinds, blob).items():
                results[kind].update(found)
                report.progress(kind, results[kind], ("push_monolithic", "push_chunked", "pull"))
        if "manifests" in parts:
            print(
                f"manifests: {args.connections} clients x {args.duration:.0f} s, "
                f"load generator {args.loadgen}"
            )
            for kind in kinds:
                results[kind].update(bench.manifests(kind))
                report.progress(kind, results[kind], ("manifest_head", "manifest_get"))
        if "big" in parts and args.big_gib > 0:
            total = int(args.big_gib * 1024 * MiB)
            print(f"big push: {total / MiB:.0f} MiB streamed from a generator")
            digest = bulk.generated_digest(total, args.chunk_mib * MiB, args.seed)
            for kind in kinds:
                results[kind].update(bench.big(kind, total, digest))
                report.progress(kind, results[kind], ("big_push_monolithic", "big_push_chunked"))
        if "s3" in parts:
            print(
                f"s3: moto S3 server + Redis, {args.s3_size_mib} MiB blob, "
                f"{args.chunk_mib} MiB chunks, {args.reps} reps, ours {args.s3_processes} "
                f"process(es) x -workers {args.s3_workers}, Distribution "
                f"{args.s3_dist_processes} process(es); manifest HEAD {args.connections} "
                f"clients x {args.duration:.0f} s"
                + ("; blob GETs redirected to presigned S3 URLs" if args.s3_redirect else "")
            )
            s3found, s3doc = bench.scaled_mode(kinds)
            for kind in kinds:
                results[kind].update(s3found[kind])
    print()
    print(report.render_table(results))
    print()
    print(report.render_usage(results))
    if s3doc:
        print()
        print(scaled.render_baseline_from(s3doc["baseline"]))
        print()
        print(scaled.render_calls(s3doc["s3_calls"]))
    for text in bench.profiles.values():
        print()
        print(text)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "machine": machine,
            "args": {k: v for k, v in vars(args).items() if k != "profile"},
            "results": {k: {m: asdict(v) for m, v in r.items()} for k, r in results.items()},
            "targets": report.verdicts(results),
            "profiles": bench.profiles,
        }
        if s3doc:
            doc["s3"] = s3doc
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {out}")
    return 0


def run(argv: list[str] | None = None) -> int:
    """`main`, with a failed registry request shown as the request and response, not a trace."""
    try:
        return main(argv)
    except HTTPFailure as exc:
        print(f"\nA registry request failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(run())
