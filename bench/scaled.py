"""The scaled mode's surroundings: moto's S3 server (counting requests) and a Redis server, both
registries configured on them, the moto-alone baseline and the S3-calls-per-operation table.

Only loopback, only processes this module started: `Moto` and `Redis` are context managers
that stop their process on the way out.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import loadgen
import servers
from rawhttp import Connection, target_of
from report import grid

READY_TRIES = 400  # x 25 ms: a server that is not up after ~10 s is broken
REGION = "us-east-1"
ACCESS_KEY = "bench-access-key"
SECRET_KEY = "bench-secret-key"
# Our registry gets these and no other AWS_* variable of the host.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_EC2_METADATA_DISABLED": "true",
}
MOTOCOUNT = Path(__file__).with_name("motocount.py")

Tallies = dict[str, dict[str, list[float]]]  # bucket -> S3 operation -> [n, in, out, seconds]


class _Process:
    """A child process with its output in a log file; stopped on exit, killed if it hangs."""

    name = "process"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = servers.free_port()
        self.log = folder / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _spawn(self, args: list[str], env: dict[str, str] | None = None) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        for _ in range(READY_TRIES):
            if self.process.poll() is not None:
                break
            try:
                if self._ready():
                    return
            except OSError:
                pass
            time.sleep(0.025)
        tail = self.log.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"{self.name} on port {self.port} did not come up:\n{tail}")

    def _ready(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Moto(_Process):
    """moto's S3 server in a process of its own, counting requests (`motocount.py`)."""

    name = "moto"

    def __init__(self, python: str, folder: Path) -> None:
        super().__init__(folder)
        self.python = python

    def __enter__(self) -> Moto:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["TMPDIR"] = str(self.folder)  # objects over ~5 MiB spill to temporary files
        self._spawn([self.python, str(MOTOCOUNT), "--port", str(self.port)], env)
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _ready(self) -> bool:
        return self._get("/_bench/counts")[0] == 200

    def counts(self) -> Tallies:
        status, body = self._get("/_bench/counts")
        if status != 200:
            raise RuntimeError(f"moto's counters answered {status}")
        tallies: Tallies = json.loads(body)
        return tallies

    def create_bucket(self, bucket: str) -> None:
        """moto takes an unsigned CreateBucket (us-east-1: no location constraint)."""
        conn = Connection("127.0.0.1", self.port)
        try:
            conn.request("PUT", f"/{bucket}", body=b"", expect=[200])
        finally:
            conn.close()


class Redis(_Process):
    """A fresh redis-server on loopback, without persistence."""

    name = "redis"

    def __enter__(self) -> Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.folder)]
        self._spawn(args)
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")


REDIRECT_CONFIGURATION = """\
apiVersion: simple-registry.dev/v1
kind: Configuration
metadata: {name: bench-redirect}
spec:
  storage:
    s3: {redirect: true}
"""


def ours_flags(
    moto: Moto, bucket: str, redis: Redis, redirect_dir: Path | None = None
) -> list[str]:
    """With `redirect_dir`, a Configuration written there turns on redirects of blob GETs."""
    flags = [
        "-s3bucket",
        bucket,
        "-s3endpoint",
        moto.endpoint,
        "-s3region",
        REGION,
        "-s3pathstyle",
        "-redisurl",
        redis.url,
    ]
    if redirect_dir is not None:
        redirect_dir.mkdir(parents=True, exist_ok=True)
        (redirect_dir / "redirect.yaml").write_text(REDIRECT_CONFIGURATION)
        flags += ["-cfgdir", str(redirect_dir)]
    return flags


def distribution_backend(moto: Moto, bucket: str, redirect: bool = False) -> str:
    """Distribution 2.8.2's S3 driver on moto: path-style addressing follows from
    `regionendpoint`; `redirect.disable` makes it serve blobs itself instead of redirecting
    to presigned URLs (its default), unless `redirect`."""
    return (
        "  s3:\n"
        f"    region: {REGION}\n"
        f"    regionendpoint: {moto.endpoint}\n"
        f"    bucket: {bucket}\n"
        f"    accesskey: {ACCESS_KEY}\n"
        f"    secretkey: {SECRET_KEY}\n"
        "    secure: false\n"
        "    v4auth: true\n"
        "  redirect:\n"
        f"    disable: {'false' if redirect else 'true'}"
    )


