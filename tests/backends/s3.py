"""A real S3 endpoint for the storage tests: moto's HTTP server in a child process.

The server listens on a free loopback port and counts as started only once it answered an
HTTP request (a bounded number of tries, never a fixed sleep). Its request log goes to a file
in its own directory, shown when it does not come up.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys

import httpx

from tests.backends.process import ServerProcess

# Credentials moto accepts; the tests pass them explicitly so nothing of the host's AWS
# configuration is ever used.
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key-not-a-real-one"
REGION = "us-east-1"


class MotoServer(ServerProcess):
    """One `python -m moto.server`; `stop` then `start` again keeps its port (but not its
    data: moto keeps everything in memory)."""

    what = "moto server"
    ready_tries = 400  # moto imports a lot: ~10 s

    def create_bucket(self, name: str) -> None:
        """Unsigned, as moto allows: a test's own bucket without an S3 client."""
        httpx.put(f"{self.endpoint}/{name}").raise_for_status()

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

    def answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            connection.request("GET", "/moto-api/data.json")
            response = connection.getresponse()
            response.read()
            return response.status == 200
        finally:
            connection.close()
