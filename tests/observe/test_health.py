"""`/livez` and `/readyz` answer without credentials and show no secrets (the readiness flips
with Redis and S3 going away are in tests/backends/test_readiness.py)."""

from __future__ import annotations

from tests.observe.helpers import readiness, scrape
from tests.server import RunningRegistry


def test_probes_need_no_credentials(registry_server: RunningRegistry) -> None:
    with registry_server.client(auth=False) as http:
        live = http.get("/livez")
        assert live.status_code == 200
        assert live.json() == {"status": "alive"}
        # Wrong credentials are ignored, never a 401.
        assert http.get("/livez", auth=("admin", "wrong")).status_code == 200
        assert http.get("/readyz", auth=("admin", "wrong")).status_code == 200
        assert http.head("/livez").status_code == 200
    code, body = readiness(registry_server)
    assert code == 200
    backends = {name: check["backend"] for name, check in body["checks"].items()}
    assert backends in (
        {"storage": "filesystem", "coordinator": "local"},
        {"storage": "s3", "coordinator": "redis"},
    )
    assert body == {
        "status": "ready",
        "checks": {name: {"backend": b, "status": "ok"} for name, b in backends.items()},
    }
    assert scrape(registry_server).value("registry_ready") == 2  # both checks passed
