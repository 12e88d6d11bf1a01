"""CNCF Distribution (Debian's `docker-registry`) as the real upstream registry of the tests.

A real registry answers the way the pull-through cache will meet in the wild: its own
`WWW-Authenticate` challenges, its error bodies, its media-type handling. It runs with
filesystem storage in a temporary directory, deletes enabled, and token auth against the
test's token issuer. It listens on 127.0.0.1 port 0; its own "listening on" line (logged once
the socket is bound) gives the port, so there is no probe-then-bind race and no polling.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 60
# Its info log has lines per request: the last ones are what explains a failure.
_KEPT_LINES = 2000

CONFIG = """version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:0
  secret: simple-registry-test-upstream
auth:
  token:
    realm: {realm}
    service: {service}
    issuer: {issuer}
    rootcertbundle: {bundle}
"""


@dataclass
class Distribution:
    process: subprocess.Popen[bytes]
    url: str
    reader: threading.Thread
    log: deque[str] = field(default_factory=lambda: deque(maxlen=_KEPT_LINES))

    def stop(self) -> None:
        """Terminate, then kill if it lingers; safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.reader.join(timeout=10)  # it closes the pipe on the exited process's EOF


def _read_lines(stream: IO[bytes], log: deque[str], port: list[int], seen: threading.Event) -> None:
    """Keep Distribution's output (for failure messages) and note its port once logged;
    the pipe is closed at its end, when the process has exited."""
    with stream:
        _read_into(stream, log, port, seen)
    seen.set()  # end of output: the process died


def _read_into(stream: IO[bytes], log: deque[str], port: list[int], seen: threading.Event) -> None:
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip()
        log.append(line)
        match = _LISTENING.search(line)
        if match and not port:
            port.append(int(match.group(1)))
            seen.set()


def start_distribution(
    binary: str, workdir: Path, *, realm: str, service: str, issuer: str, cert_pem: bytes
) -> Distribution:
    """Start it and return once it listens; raise with its output if it does not."""
    workdir.mkdir(parents=True, exist_ok=True)
    bundle = workdir / "token-ca.pem"
    bundle.write_bytes(cert_pem)
    config = workdir / "config.yml"
    config.write_text(
        CONFIG.format(
            storage=workdir / "storage", realm=realm, service=service, issuer=issuer, bundle=bundle
        )
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    log: deque[str] = deque(maxlen=_KEPT_LINES)
    port: list[int] = []
    seen = threading.Event()
    reader = threading.Thread(
        target=_read_lines, args=(process.stdout, log, port, seen), daemon=True
    )
    reader.start()
    server = Distribution(process, "", reader, log)
    if not seen.wait(START_TIMEOUT) or not port:
        server.stop()
        raise RuntimeError("Distribution did not start:\n" + "\n".join(list(log)[-50:]))
    server.url = f"http://127.0.0.1:{port[0]}"
    return server
