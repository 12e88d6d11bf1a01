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
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # names lowercased; a repeated header keeps its last value
    body: bytes


def raw_request(
    server: RunningRegistry,
    method: str,
    target: str,
    headers: Mapping[str, str | bytes] | None = None,
    body: bytes = b"",
    *,
    auth: bool = True,
) -> RawResponse:
    """One request sent byte for byte on a fresh connection, for what an HTTP client would
    normalise or refuse to send (a `Host` with quotes, a path with `..`). `Host` and (with
    `auth`) the admin's `Authorization` are added unless `headers` give them."""
    parts = urlsplit(server.url)
    fields: dict[str, str | bytes] = {"Host": parts.netloc}
    if auth and server.password is not None:
        fields["Authorization"] = basic_header(server)
    fields.update(headers or {})
    fields.update({"Content-Length": str(len(body)), "Connection": "close"})
    head = f"{method} {target} HTTP/1.1\r\n".encode()
    for name, value in fields.items():
        head += name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
        head += b"\r\n"
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(head + b"\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_part, _, content = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    found = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    return RawResponse(int(lines[0].split(" ", 2)[1]), found, content)
