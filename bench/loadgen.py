"""Many concurrent keep-alive clients sending one request over and over, for a fixed time.

`wrk` (C, epoll) is the default: it costs a fraction of a core at the rates measured here.
The fallback is a lean asyncio client writing raw HTTP/1.1, for machines without wrk; it is
several times more expensive per request, so prefer wrk (see the README's client check).
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

LUA = """wrk.method = "{method}"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


@dataclass
class LoadResult:
    tool: str
    method: str
    connections: int
    requests: int
    seconds: float
    errors: int
    non_2xx: int
    p50_ms: float
    p99_ms: float
    client_cpu: float
    messages: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        return {**asdict(self), "rps": round(self.rps, 1)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    wrk: str,
    url: str,
    method: str,
    headers: dict[str, str],
    connections: int,
    duration: float,
    threads: int = 1,
) -> LoadResult:
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench.lua"
        script.write_text(LUA.format(method=method, headers=lines))
        seconds = max(1, round(duration))
        args = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
        args += ["--timeout", "10s", "-s", str(script), url]
        cpu0 = _children_cpu()
        done = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60)
        cpu = _children_cpu() - cpu0
    found = [ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")]
    if done.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    doc = json.loads(found[0].removeprefix("WRKJSON "))
    errors = doc["connect"] + doc["read"] + doc["write"] + doc["timeout"]
    return LoadResult(
        "wrk",
        method,
        connections,
        doc["requests"],
        doc["duration_us"] / 1e6,
        errors,
        doc["status"],
        doc["p50_us"] / 1000,
        doc["p99_us"] / 1000,
        cpu,
    )


@dataclass
class _Tally:
    latencies: list[float]
    errors: int = 0
    non_2xx: int = 0
    budget: int = 0
    connects: int = 0
    messages: list[str] = field(default_factory=list)


async def _one_client(
    host: str, port: int, request: bytes, head: bool, deadline: float, tally: _Tally
) -> None:
    """Requests one after another on a keep-alive connection, reopened when the server
    answers `Connection: close` (Hypercorn does after 1000 requests by default)."""
    writer: asyncio.StreamWriter | None = None
    try:
        while time.perf_counter() < deadline and tally.budget > 0:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
                tally.connects += 1
            tally.budget -= 1
            started = time.perf_counter()
            writer.write(request)
            raw = await reader.readuntil(b"\r\n\r\n")
            status = int(raw[9:12])
            lower = raw.lower()
            at = lower.find(b"\r\ncontent-length:")
            length = int(lower[at + 17 : lower.find(b"\r\n", at + 2)]) if at >= 0 else 0
            if not head and length:
                await reader.readexactly(length)
            tally.latencies.append(time.perf_counter() - started)
            if not 200 <= status < 400:
                tally.non_2xx += 1
            if b"\r\nconnection: close\r\n" in lower:
                writer.close()
                writer = None
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        tally.errors += 1
        if len(tally.messages) < 5:
            tally.messages.append(f"{exc!r} after {len(tally.latencies)} responses")
    finally:
        if writer is not None:
            writer.close()


def run_python(
    host: str,
    port: int | Sequence[int],
    path: str,
    method: str,
    headers: dict[str, str],
    connections: int,
    duration: float,
    max_requests: int = 5_000_000,
) -> LoadResult:
    """The asyncio fallback, bounded by `duration` seconds and `max_requests` requests.

    With several ports (server processes of one registry), connection i goes to port i mod n.
    """
    ports = [port] if isinstance(port, int) else list(port)
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{p}\r\n{lines}\r\n".encode() for p in ports
    ]
    tally = _Tally([], budget=max_requests)

    async def main() -> float:
        started = time.perf_counter()
        deadline = started + duration
        clients = [
            _one_client(
                host,
                ports[i % len(ports)],
                requests[i % len(ports)],
                method == "HEAD",
                deadline,
                tally,
            )
            for i in range(connections)
        ]
        await asyncio.wait_for(asyncio.gather(*clients), timeout=duration + 30)
        return time.perf_counter() - started

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    try:
        import uvloop

        seconds = uvloop.run(main())
    except ImportError:
        seconds = asyncio.run(main())
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime
    latencies = sorted(tally.latencies)
    n = len(latencies)
    return LoadResult(
        "python",
        method,
        connections,
        n,
        seconds,
        tally.errors,
        tally.non_2xx,
        latencies[n // 2] * 1000 if n else 0.0,
        latencies[min(n - 1, n * 99 // 100)] * 1000 if n else 0.0,
        cpu,
        tally.messages,
    )


def find_wrk() -> str | None:
    return shutil.which("wrk")
