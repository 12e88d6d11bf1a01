"""The container image, built offline and run the way docs/image.md says to run it.

The session's private dockerd (tests/conftest.py) builds the image from a base made here with
debootstrap (no image registry is reachable) and a host-built wheelhouse, with `--network
none`; then one container serves on the host's network (dockerd runs with `--bridge=none`, so
`--network host` is how the host reaches it), read-only, as uid 65532, with a named volume on
/data, while the tests push and pull through it with skopeo, collect garbage from a second
container on the same volume, and stop it with SIGTERM.

Missing debootstrap, dockerd or skopeo skips these tests with the reason, which fails CI
(SIMPLE_REGISTRY_TEST_NO_SKIPS). The wheelhouse comes from PyPI, which the install step needs
anyway.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.clients.daemons import Dockerd
from tests.clients.images import OCILayout, random_layer
from tests.clients.tools import Skopeo, require_binary
from tests.deploy.image import (
    Container,
    base_tarball,
    build,
    build_context,
    check,
    fill_wheelhouse,
    inspect,
    remove_container,
    start_container,
)
from tests.server import ADMIN, PASSWORD

MB = 1000 * 1000
# The built image: Debian 12 minbase with python3 is about 160 MB, the venv about 85 MB.
MAX_IMAGE_SIZE = 300 * MB
UID = 65532
# `serve` waits up to 30 s for its workers after SIGTERM; docker's default would be 10 s.
STOP_GRACE = 40
BASE = "srtest/debian-python3:bookworm"
IMAGE = "srtest/simple-registry:test"
VOLUME = "srtest-registry-data"


@dataclass(frozen=True)
class Built:
    tag: str
    size: int
    python_version: str
    wheels: list[str]


@pytest.fixture(scope="module")
def docker_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docker-config")


@dataclass(frozen=True)
class Base:
    tag: str
    python_version: str


@pytest.fixture(scope="module")
def base(dockerd: Dockerd, docker_config: Path) -> Base:
    """Debian minbase with python3 (and no pip), imported into the session's dockerd."""
    tarball = base_tarball(require_binary("debootstrap"))
    dockerd.cli(docker_config, "import", str(tarball), BASE)
    version = check(
        dockerd.cli(
            docker_config,
            *("run", "--rm", "--network", "none", BASE),
            *("python3", "-c", "import platform; print(platform.python_version())"),
        )
    ).strip()
    return Base(BASE, version)


@pytest.fixture(scope="module")
def image(
    dockerd: Dockerd, docker_config: Path, base: Base, tmp_path_factory: pytest.TempPathFactory
) -> Built:
    """The image, built from the local Debian base with the wheelhouse and no network."""
    context = build_context(tmp_path_factory.mktemp("build") / "context")
    wheels = fill_wheelhouse(context, base.python_version)
    started = time.monotonic()
    build(dockerd, docker_config, context, base.tag, IMAGE)
    elapsed = time.monotonic() - started
    size = int(inspect(dockerd, docker_config, "{{.Size}}", IMAGE))
    print(f"\nimage {IMAGE}: {size / MB:.0f} MB, built in {elapsed:.0f} s on {base.python_version}")
    return Built(IMAGE, size, base.python_version, wheels)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served(dockerd: Dockerd, docker_config: Path, image: Built) -> Iterator[Container]:
    """The registry container: host network, read-only root, a tmpfs on /tmp, a volume on
    /data, two workers, the admin password from the environment."""
    dockerd.cli(docker_config, "volume", "create", VOLUME)
    container = start_container(
        dockerd,
        docker_config,
        "srtest-registry",
        *("--network", "host", "--read-only", "--tmpfs", "/tmp", "-v", f"{VOLUME}:/data"),
        *("-e", f"SIMPLE_REGISTRY_ADMINPWD={PASSWORD}", "-e", "SIMPLE_REGISTRY_WORKERS=2"),
        *("-e", f"SIMPLE_REGISTRY_ADDR=127.0.0.1:{free_port()}", image.tag),
    )
    try:
        container.wait_ready()
        yield container
    finally:
        remove_container(dockerd, docker_config, container)
        dockerd.cli(docker_config, "volume", "rm", "--force", VOLUME, check=False)


def test_without_wheels_or_pip_the_build_says_what_to_do(
    dockerd: Dockerd, docker_config: Path, base: Base, tmp_path: Path
) -> None:
    """An empty wheelhouse on a base without pip (Debian's python3) stops with the next step."""
    context = build_context(tmp_path / "context")
    assert not list((context / "wheelhouse").glob("*.whl"))
    result = build(dockerd, docker_config, context, base.tag, "srtest/no-wheels", check=False)
    assert result.returncode != 0, result.stdout
    assert "no pip in BASE_IMAGE and no wheels in wheelhouse/: run scripts/wheelhouse" in (
        result.stdout + result.stderr
    )


