"""Build the container image with no registry and no network, and run containers from it.

No image registry is reachable here, so the base image is made locally: `debootstrap
--variant=minbase` of a Debian suite with python3, from the mirror apt already uses, imported
with `docker import`. Its tarball is cached outside the checkout, one per suite and ISO week
(a fresh machine makes it once, in about 40 s). The build context is what .dockerignore lets
through, plus a wheelhouse that scripts/wheelhouse fills for the base's Python, and the build
runs with `--network none` on dockerd's classic builder.

A container runs attached (`docker run` without `-d`), so its output streams to the test and
the `docker run` process ends when the container does, with its exit status. Readiness is the
server's own "listening on" line, as for a server started on the host (tests/server.py).
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.clients.daemons import Dockerd, unmount_below
from tests.clients.tools import describe, run
from tests.server import listening_url

ROOT = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
BUILD_TIMEOUT = 600  # seconds for `docker build`; measured about 90 s on 2 cores
DEBOOTSTRAP_TIMEOUT = 600
READY_TIMEOUT = 120  # seconds from `docker run` to "listening on" (about 8 s on vfs)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "simple-registry-tests"


# --- the base image ---------------------------------------------------------------------------


def debian_mirror(suite: str = SUITE) -> str:
    """The mirror apt uses for `suite` (sources.list or deb822 .sources), or deb.debian.org.

    SIMPLE_REGISTRY_TEST_DEBIAN_MIRROR overrides it.
    """
    override = os.environ.get("SIMPLE_REGISTRY_TEST_DEBIAN_MIRROR")
    if override:
        return override
    sources = Path("/etc/apt/sources.list.d")
    files = [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]
    for path in [*files, *sorted(sources.glob("*.sources"))]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for uri, suites in _entries(text, deb822=path.suffix == ".sources"):
            if suite in suites and uri.startswith(("http://", "https://")):
                return uri
    return FALLBACK_MIRROR


def _entries(text: str, *, deb822: bool) -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of every `deb` source in one file."""
    if not deb822:
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] == ["deb"]:
                words = [w for w in words[1:] if not w.startswith("[")]  # [options]
                if len(words) >= 2:
                    yield words[0], [words[1]]
        return
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith(("#", " ", "\t")):
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split()


def base_tarball(debootstrap: str, suite: str = SUITE) -> Path:
    """A minbase `suite` root filesystem with python3, as a tar; cached for the ISO week."""
    year, week, _ = datetime.date.today().isocalendar()
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / f"{suite}-minbase-python3-{year}w{week:02d}.tar"
    if tarball.exists():
        return tarball
    for stale in folder.glob(f"{suite}-minbase-python3-*.tar"):
        stale.unlink()
    scratch = Path(tempfile.mkdtemp(prefix="rootfs-", dir=folder))
    rootfs = scratch / "rootfs"
    try:
        command = [debootstrap, "--variant=minbase", "--include=python3", suite, str(rootfs)]
        run([*command, debian_mirror(suite)], timeout=DEBOOTSTRAP_TIMEOUT)
        # What apt downloaded and its package lists: not part of an image.
        leftovers = [
            *rootfs.glob("var/cache/apt/*.bin"),
            *rootfs.glob("var/cache/apt/archives/*.deb"),
        ]
        leftovers += [path for path in rootfs.glob("var/lib/apt/lists/*") if path.is_file()]
        for path in leftovers:
            path.unlink()
        partial = scratch / "rootfs.tar"
        run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."])
        partial.rename(tarball)  # whole or absent, whatever stops this run
    finally:
        remove_rootfs(scratch)
    return tarball


def remove_rootfs(scratch: Path) -> None:
    """Delete a debootstrap target, unmounting first what it may have left mounted.

    In a container, debootstrap bind-mounts the host's devices into the target's /dev, and a
    debootstrap that was killed leaves them there: deleting through them would delete the host's
    device nodes. So unmount everything below, and delete nothing if anything stays mounted.
    """
    remaining = unmount_below(scratch)
    if remaining:
        raise AssertionError(f"still mounted, {scratch} left in place: {remaining}")
    shutil.rmtree(scratch)


# --- building ---------------------------------------------------------------------------------


def build_context(destination: Path) -> Path:
    """A copy of what .dockerignore lets into the context (its `!` lines) and the Dockerfile."""
    allowed = [
        line[1:].strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    destination.mkdir(parents=True)
    for name in ["Dockerfile", ".dockerignore", *allowed]:
        source = ROOT / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.whl")
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)
    return destination


def fill_wheelhouse(context: Path, python_version: str) -> list[str]:
    """scripts/wheelhouse for the base's Python into the context (it downloads from PyPI)."""
    command = [sys.executable, str(ROOT / "scripts" / "wheelhouse")]
    command += ["--python-version", python_version, "--output", str(context / "wheelhouse")]
    run(command)
    return sorted(path.name for path in (context / "wheelhouse").glob("*.whl"))


def build(
    dockerd: Dockerd, config: Path, context: Path, base: str, tag: str, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`docker build --network none` with dockerd's classic builder."""
    env = dockerd.env(config) | {"DOCKER_BUILDKIT": "0"}
    command = [dockerd.docker, "build", "--network", "none", "--force-rm"]
    command += ["--build-arg", f"BASE_IMAGE={base}", "--tag", tag, str(context)]
    return run(command, env=env, timeout=BUILD_TIMEOUT, check=check)


# --- running ----------------------------------------------------------------------------------


@dataclass
class Container:
    """An attached `docker run`: its output, its "listening on" URL and its exit status."""

    name: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    url: str | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    drained: threading.Event = field(default_factory=threading.Event)

    def text(self) -> str:
        return "".join(self.output)

    def wait_ready(self) -> str:
        if not self.ready.wait(timeout=READY_TIMEOUT) or self.url is None:
            raise AssertionError(f"container {self.name} did not listen:\n{self.text()[-8000:]}")
        return self.url


def start_container(dockerd: Dockerd, config: Path, name: str, *args: str) -> Container:
    """`docker run --name NAME ARGS...` attached; its output is read by a thread."""
    process = subprocess.Popen(
        [dockerd.docker, "run", "--name", name, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dockerd.env(config),
    )
    container = Container(name, process)

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            container.output.append(line)
            url = listening_url(line)
            if url and container.url is None:
                container.url = url
                container.ready.set()
        container.ready.set()  # EOF: the container ended before it listened
        container.drained.set()

    threading.Thread(target=drain, daemon=True).start()
    return container


def remove_container(dockerd: Dockerd, config: Path, container: Container) -> None:
    """Force-remove, whatever state it is in (cleanup after a failed test)."""
    dockerd.cli(config, "rm", "--force", container.name, check=False)
    try:
        container.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        container.process.kill()
        container.process.wait()


def inspect(dockerd: Dockerd, config: Path, template: str, *names: str) -> str:
    result = dockerd.cli(config, "inspect", "--format", template, *names)
    return result.stdout.strip()


def check(result: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert result.returncode == code, describe(result)
    return result.stdout