# -- the S3 calls of each registry operation ------------------------------------------------


@dataclass
class Calls:
    """The S3 requests of `operations` runs of one registry operation, summed."""

    operations: int = 0
    wall_seconds: float = 0.0
    by_op: dict[str, list[float]] = field(default_factory=dict)  # [n, in, out, seconds]

    def add(
        self, before: Tallies, after: Tallies, bucket: str, wall: float, operations: int = 1
    ) -> None:
        old, new = before.get(bucket, {}), after.get(bucket, {})
        for op, row in new.items():
            base = old.get(op, [0, 0, 0, 0.0])
            delta = [a - b for a, b in zip(row, base, strict=True)]
            if delta[0]:
                total = self.by_op.setdefault(op, [0, 0, 0, 0.0])
                self.by_op[op] = [t + d for t, d in zip(total, delta, strict=True)]
        self.operations += operations
        self.wall_seconds += wall

    def per_operation(self) -> dict[str, Any]:
        n = max(self.operations, 1)
        ops = sorted(self.by_op.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return {
            "operations": self.operations,
            "requests": sum(r[0] for r in self.by_op.values()) / n,
            "by_op": {op: r[0] / n for op, r in ops},
            "by_op_seconds": {op: r[3] / n for op, r in ops},
            "mb_to_s3": sum(r[1] for r in self.by_op.values()) / n / 1e6,
            "mb_from_s3": sum(r[2] for r in self.by_op.values()) / n / 1e6,
            "moto_seconds": sum(r[3] for r in self.by_op.values()) / n,
            "wall_seconds": self.wall_seconds / n,
        }


class Census:
    """Counts the S3 requests of registry operations: `with census.count(kind, op, bucket)`."""

    SETTLE = 0.3  # seconds for requests a registry sends after answering, before counting

    def __init__(self, moto: Moto) -> None:
        self.moto = moto
        self.calls: dict[str, dict[str, Calls]] = {}

    def before(self) -> Tallies:
        return self.moto.counts()

    def after(
        self,
        kind: str,
        operation: str,
        bucket: str,
        before: Tallies,
        wall: float,
        operations: int = 1,
    ) -> None:
        time.sleep(self.SETTLE)
        calls = self.calls.setdefault(kind, {}).setdefault(operation, Calls())
        calls.add(before, self.moto.counts(), bucket, wall, operations)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            kind: {op: c.per_operation() for op, c in ops.items()}
            for kind, ops in self.calls.items()
        }


def render_calls(census: dict[str, dict[str, Any]]) -> str:
    rows = [
        (
            "operation",
            "registry",
            "S3 requests",
            "by S3 operation (per registry operation)",
            "MB to / from S3",
            "moto busy s (summed)",
            "wall s",
        )
    ]
    operations = list(dict.fromkeys(op for ops in census.values() for op in ops))
    for op in operations:
        for kind, ops in census.items():
            c = ops.get(op)
            if c is None:
                continue
            rows.append(
                (
                    op,
                    kind,
                    f"{c['requests']:.1f}",
                    _by_op(c["by_op"], c.get("by_op_seconds", {})),
                    f"{c['mb_to_s3']:.1f} / {c['mb_from_s3']:.1f}",
                    f"{c['moto_seconds']:.4f}"
                    if c["moto_seconds"] < 0.1
                    else f"{c['moto_seconds']:.2f}",
                    f"{c['wall_seconds']:.4f}"
                    if c["wall_seconds"] < 0.1
                    else f"{c['wall_seconds']:.2f}",
                )
            )
    return grid(rows)


def _by_op(counts: dict[str, float], seconds: dict[str, float]) -> str:
    """`UploadPart 16 (1.20 s)`: requests per registry operation, and moto's seconds on them
    where those add up to 50 ms or more."""
    cells = []
    for name, n in counts.items():
        busy = seconds.get(name, 0.0)
        cells.append(f"{name} {round(n, 2):g}" + (f" ({busy:.2f} s)" if busy >= 0.05 else ""))
    return ", ".join(cells)


