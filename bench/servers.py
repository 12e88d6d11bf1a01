"""Start the two registries and watch their processes (CPU time and peak RSS) through /proc."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

DISTRIBUTION_BINARY = "/usr/bin/docker-registry"
ADMIN = "admin"
PASSWORD = "bench-Pa55word"
_LISTENING = re.compile(r"listening on (https?)://([^\s:]+):(\d+)")
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A running registry: its root process, port and (optional) Basic credentials."""

    label: str
    process: subprocess.Popen[bytes]
    port: int
    datadir: Path
    auth: str | None = None
    log: list[str] = field(default_factory=list)

    def tree(self) -> list[int]:
        return process_tree(self.process.pid)

    def workers(self) -> list[int]:
        """The processes that serve requests: the children when there are any, else the root."""
        children = [p for p in self.tree() if p != self.process.pid and _is_worker(p)]
        return children or [self.process.pid]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        shutil.rmtree(self.datadir, ignore_errors=True)


@dataclass
class Cluster:
    """Server processes that act as one registry (ours on shared S3 and Redis): the bench
    spreads requests over `members`, and measures and profiles all of them together."""

    label: str
    members: list[Server]

    @property
    def port(self) -> int:
        return self.members[0].port

    @property
    def ports(self) -> list[int]:
        return [m.port for m in self.members]

    @property
    def auth(self) -> str | None:
        return self.members[0].auth

    def tree(self) -> list[int]:
        return [pid for m in self.members for pid in m.tree()]

    def workers(self) -> list[int]:
        return [pid for m in self.members for pid in m.workers()]

    def stop(self) -> None:
        for member in self.members:
            member.stop()


AnyServer = Server | Cluster


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _drain(stream: object, log: list[str], found: list[int], ready: threading.Event) -> None:
    for raw in stream:  # type: ignore[attr-defined]
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if len(log) < 2000:
            log.append(line)
        match = _LISTENING.search(line)
        if match and not found:
            found.append(int(match.group(3)))
            ready.set()
    ready.set()


def start_ours(
    python: str,
    datadir: Path,
    workers: int,
    label: str = "ours",
    extra: list[str] | None = None,
    env_extra: dict[str, str] | None = None,
) -> Server:
    """`python -m registry serve` on a free port; its "listening on" line gives the port.

    `extra` adds flags (the S3 and Redis ones) and `env_extra` variables (S3 credentials).
    """
    datadir.mkdir(parents=True, exist_ok=True)
    args = [python, "-m", "registry", "serve", "-addr", "127.0.0.1:0", "-datadir", str(datadir)]
    args += ["-adminpwd", PASSWORD, "-workers", str(workers), *(extra or [])]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLE_REGISTRY_")}
    if env_extra is not None:  # S3 mode: only the given AWS settings, none of the host's
        env = {k: v for k, v in env.items() if not k.startswith("AWS_")} | env_extra
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True
    )
    log: list[str] = []
    found: list[int] = []
    ready = threading.Event()
    threading.Thread(target=_drain, args=(process.stderr, log, found, ready), daemon=True).start()
    if not ready.wait(timeout=60) or not found:
        process.kill()
        process.wait(timeout=30)
        raise RuntimeError(f"our registry did not start: {args}\n" + "".join(log))
    server = Server(label, process, found[0], datadir, basic(ADMIN, PASSWORD), log)
    _wait_for_workers(server, workers)
    return server


def _wait_for_workers(server: Server, workers: int) -> None:
    """With -workers N the children are spawned after the socket listens: let them boot."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if workers == 1 or len(server.workers()) >= workers:
            break
        time.sleep(0.05)
    _wait_ready(server.port, server.auth)


def _wait_ready(port: int, auth: str | None) -> None:
    """Poll `GET /v2/` (bounded: 60 s) until a worker answers 200."""
    deadline = time.monotonic() + 60
    request = f"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    if auth:
        request += f"Authorization: {auth}\r\n"
    request += "\r\n"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(request.encode())
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"registry on port {port} never answered GET /v2/ with 200")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


DISTRIBUTION_CONFIG = """version: 0.1
log:
  level: error
  accesslog:
    disabled: {no_access_log}
