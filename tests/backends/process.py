"""A backend server the tests run as a child process on a free loopback port.

It counts as started only once it answered (a bounded number of tries 25 ms apart, never a
fixed sleep); if it never does, the end of its log says why. `stop` then `start` again keeps
the port, so a test can take a backend away and bring it back; `paused` makes it slow instead.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

TRY_EVERY = 0.025


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    what = "server"  # for the error message
    ready_tries = 200

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def answers(self) -> bool:
        """One try: does the server serve? (OSError: not listening yet.)"""
        raise NotImplementedError

    def _wait_ready(self, log: Path) -> None:
        assert self._proc is not None
        for _ in range(self.ready_tries):
            if self._proc.poll() is not None:
                break
            try:
                if self.answers():
                    return
            except OSError:
                pass
            time.sleep(TRY_EVERY)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"{self.what} on port {self.port} did not come up:\n{tail}")

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The process stopped (SIGSTOP) for the block, and always resumed after it.

        A backend that is slow, not down: the kernel still completes connections to its port
        and keeps those it had open, but nothing answers on any of them; on resuming it runs
        the commands it received meanwhile, even from clients that gave up (a paused
        container, a stalled VM).
        """
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGCONT)  # a stopped process would not see SIGTERM
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