# -- moto alone -----------------------------------------------------------------------------


@dataclass
class BaselineRow:
    what: str
    value: float
    unit: str
    samples: list[float]
    moto_cores: float


def baseline(
    moto: Moto, bucket: str, data: bytes | bytearray, reps: int, duration: float, connections: int
) -> list[BaselineRow]:
    """What moto alone takes from a Python S3 client (boto3, one request at a time, as a
    registry's S3 client talks to it) and from raw HTTP on presigned URLs (the client neither
    signs nor hashes: moto's own ceiling)."""
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {}
    if "request_checksum_calculation" in Config.OPTION_DEFAULTS:
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **options),
    )
    body = bytes(data)
    size = len(body)
    key = "baseline/blob"
    rows: list[BaselineRow] = []

    def measured(what: str, unit: str, job: Callable[[], float], times: int) -> None:
        """`job` does its work and returns how much (bytes in MB, or requests)."""
        cpu0 = servers.cpu_seconds(moto.pid)
        t0 = time.perf_counter()
        samples = []
        for _ in range(times):
            started = time.perf_counter()
            amount = job()
            samples.append(amount / (time.perf_counter() - started))
        cores = (servers.cpu_seconds(moto.pid) - cpu0) / (time.perf_counter() - t0)
        rows.append(
            BaselineRow(
                what,
                round(statistics.median(samples), 1),
                unit,
                [round(x, 1) for x in samples],
                round(cores, 2),
            )
        )

    def put_boto3() -> float:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return size / 1e6

    def presigned(method: str) -> str:
        """A request target signed in its query: the raw client need not sign or hash."""
        url: str = s3.generate_presigned_url(
            method, Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600
        )
        return target_of(url)

    def put_raw() -> float:
        raw.request("PUT", presigned("put_object"), body=body, expect=[200])
        return size / 1e6

    def get_boto3() -> float:
        return len(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) / 1e6

    def heads() -> float:
        n = 0
        deadline = time.perf_counter() + min(duration, 5.0)
        while time.perf_counter() < deadline:
            s3.head_object(Bucket=bucket, Key=key)
            n += 1
        return n

    mib = size // 2**20
    raw = Connection("127.0.0.1", moto.port)
    measured(f"put_object {mib} MiB (boto3)", "MB/s", put_boto3, reps)
    measured(f"put_object {mib} MiB (raw HTTP, presigned)", "MB/s", put_raw, reps)
    raw.close()
    measured(f"get_object {mib} MiB (boto3)", "MB/s", get_boto3, reps)
    measured("head_object, 1 client (boto3)", "req/s", heads, 1)
    cpu0 = servers.cpu_seconds(moto.pid)
    load = loadgen.run_python(
        "127.0.0.1", moto.port, presigned("head_object"), "HEAD", {}, connections, duration
    )
    rows.append(
        BaselineRow(
            f"head_object, {connections} connections (raw HTTP, presigned)",
            round(load.rps, 1),
            "req/s",
            [round(load.rps, 1)],
            round((servers.cpu_seconds(moto.pid) - cpu0) / max(load.seconds, 1e-9), 2),
        )
    )
    if load.errors or load.non_2xx:
        print(f"  ! moto HEAD load: {load.errors} errors, {load.non_2xx} non-2xx {load.messages}")
    s3.delete_object(Bucket=bucket, Key=key)
    s3.close()
    return rows


def render_baseline(rows: list[BaselineRow]) -> str:
    table = [("moto alone", "median", "samples", "moto cores")]
    for r in rows:
        samples = ", ".join(f"{s:g}" for s in r.samples) if len(r.samples) > 1 else ""
        table.append((r.what, f"{r.value:,.1f} {r.unit}", samples, f"{r.moto_cores:.2f}"))
    return grid(table)


def baseline_dicts(rows: list[BaselineRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def render_baseline_from(rows: list[dict[str, Any]]) -> str:
    return render_baseline([BaselineRow(**r) for r in rows])