storage:
  cache:
    blobdescriptor: inmemory
{backend}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: bench-shared-secret
  headers:
    X-Content-Type-Options: [nosniff]
{extra}"""


def start_distribution(
    binary: str,
    datadir: Path,
    label: str = "distribution",
    backend: str | None = None,
    extra: str = "",
    access_log: Path | None = None,
) -> Server:
    """CNCF Distribution with filesystem storage, no auth, deletes enabled, quiet logs.

    `backend` replaces the filesystem section of `storage` (YAML indented by two spaces, e.g.
    an `s3` section plus `redirect`); the environment's AWS_* variables are then not passed on.
    `extra` adds top-level sections (a `proxy` one). With `access_log`, Distribution writes
    its access log (one line per request, with the bytes of the body it sent; it goes to
    stdout) to that file.
    """
    datadir.mkdir(parents=True, exist_ok=True)
    if backend is None:
        backend = f"  filesystem:\n    rootdirectory: {datadir / 'storage'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    last: Exception | None = None
    for _ in range(5):  # a free port can be taken between the probe and the bind: retry
        port = free_port()
        config = datadir / "config.yml"
        text = DISTRIBUTION_CONFIG.format(
            backend=backend, port=port, extra=extra, no_access_log=str(access_log is None).lower()
        )
        config.write_text(text)
        stdout = access_log.open("ab") if access_log is not None else subprocess.DEVNULL
        process = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        if not isinstance(stdout, int):
            stdout.close()  # the child holds its own copy
        log: list[str] = []
        threading.Thread(
            target=_drain, args=(process.stderr, log, [], threading.Event()), daemon=True
        ).start()
        try:
            _wait_ready(port, None)
        except RuntimeError as exc:
            last = exc
            process.kill()
            process.wait(timeout=30)
            continue
        return Server(label, process, port, datadir, None, log)
    raise RuntimeError(f"Distribution did not start: {last}")


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc/<pid>/task/<tid>/children."""
    seen: list[int] = []
    todo = [root]
    while todo and len(seen) < 1000:
        pid = todo.pop()
        if pid in seen or not Path(f"/proc/{pid}").exists():
            continue
        seen.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return seen


def _is_worker(pid: int) -> bool:
    """multiprocessing's resource tracker is a child too, but it serves nothing."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" not in cmdline


def cpu_seconds(pid: int) -> float:
    """User + system CPU of all threads of `pid` so far."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of all threads of `pid` so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak(pids: list[int]) -> bool:
    """Reset VmHWM to the current RSS (`echo 5 > clear_refs`); False where not allowed."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


@dataclass
class Usage:
    """CPU seconds and peak RSS (KiB) per process over one phase."""

    cpu: dict[int, float]
    peak_kib: dict[int, int]

    @property
    def total_cpu(self) -> float:
        return sum(self.cpu.values())

    @property
    def max_peak_mib(self) -> float:
        return max(self.peak_kib.values(), default=0) / 1024

    @property
    def sum_peak_mib(self) -> float:
        return sum(self.peak_kib.values()) / 1024


class Meter:
    """Measures one phase of a server: CPU used by each process and each one's peak RSS."""

    def __init__(self, server: AnyServer) -> None:
        self.server = server
        self.pids = server.tree()
        self.peak_reset = reset_peak(self.pids)
        self._cpu0 = {pid: cpu_seconds(pid) for pid in self.pids}

    def read(self, pids: list[int] | None = None) -> Usage:
        chosen = pids if pids is not None else self.pids
        cpu = {p: cpu_seconds(p) - self._cpu0.get(p, 0.0) for p in chosen}
        peak = {p: status_kib(p, "VmHWM") for p in chosen}
        return Usage(cpu, peak)


def wait_for_quiet(limit: float = 0.25, timeout: float = 120.0) -> float:
    """Wait (at most `timeout` s) until other processes used under `limit` cores over 1 s.

    Returns the cores busy in the last window: another job on the machine (a build, someone
    else's benchmark) would otherwise be measured as a slow registry.
    """
    deadline = time.monotonic() + timeout
    mine = {os.getpid()}
    while True:
        before, t0 = userland_cpu(), time.monotonic()
        time.sleep(1.0)
        busy = foreign_cpu(before, userland_cpu(), mine) / (time.monotonic() - t0)
        if busy < limit or time.monotonic() >= deadline:
            return busy


def _stat(pid: str) -> tuple[int, float] | None:
    """(flags, CPU seconds) of one process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[6]), (int(fields[11]) + int(fields[12])) / _TICK


def userland_cpu() -> dict[int, float]:
    """CPU seconds so far of every user-space process (kernel threads left out)."""
    out: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _stat(entry)
            if found is not None and not found[0] & 0x00200000:  # PF_KTHREAD
                out[int(entry)] = found[1]
    return out


def foreign_cpu(before: dict[int, float], after: dict[int, float], ours: set[int]) -> float:
    """CPU seconds that processes other than `ours` used between two `userland_cpu()` calls."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items() if pid not in ours)
