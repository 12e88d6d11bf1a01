"""Private dockerd and containerd instances for the client tests.

Each daemon gets its own short directory under /tmp (unix socket paths must stay under ~100
characters, which pytest's temporary paths do not promise), its own sockets and state, and a log
file that is shown when it fails to start. Readiness is a bounded number of probe commands; the
pause between two probes is a wait on the daemon process itself, so a daemon that dies is noticed
at once. Stopping is SIGTERM, a bounded wait, then SIGKILL of the daemon's own process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.clients.tools import COMMAND_TIMEOUT, clean_env, run

PROBE_TRIES = 240
PROBE_INTERVAL = 0.25  # seconds, spent waiting on the daemon process (returns early if it dies)
PROBE_TIMEOUT = 30  # one probe command; a hung daemon fails the start instead of blocking it
STOP_TIMEOUT = 30


class DaemonError(RuntimeError):
    pass


def unmount_below(folder: Path) -> list[str]:
    """Unmount (lazily) everything mounted below `folder`; what is still mounted after."""
    for point in reversed(mounts_below(folder)):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    return mounts_below(folder)


def mounts_below(folder: Path) -> list[str]:
    prefix = str(folder.resolve()) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if point.startswith(prefix)]


def short_tempdir(prefix: str) -> Path:
    """A fresh directory with a short path: /tmp/<prefix>XXXXXXXX."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@dataclass
class Daemon:
    name: str
    args: list[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=clean_env)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env),
                start_new_session=True,  # its own process group, for the SIGKILL fallback
            )

    def log(self, tail: int = 12000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return "(no log)"

    def wait_ready(self, probe: Callable[[], bool]) -> None:
        """Run `probe` until it succeeds, at most PROBE_TRIES times; fail with the log."""
        assert self.process is not None
        for _ in range(PROBE_TRIES):
            if probe():
                return
            try:
                code = self.process.wait(timeout=PROBE_INTERVAL)
            except subprocess.TimeoutExpired:
                continue
            raise DaemonError(f"{self.name} exited with {code} before it was ready:\n{self.log()}")
        raise DaemonError(f"{self.name} not ready after {PROBE_TRIES} probes:\n{self.log()}")

    def stop(self) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode


@dataclass
class Dockerd:
    """A private dockerd on `unix://<root>/d.sock`, with vfs storage and no networking."""

    root: Path
    docker: str
    daemon: Daemon

    @property
    def host(self) -> str:
        return f"unix://{self.root / 'd.sock'}"

    def env(self, config_dir: Path) -> dict[str, str]:
        """Environment for the docker CLI: this daemon and a private client config dir."""
        return clean_env({"DOCKER_HOST": self.host, "DOCKER_CONFIG": str(config_dir)})

    def cli(
        self,
        config_dir: Path,
        *args: str,
        input: str | bytes | None = None,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        env = self.env(config_dir)
        return run([self.docker, *args], env=env, input=input, check=check, timeout=timeout)

    def registry_mirrors(self) -> list[str]:
        """The Docker Hub mirrors the running daemon uses (`docker info`), as it normalized
        them (with a trailing `/`)."""
        shown = self.cli(self.root / "probe-config", "info", "--format", "{{json .RegistryConfig}}")
        mirrors: list[str] = json.loads(shown.stdout).get("Mirrors") or []
        return mirrors

    @contextlib.contextmanager
    def mirroring(self, *mirrors: str) -> Iterator[None]:
        """Docker Hub pulls go to `mirrors` (daemon.json's `registry-mirrors`) inside the block.

        dockerd reloads `registry-mirrors` from its config file on SIGHUP, without a restart,
        so the session's daemon serves this and is given its own mirrors back afterwards. A
        reload changes only the keys the file names (a file without `registry-mirrors` keeps
        the current ones), so going back names the old list, `[]` when there was none, and the
        file's own text is restored once the daemon runs with it. The reload is asynchronous:
        `docker info` is polled (a bounded number of times) until it shows the mirrors.
        """
        config = self.root / "daemon.json"
        original = config.read_text()
        settings = json.loads(original)
        before = self.registry_mirrors()
        self._reload(config, {**settings, "registry-mirrors": list(mirrors)}, list(mirrors))
        try:
            yield
        finally:
            restored = {**settings, "registry-mirrors": settings.get("registry-mirrors", [])}
            self._reload(config, restored, before)
            config.write_text(original)

    def _reload(self, config: Path, settings: dict[str, object], mirrors: list[str]) -> None:
        config.write_text(json.dumps(settings))
        assert self.daemon.process is not None
        self.daemon.process.send_signal(signal.SIGHUP)
        shown = [mirror.rstrip("/") + "/" for mirror in mirrors]  # as `docker info` shows them
        self.daemon.wait_ready(lambda: self.registry_mirrors() == shown)

    def stop(self) -> None:
        self.daemon.stop()
        # dockerd leaves its default network namespace mounted in the exec root.
        if not unmount_below(self.root):
            shutil.rmtree(self.root, ignore_errors=True)


def start_dockerd(dockerd: str, docker: str) -> Dockerd:
    root = short_tempdir("dk")
    (root / "daemon.json").write_text("{}")
    args = [
        dockerd,
        "--config-file", str(root / "daemon.json"),
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--storage-driver=vfs",
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "x"),
        "--pidfile", str(root / "pid"),
        "--host", f"unix://{root / 'd.sock'}",
        "--containerd-namespace", "srtest",
        "--containerd-plugins-namespace", "srtest-plugins",
    ]  # fmt: skip
    daemon = Daemon("dockerd", args, root / "dockerd.log")
    instance = Dockerd(root, docker, daemon)
    daemon.start()
    probe_config = root / "probe-config"

    def probe() -> bool:
        return (
            instance.cli(probe_config, "version", check=False, timeout=PROBE_TIMEOUT).returncode
            == 0
        )

    try:
        daemon.wait_ready(probe)
    except BaseException:
        instance.stop()
        raise
    return instance


_CONTAINERD_CONFIG = """\
version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{root}/c.sock"

[ttrpc]
  address = "{root}/c.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
"""


@dataclass
class Containerd:
    """A private containerd; `ctr` talks to it in its own namespace."""

    root: Path
    ctr_binary: str
    daemon: Daemon
    namespace: str = "srtest"

    @property
    def address(self) -> str:
        return str(self.root / "c.sock")

    def ctr(
        self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        command = [self.ctr_binary, "--address", self.address, "--namespace", self.namespace]
        return run([*command, *args], env=clean_env(), check=check, timeout=timeout)

    def stop(self) -> None:
        self.daemon.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_containerd(containerd: str, ctr: str) -> Containerd:
    root = short_tempdir("cd")
    config = root / "config.toml"
    config.write_text(_CONTAINERD_CONFIG.format(root=root))
    daemon = Daemon("containerd", [containerd, "--config", str(config)], root / "containerd.log")
    instance = Containerd(root, ctr, daemon)
    daemon.start()

    def probe() -> bool:
        return instance.ctr("version", check=False, timeout=PROBE_TIMEOUT).returncode == 0

    try:
        daemon.wait_ready(probe)
    except BaseException:
        instance.stop()
        raise
    return instance
