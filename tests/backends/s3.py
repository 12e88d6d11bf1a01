"""A real S3 endpoint for the storage tests: moto's HTTP server in a child process.

The server listens on a free loopback port and counts as started only once it answered an
HTTP request (a bounded number of tries, never a fixed sleep). Its request log goes to a file
in its own directory, shown when it does not come up.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

READY_TRIES = 400  # x 25 ms between tries: a server that is not up after ~10 s is broken

# Credentials moto accepts; the tests pass them explicitly so nothing of the host's AWS
# configuration is ever used.
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key-not-a-real-one"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """One `python -m moto.server`; `stop` then `start` again keeps its port (but not its
    data: moto keeps everything in memory)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.dir / "moto.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["MOTO_PORT"] = str(self.port)
        with log.open("ab") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self._wait_ready(log)

    def _probe(self) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            connection.request("GET", "/moto-api/data.json")
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def _wait_ready(self, log: Path) -> None:
        """Ask until the server answers; fail with the end of its log if it never does."""
        assert self._proc is not None
        for _ in range(READY_TRIES):
            if self._proc.poll() is not None:
                break
            try:
                if self._probe() == 200:
                    return
            except OSError:
                pass
            time.sleep(0.025)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"moto server on port {self.port} did not come up:\n{tail}")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
