"""Garbage collection benchmark: our `gc` against Distribution's `garbage-collect`.

Both registries receive the same content through their own HTTP API: `--manifests` image
manifests (tagged, spread over `--repositories` repositories), each naming a config blob and
six or seven small layers, plus blobs that no manifest names, a quarter of all blobs by
default. Then each collector runs to completion on that store with nothing else running,
and the wall time, CPU time and peak RSS of its process are measured (`wait4`).

Distribution 2.8.2's collector is offline (the registry must be stopped or read-only), ours
runs beside live traffic; here both run alone so that the numbers compare the work itself.
Ours runs with `-grace 0s`, since everything was pushed moments before.

On the filesystem the store is pushed once and copied before every rep, so each rep collects
the same store; reps alternate between the two collectors. On moto S3 (`--parts s3`) a bucket
cannot be copied cheaply: each collector runs once, on its own bucket, after its own push.

    .venv/bin/python bench/gcbench.py                     # filesystem, 20,000 blobs
    .venv/bin/python bench/gcbench.py --parts s3          # moto S3 + Redis
    .venv/bin/python bench/gcbench.py --blobs 2000 --manifests 200 --reps 1   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import scaled
import servers
from rawhttp import Connection, target_of, with_query
from report import grid

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
BLOB_BYTES = 2048  # small: a collector's cost is per object, not per byte
PUSHERS = 8  # concurrent connections while filling a store
MOTO_DEADLINE = """\
apiVersion: simple-registry.dev/v1
kind: Configuration
metadata: {name: bench-moto-deadline}
spec:
  storage:
    s3: {requestTimeoutSeconds: 600}
