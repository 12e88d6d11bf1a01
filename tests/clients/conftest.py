"""Fixtures for the real-client tests: tools (skipped when their binary is missing), a private
containerd per session (the session's dockerd is in tests/conftest.py, shared with the image
tests) and OCI layouts to push from.

The registry itself is the session `registry_server` of tests/conftest.py; every test works in
its own repository (the `repo` fixture), so tests sharing the server and the daemons do not see
each other's content.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.daemons import Containerd, start_containerd
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
def containerd() -> Iterator[Containerd]:
    daemon_binary = require_binary("containerd")
    ctr = require_binary("ctr")
    require_root("containerd")
    instance = start_containerd(daemon_binary, ctr)
    yield instance
    instance.stop()
