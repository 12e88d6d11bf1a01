"""Fixtures of the pull-through cache's tests: a real upstream registry (tests/proxy/upstream.py).

`upstream_service` starts one Distribution, token issuer and fault proxy for the session;
`upstream` is the same, with faults and counters reset before the test. Use the `repo`
fixture (tests/conftest.py) for repository names no other test uses.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clients.tools import require_binary
from tests.proxy.upstream import Upstream, running_upstream


@pytest.fixture(scope="session")
def upstream_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """One upstream for the whole session: starting Distribution costs more than a test."""
    binary = require_binary("docker-registry")
    with running_upstream(binary, tmp_path_factory.mktemp("upstream")) as upstream:
        yield upstream


@pytest.fixture
def upstream(upstream_service: Upstream) -> Iterator[Upstream]:
    """The session's upstream in mode `pass`, with empty counters and default token answers;
    reset again afterwards, so a test using `upstream_service` directly meets no leftover
    fault either."""
    upstream_service.reset()
    yield upstream_service
    upstream_service.reset()
