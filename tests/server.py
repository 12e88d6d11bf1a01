"""Start the real server (`python -m registry serve`) on a free port for a test.

Readiness is the server's own "listening on" line: the socket is already in listen state when
it is printed, so no polling or sleeping is needed. Server output is kept and shown when a
test fails to start it.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ADMIN = "admin"
PASSWORD = "s3cret-Pa55"
# The line is JSON when stderr is not a terminal: the URL ends at a quote or a space.
_LISTENING = re.compile(r"listening on (https?)://([^\s\"]+)")
_METRICS = re.compile(r"metrics on (http://[^\s\"]+)")


def listening_url(line: str) -> str | None:
    """The URL of a "listening on" line, in either log format."""
    match = _LISTENING.search(line)
    return f"{match.group(1)}://{match.group(2)}" if match else None


@dataclass
class RunningRegistry:
    process: subprocess.Popen[str]
    url: str
    datadir: Path
    username: str | None = ADMIN
    password: str | None = PASSWORD
    output: list[str] = field(default_factory=list)
    # `http://HOST:PORT/metrics` when started with -metricsaddr.
    metrics_url: str | None = None
    # Set once all of the server's output has been read into `output`.
    drained: threading.Event = field(default_factory=threading.Event)

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the form registry clients put in image references."""
        return self.url.split("://", 1)[1]

    def client(self, *, auth: bool = True, **kwargs: object) -> httpx.Client:
        credentials = (self.username, self.password) if auth and self.username else None
        kwargs.setdefault("timeout", 60)
        return httpx.Client(
            base_url=self.url,
            auth=credentials,  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.drained.wait(timeout=30)  # then `output` holds every line the server wrote
        return self.process.returncode


def basic_header(server: RunningRegistry) -> str:
    """The `Authorization` value for raw-socket tests."""
    token = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    return f"Basic {token}"


def start(
    datadir: Path,
    *extra: str,
    password: str | None = PASSWORD,
    env: dict[str, str] | None = None,
) -> RunningRegistry:
    args = [
        sys.executable,
        "-m",
        "registry",
        "serve",
        "-addr",
        "127.0.0.1:0",
        "-datadir",
        str(datadir),
        *extra,
    ]
    if password is not None:
        args += ["-adminpwd", password]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLE_REGISTRY_")}
    environment.update(env or {})
    process = subprocess.Popen(
        args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=environment
    )
    assert process.stderr is not None
    output: list[str] = []
    ready = threading.Event()
    found: list[str] = []
    metrics: list[str] = []
    drained = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            output.append(line)
            metrics_match = _METRICS.search(line)
            if metrics_match and not metrics:
                metrics.append(metrics_match.group(1))  # announced before "listening on"
            url = listening_url(line)
            if url and not found:
                found.append(url)
                ready.set()
        ready.set()  # EOF: the process ended before it listened
        drained.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(timeout=60) or not found:
        process.kill()
        process.wait()
        raise RuntimeError("registry did not start:\n" + "".join(output))
    return RunningRegistry(
        process,
        found[0],
        datadir,
        username=ADMIN if password else None,
        password=password,
        output=output,
        metrics_url=metrics[0] if metrics else None,
        drained=drained,
    )