def test_image_is_small_and_holds_only_the_venv(
    dockerd: Dockerd,
    docker_config: Path,
    image: Built,
    record_property: Callable[[str, object], None],
) -> None:
    record_property("image_size_bytes", image.size)
    assert image.size < MAX_IMAGE_SIZE, f"image is {image.size / MB:.0f} MB"
    assert any(name.startswith("pip-") for name in image.wheels), image.wheels
    assert inspect(dockerd, docker_config, "{{.Config.User}}", image.tag) == f"{UID}:{UID}"
    probe = """
import json, os, shutil, sys, registry
site = os.path.dirname(os.path.dirname(registry.__file__))
print(json.dumps({
    "registry": registry.__file__,
    "tools": [t for t in ("cc", "gcc", "c++", "make", "ld", "pip", "pip3") if shutil.which(t)],
    "paths": [p for p in ("/wheelhouse", "/src", "/root/.cache", "/tmp/pip-cache")
              if os.path.exists(p)],
    "site": sorted(n for n in os.listdir(site) if n in ("tests", "pip", "setuptools")),
    "prefix": sys.prefix,
}))
"""
    found = json.loads(
        check(
            dockerd.cli(
                docker_config,
                *("run", "--rm", "--network", "none", "--entrypoint", "python3", image.tag),
                *("-c", probe),
            )
        )
    )
    assert found["registry"].startswith("/opt/simple-registry/lib/"), found
    assert found["prefix"] == "/opt/simple-registry", found
    assert found["tools"] == [], f"build tools in the image: {found}"
    assert found["paths"] == [], f"build leftovers in the image: {found}"
    assert found["site"] == [], f"the venv holds more than the project's dependencies: {found}"


def test_runs_as_nonroot_on_a_read_only_root(
    dockerd: Dockerd, docker_config: Path, served: Container
) -> None:
    pid = int(inspect(dockerd, docker_config, "{{.State.Pid}}", served.name))
    workers = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(workers) >= 2, f"serve -workers 2 has children {workers}"
    for process in [str(pid), *workers]:
        status = Path(f"/proc/{process}/status").read_text()
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        assert uids == [str(UID)] * 4, f"process {process} runs as {uids}"
    assert inspect(dockerd, docker_config, "{{.HostConfig.ReadonlyRootfs}}", served.name) == "true"
    write = "import sys; open(sys.argv[1], 'w').write('x')"
    refused = dockerd.cli(
        docker_config, "exec", served.name, "python3", "-c", write, "/opt/probe", check=False
    )
    assert refused.returncode != 0
    assert "Read-only file system" in refused.stderr, refused.stderr
    for writable in ("/tmp/probe", "/data/probe"):
        check(dockerd.cli(docker_config, "exec", served.name, "python3", "-c", write, writable))


def test_answers_the_probes(served: Container) -> None:
    assert served.url is not None
    with httpx.Client(base_url=served.url, timeout=30) as http:
        live = http.get("/livez")
        assert live.status_code == 200, live.text
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"


def test_push_pull_then_gc_from_a_second_container(
    dockerd: Dockerd, docker_config: Path, image: Built, served: Container, tmp_path: Path
) -> None:
    assert served.url is not None
    host = served.url.split("://", 1)[1]
    skopeo = Skopeo(require_binary("skopeo"), tmp_path / "skopeo")
    source = OCILayout(tmp_path / "source")
    layers = [random_layer(300 * 1024), random_layer(2 * 1024 * 1024)]
    pushed = source.add_image(layers)
    source.tag(pushed.manifest, "v1")
    creds = f"{ADMIN}:{PASSWORD}"
    ref = f"docker://{host}/team/app:v1"
    skopeo.copy(
        "oci:" + str(source.root) + ":v1", ref, "--dest-creds", creds, "--dest-tls-verify=false"
    )
    pulled = OCILayout(tmp_path / "pulled")
    skopeo.copy(ref, f"oci:{pulled.root}:v1", "--src-creds", creds, "--src-tls-verify=false")
    tree = pulled.read_tree(pulled.lookup("v1"))
    assert tree.layers == {layer.digest for layer in layers}
    assert set(tree.manifests) == {pushed.manifest.digest}

    with httpx.Client(base_url=served.url, auth=(ADMIN, PASSWORD), timeout=30) as http:
        deleted = http.delete(f"/v2/team/app/manifests/{pushed.manifest.digest}")
        assert deleted.status_code == 202, deleted.text
        collected = dockerd.cli(
            docker_config,
            *("run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp"),
            *("-v", f"{VOLUME}:/data", image.tag, "gc", "-datadir", "/data", "-grace", "0s"),
            "-json",
            check=False,
        )
        report = json.loads(check(collected))
        assert report["outcome"] == "done", report
        # Both layers, the config and the manifest's own content.
        assert report["blobs"]["deleted"] == len(layers) + 2, report
        assert report["blobs"]["bytes"] >= sum(len(layer.compressed) for layer in layers)
        assert f"deleted {len(layers) + 2} blobs" in collected.stderr, collected.stderr
        for layer in layers:
            gone = http.get(f"/v2/team/app/blobs/{layer.digest}")
            assert gone.status_code == 404, gone.text


def test_stops_cleanly_on_sigterm(dockerd: Dockerd, docker_config: Path, served: Container) -> None:
    """Last in this file: it stops the module's container."""
    check(dockerd.cli(docker_config, "stop", "--time", str(STOP_GRACE), served.name))
    # `docker run` ends with the container; 0 is serve's own exit, not SIGKILL's 137.
    assert served.process.wait(timeout=60) == 0, served.text()
    assert served.drained.wait(timeout=60)
    state = inspect(dockerd, docker_config, "{{.State.ExitCode}} {{.State.OOMKilled}}", served.name)
    assert state == "0 false"
    assert "Traceback" not in served.text(), served.text()