"""
TIME = "/usr/bin/time"  # GNU time (Debian package time)


@dataclass
class Layout:
    """What to push: which blobs each manifest names and which blobs nothing names."""

    repositories: int
    manifests: int
    blobs: int
    unreferenced_share: float

    @property
    def unreferenced(self) -> int:
        return round(self.blobs * self.unreferenced_share)

    def plan(self) -> Iterator[tuple[str, str, list[int]]]:
        """(repository, tag, blob numbers) per manifest: the first blob is the config."""
        referenced = self.blobs - self.unreferenced
        per, extra = divmod(referenced, self.manifests)
        next_blob = 0
        for n in range(self.manifests):
            count = per + (1 if n < extra else 0)
            yield self.repository(n), f"t{n}", list(range(next_blob, next_blob + count))
            next_blob += count

    def repository(self, n: int) -> str:
        # Every tenth repository is nested under another one: `bench/r3` and `bench/r3/sub`.
        r = n % self.repositories
        return f"bench/r{r // 10 * 10}/sub{r}" if r % 10 == 9 else f"bench/r{r}"


def blob_bytes(n: int, seed: int) -> bytes:
    """A distinct, reproducible body for blob number `n`."""
    rng = random.Random(seed * 1_000_003 + n)
    return rng.randbytes(BLOB_BYTES)


def digest_of(data: bytes) -> str:
    return "sha256:" + sha256(data).hexdigest()


def push_blob(conn: Connection, repository: str, data: bytes) -> str:
    digest = digest_of(data)
    started = conn.request("POST", f"/v2/{repository}/blobs/uploads/", body=b"", expect=[202])
    target = with_query(target_of(started.headers["location"]), "digest", digest)
    headers = {"Content-Type": "application/octet-stream"}
    conn.request("PUT", target, headers=headers, body=data, expect=[201])
    return digest


def push_manifest(
    conn: Connection, repository: str, tag: str, blobs: list[tuple[str, int]]
) -> None:
    (config, config_size), *layers = blobs
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": config_size},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in layers],
    }
    body = json.dumps(manifest).encode()
    headers = {"Content-Type": OCI_MANIFEST}
    conn.request(
        "PUT", f"/v2/{repository}/manifests/{tag}", headers=headers, body=body, expect=[201]
    )


def fill(server: servers.Server, layout: Layout, seed: int) -> float:
    """Push the whole layout through `PUSHERS` connections; returns the seconds it took."""
    local = threading.local()
    connections: list[Connection] = []
    lock = threading.Lock()

    def conn() -> Connection:
        if not hasattr(local, "conn"):
            local.conn = Connection("127.0.0.1", server.port, server.auth)
            with lock:
                connections.append(local.conn)
        made: Connection = local.conn
        return made

    def image(item: tuple[str, str, list[int]]) -> None:
        repository, tag, numbers = item
        pushed = []
        for n in numbers:
            data = blob_bytes(n, seed)
            pushed.append((push_blob(conn(), repository, data), len(data)))
        push_manifest(conn(), repository, tag, pushed)

    def stray(n: int) -> None:
        push_blob(conn(), layout.repository(n), blob_bytes(n, seed))

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(PUSHERS) as pool:
            list(pool.map(image, layout.plan()))
            first = layout.blobs - layout.unreferenced
            list(pool.map(stray, range(first, layout.blobs)))
    finally:
        for c in connections:
            c.close()
    return time.monotonic() - started


@dataclass
class Run:
    """One collection: wall and CPU seconds, peak RSS, and what it left behind."""

    seconds: float
    cpu: float
    peak_mib: float
    blobs_left: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def measured(args: list[str], env: dict[str, str], log: Path) -> tuple[Run, str]:
    """Run a collector to completion under GNU time, which gives its CPU time and peak RSS.

    Not `wait4` from here: Linux carries the peak RSS of the forking process (this one,
    tens of MiB) into the child's across `exec`, so a small collector would read as large as
    the bench. GNU time is a small C program, so the child it forks starts from almost none.
    """
    usage_file = log.with_suffix(".usage")
    timed = [TIME, "-f", "%e %U %S %M", "-o", str(usage_file), *args]
    with log.open("wb") as err:
        started = time.monotonic()
        finished = subprocess.run(timed, stdout=subprocess.PIPE, stderr=err, env=env)
        seconds = time.monotonic() - started
    if finished.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(args[:3])} … exited {finished.returncode}:\n{tail}")
    _, user, system, peak_kib = usage_file.read_text().split()[-4:]
    run = Run(seconds, float(user) + float(system), int(peak_kib) / 1024)
    return run, finished.stdout.decode()


def count_files(root: Path, name: str | None = None) -> int:
    return sum(1 for _, _, files in os.walk(root) for f in files if name is None or f == name)


def ours_gc(python: str, extra: list[str], env: dict[str, str], log: Path) -> Run:
    args = [python, "-m", "registry", "gc", *extra, "-grace", "0s", "-json"]
    run, out = measured(args, env, log)
    report = json.loads(out)
    run.detail = {
        "blobs_deleted": report["blobs"]["deleted"],
        "manifests_marked": report["manifests_marked"],
        "digests_marked": report["digests_marked"],
    }
    return run


def distribution_gc(binary: str, config: Path, log: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    run, _ = measured([binary, "garbage-collect", str(config)], env, log)
    return run


def ours_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SIMPLE_REGISTRY_")}


def quiet() -> None:
    busy = servers.wait_for_quiet()
    if busy >= 0.25:
        print(f"  (the machine stayed busy: {busy:.2f} other cores in use)", file=sys.stderr)


def filesystem(args: argparse.Namespace, layout: Layout, work: Path) -> dict[str, Any]:
    """Push once into each registry (or reuse `--stores`), then collect copies per rep."""
    if args.stores:
        work = Path(args.stores)
        work.mkdir(parents=True, exist_ok=True)
    binary = shutil.which(args.distribution) if not args.skip_distribution else None
    if (work / "ours-filled").exists():
        print(f"reusing the filled stores in {work}", file=sys.stderr)
    else:
        fill_both(args, layout, work, binary)
    if binary and not (work / "dist-filled").exists():
        binary = None
    return collect_copies(args, layout, work, binary)


def fill_both(args: argparse.Namespace, layout: Layout, work: Path, binary: str | None) -> None:
    """Fill one store per registry through its HTTP API, then move each aside.

    Our coordinator keys its records by the store's path (a store moved elsewhere starts a
    new history, and waits a grace window before deleting anything): so the filled stores
    are moved aside, and each rep copies them back to the paths they were filled at.
    """
    ours_store = work / "ours-store"
    ours = servers.start_ours(args.python, ours_store, 1)
    try:
        print(f"filling our store: {fill(ours, layout, args.seed):.0f}s", file=sys.stderr)
    finally:
        ours.process.terminate()
        ours.process.wait(timeout=60)
    dist_store = work / "dist-store"
    if binary:
        dist = servers.start_distribution(binary, dist_store)
        try:
            print(
                f"filling Distribution's store: {fill(dist, layout, args.seed):.0f}s",
                file=sys.stderr,
            )
        finally:
            dist.process.terminate()
            dist.process.wait(timeout=60)
        dist_store.rename(work / "dist-filled")
    ours_store.rename(work / "ours-filled")


def collect_copies(
    args: argparse.Namespace, layout: Layout, work: Path, binary: str | None
) -> dict[str, Any]:
    """Collect a fresh copy of each filled store per rep, alternating the collectors."""
    results: dict[str, Any] = {"ours": [], "distribution": []}
    pristine = {"ours": work / "ours-filled", "distribution": work / "dist-filled"}
    live = {"ours": work / "ours-store", "distribution": work / "dist-store"}
    expected_left = layout.blobs - layout.unreferenced + layout.manifests
    for rep in range(args.reps):
        order = ["ours", "distribution"] if rep % 2 == 0 else ["distribution", "ours"]
        for who in order:
            if who == "distribution" and not binary:
                continue
            store = live[who]
            shutil.rmtree(store, ignore_errors=True)
            shutil.copytree(pristine[who], store, symlinks=True)
            os.sync()
            quiet()
            if who == "ours":
                run = ours_gc(args.python, ["-datadir", str(store)], ours_env(), work / "gc.log")
                run.blobs_left = count_files(store / "blobs")
            else:
                assert binary is not None
                run = distribution_gc(binary, store / "config.yml", work / "dist-gc.log")
                run.blobs_left = count_files(store / "storage/docker/registry/v2/blobs", "data")
            print(
                f"  rep {rep + 1} {who}: {run.seconds:.2f}s, {run.peak_mib:.0f} MiB, "
                f"{run.blobs_left} blobs left (expected {expected_left})",
                file=sys.stderr,
            )
            results[who].append(asdict(run))
            shutil.rmtree(store, ignore_errors=True)
    return results


def s3(args: argparse.Namespace, layout: Layout, work: Path) -> dict[str, Any]:
    """One push and one collection per registry, each on its own moto bucket."""
    results: dict[str, Any] = {"ours": [], "distribution": []}
    with scaled.Moto(args.python, work / "moto") as moto, scaled.Redis(work / "redis") as redis:
        moto.create_bucket("ours")
        flags = scaled.ours_flags(moto, "ours", redis)
        # moto filters every key of the bucket for each ListObjectsV2 page (S3 does not), so
        # with tens of thousands of objects a page can take longer than the default deadline
        # of an S3 call (10 s) while the collector lists eight prefixes at once.
        (work / "cfg").mkdir(parents=True, exist_ok=True)
        (work / "cfg" / "deadline.yaml").write_text(MOTO_DEADLINE)
        flags += ["-cfgdir", str(work / "cfg")]
        ours = servers.start_ours(
            args.python, work / "ours-s3", 1, extra=flags, env_extra=scaled.S3_ENV
        )
        try:
            print(f"filling our bucket: {fill(ours, layout, args.seed):.0f}s", file=sys.stderr)
        finally:
            ours.process.terminate()
            ours.process.wait(timeout=60)
        env = {k: v for k, v in ours_env().items() if not k.startswith("AWS_")} | scaled.S3_ENV
        quiet()
        run = ours_gc(
            args.python, ["-datadir", str(work / "ours-s3"), *flags], env, work / "gc-s3.log"
        )
        print(
            f"  ours on S3: {run.seconds:.2f}s, {run.peak_mib:.0f} MiB, "
            f"{run.detail['blobs_deleted']} blobs deleted",
            file=sys.stderr,
        )
        results["ours"].append(asdict(run))
        binary = shutil.which(args.distribution) if not args.skip_distribution else None
        if binary:
            moto.create_bucket("distribution")
            backend = scaled.distribution_backend(moto, "distribution")
            dist = servers.start_distribution(binary, work / "dist-s3", backend=backend)
            try:
                print(
                    f"filling Distribution's bucket: {fill(dist, layout, args.seed):.0f}s",
                    file=sys.stderr,
                )
            finally:
                dist.process.terminate()
                dist.process.wait(timeout=60)
            quiet()
            run = distribution_gc(binary, work / "dist-s3" / "config.yml", work / "dist-gc-s3.log")
            print(
                f"  Distribution on S3: {run.seconds:.2f}s, {run.peak_mib:.0f} MiB", file=sys.stderr
            )
            results["distribution"].append(asdict(run))
    return results


def table(part: str, results: dict[str, Any]) -> str:
    rows = [(part, "wall s", "CPU s", "peak RSS MiB", "blobs left")]
    medians: dict[str, float] = {}
    for who in ("ours", "distribution"):
        runs = results[who]
        if not runs:
            continue
        seconds = statistics.median(r["seconds"] for r in runs)
        medians[who] = seconds
        rows.append(
            (
                who,
                f"{seconds:.2f}",
                f"{statistics.median(r['cpu'] for r in runs):.2f}",
                f"{max(r['peak_mib'] for r in runs):.0f}",
                str(runs[-1]["blobs_left"] if runs[-1]["blobs_left"] is not None else "-"),
            )
        )
    text = grid(rows)
    if len(medians) == 2:
        speed = medians["distribution"] / medians["ours"]
        verdict = "met" if speed >= 1 else "MISSED"
        text += f"\nspeed ours vs Distribution: {speed:.2f}x (target >= 1x: {verdict})"
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="fs", help="fs, s3 or fs,s3")
    parser.add_argument("--blobs", type=int, default=20_000)
    parser.add_argument("--manifests", type=int, default=2_000)
    parser.add_argument("--repositories", type=int, default=100)
    parser.add_argument(
        "--unreferenced", type=float, default=0.25, help="share of the blobs that no manifest names"
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--distribution", default=servers.DISTRIBUTION_BINARY)
    parser.add_argument("--skip-distribution", action="store_true")
    parser.add_argument("--workdir", default=None, help="where the stores go (default: /tmp)")
    parser.add_argument(
        "--stores",
        default=None,
        help="keep the filled filesystem stores here and reuse them on the next run",
    )
    parser.add_argument("--json", default=None, help="write every run's numbers here")
    args = parser.parse_args(argv)
    if (
        args.manifests < 1
        or args.blobs - round(args.blobs * args.unreferenced) < 2 * args.manifests
    ):
        parser.error("each manifest needs at least two referenced blobs")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    layout = Layout(args.repositories, args.manifests, args.blobs, args.unreferenced)
    print(
        f"{layout.manifests} manifests in {layout.repositories} repositories, "
        f"{layout.blobs} blobs of which {layout.unreferenced} unreferenced",
        file=sys.stderr,
    )
    everything: dict[str, Any] = {"layout": asdict(layout)}
    with tempfile.TemporaryDirectory(prefix="gc-bench-", dir=args.workdir) as folder:
        work = Path(folder)
        for part in args.parts.split(","):
            run = {"fs": filesystem, "s3": s3}[part]
            everything[part] = run(args, layout, work / part)
            print(table(part, everything[part]))
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
