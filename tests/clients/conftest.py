"""Fixtures for the real-client tests: tools (skipped when their binary is missing), private
daemons (one dockerd and one containerd per session) and OCI layouts to push from.

The registry itself is the session `registry_server` of tests/conftest.py; every test works in
its own repository (the `repo` fixture), so tests sharing the server and the daemons do not see
each other's content.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.daemons import Containerd, Dockerd, start_containerd, start_dockerd
from tests.clients.images import OCILayout
from tests.clients.tools import Skopeo, require_binary, require_root


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    return Skopeo(require_binary("skopeo"), tmp_path / "skopeo")


@pytest.fixture
def layout(tmp_path: Path) -> OCILayout:
    """An empty OCI layout to build the test's images in."""
    return OCILayout(tmp_path / "layout")


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    daemon_binary = require_binary("dockerd")
    cli = require_binary("docker")
    require_root("dockerd")
    instance = start_dockerd(daemon_binary, cli)
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    daemon_binary = require_binary("containerd")
    ctr = require_binary("ctr")
    require_root("containerd")
    instance = start_containerd(daemon_binary, ctr)
    yield instance
    instance.stop()
