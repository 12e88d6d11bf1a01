"""`/metrics` after real requests: counters by route and code, histograms, bytes, backends,
auth, and the sum over several worker processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from registry.config.flags import parse_serve
from registry.config.settings import ConfigError
from tests.observe.helpers import Metrics, access_records, eventually, scrape
from tests.oci import digest_of, push_image
from tests.server import RunningRegistry


def _driver(server: RunningRegistry, before: Metrics) -> str:
    drivers = before.label_values("registry_storage_action_seconds_count", "driver")
    assert len(drivers) == 1, drivers
    return drivers.pop()


def test_requests_are_counted_by_route_method_and_code(
    registry_server: RunningRegistry, repo: str
) -> None:
    before = scrape(registry_server)
    data = os.urandom(3000)
    with registry_server.client() as http:
        for _ in range(3):
            assert http.get("/v2/").status_code == 200
        assert http.get(f"/v2/{repo}/manifests/missing").status_code == 404
        assert http.get("/v2/no/such/endpoint/at/all").status_code == 404
        assert http.request("PATCH", "/v2/").status_code == 405
        location = http.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        assert http.patch(location, content=data).status_code == 202
        assert http.put(location, params={"digest": digest_of(data)}).status_code == 201
        pushed = push_image(http, repo, "v1")
        assert http.get(f"/v2/{repo}/blobs/{digest_of(data)}").content == data
        assert http.head(f"/v2/{repo}/blobs/{digest_of(data)}").status_code == 200
        assert http.get(f"/v2/{repo}/manifests/v1").content == pushed.body
    after = scrape(registry_server)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    requests = "registry_http_requests_total"
    assert delta(requests, handler="base", method="GET", code="200") == 3
    assert delta(requests, handler="base", method="PATCH", code="405") == 1
    assert delta(requests, handler="manifest", method="GET", code="404") == 1
    assert delta(requests, handler="manifest", method="GET", code="200") == 1
    assert delta(requests, handler="manifest", method="PUT", code="201") == 1
    assert delta(requests, handler="unknown", method="GET", code="404") == 1
    assert delta(requests, handler="upload_start", method="POST", code="202") >= 1
    assert delta(requests, handler="upload", method="PATCH", code="202") == 1
    assert delta(requests, handler="upload", method="PUT", code="201") == 1
    assert delta(requests, handler="blob", method="GET", code="200") == 1
    assert delta(requests, handler="blob", method="HEAD", code="200") == 1
    duration = "registry_http_request_duration_seconds"
    assert delta(f"{duration}_count", handler="base", method="GET") == 3
    assert delta(f"{duration}_bucket", handler="base", method="GET", le="+Inf") == 3
    assert delta(f"{duration}_sum", handler="base", method="GET") > 0
    assert delta("registry_http_received_bytes_total", handler="upload") >= len(data)
    assert delta("registry_http_sent_bytes_total", handler="blob") >= len(data)
    assert after.value("registry_http_in_flight_requests", handler="base") == 0

    assert delta("registry_upload_sessions_total", event="started") >= 2
    assert delta("registry_upload_sessions_total", event="completed") >= 2
    assert delta("registry_upload_sessions_total", event="failed") == 0
    assert delta("registry_pushes_total", kind="blob") >= 2
    assert delta("registry_pushes_total", kind="manifest") == 1
    assert delta("registry_pulls_total", kind="blob") == 1  # the HEAD is not a pull
    assert delta("registry_pulls_total", kind="manifest") == 1
    assert delta("registry_auth_attempts_total", method="basic", result="success") >= 10

    driver = _driver(registry_server, after)
    storage = "registry_storage_action_seconds_count"
    assert delta(storage, driver=driver, action="append") >= 1
    assert delta(storage, driver=driver, action="stream") >= 1
    assert delta(storage, driver=driver, action="write") >= 1
    assert after.value("registry_storage_errors_total", driver=driver) == 0
    coordinator = "redis" if driver == "s3" else "local"
    assert delta("registry_lock_wait_seconds_count", coordinator=coordinator) >= 2
    assert delta("registry_coordinator_action_seconds_count", coordinator=coordinator) >= 3

    # Bounded labels: route names only, never a path or a repository name.
    assert repo not in after.text
    assert "/v2/" not in after.text
    handlers = after.label_values(requests, "handler")
    assert handlers <= {
        "token", "base", "catalog", "tags", "manifest", "upload_start", "upload", "blob",
        "referrers", "livez", "readyz", "metrics", "unknown",
    }  # fmt: skip
    assert after.value("registry_build_info") == 1


def test_failed_uploads_auth_and_tokens_are_counted(
    registry_server: RunningRegistry, repo: str
) -> None:
    before = scrape(registry_server)
    with registry_server.client() as http:
        location = http.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        assert http.patch(location, content=b"abc").status_code == 202
        wrong = http.put(location, params={"digest": digest_of(b"something else")})
        assert wrong.status_code == 400
        location = http.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        assert http.delete(location).status_code == 204
        r = http.get("/token", params={"scope": f"repository:{repo}:pull", "offline_token": "true"})
        assert r.status_code == 200
        token = r.json()["token"]
    with registry_server.client(auth=False) as anonymous:
        assert anonymous.get("/v2/").status_code == 401  # no credentials: not an attempt
        assert anonymous.get("/v2/", auth=("admin", "wrong")).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert anonymous.get(f"/v2/{repo}/tags/list", headers=bearer).status_code == 404
        assert anonymous.get("/v2/", headers={"Authorization": "Bearer x.y.z"}).status_code == 401
        assert anonymous.get("/v2/", headers={"Authorization": "Digest x"}).status_code == 401
    after = scrape(registry_server)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("registry_upload_sessions_total", event="started") == 2
    assert delta("registry_upload_sessions_total", event="failed") == 1
    assert delta("registry_upload_sessions_total", event="cancelled") == 1
    assert delta("registry_upload_sessions_total", event="completed") == 0
    attempts = "registry_auth_attempts_total"
    assert delta(attempts, method="basic", result="failure") == 1
    assert delta(attempts, method="bearer", result="success") == 1
    assert delta(attempts, method="bearer", result="failure") == 1
    assert delta(attempts, method="other", result="failure") == 1
    assert delta(attempts, method="anonymous") == 0
    assert delta("registry_tokens_issued_total", kind="access") == 1
    assert delta("registry_tokens_issued_total", kind="refresh") == 1


def test_metrics_on_the_main_address_need_credentials(
    registry_server: RunningRegistry,
) -> None:
    with registry_server.client(auth=False) as anonymous:
        r = anonymous.get("/metrics")
        assert r.status_code == 401
        assert "WWW-Authenticate" in r.headers
        assert anonymous.get("/metrics", auth=("admin", "wrong")).status_code == 401
    with registry_server.client() as http:
        token = http.get("/token").json()["token"]
    with registry_server.client(auth=False) as anonymous:
        r = anonymous.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert "registry_http_requests_total" in r.text


def test_two_workers_add_up_on_the_metrics_address(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    server = start_registry("-workers", "2", "-metricsaddr", "127.0.0.1:0")
    assert server.metrics_url is not None
    requests = 40
    for _ in range(requests):
        with server.client() as fresh:  # a new connection each: the kernel spreads them
            assert fresh.get("/v2/").status_code == 200
    served = eventually(
        lambda: lines if len(lines := _base_lines(server)) == requests else None,
        what="an access log line per request",
    )
    assert len({line["pid"] for line in served}) == 2, "both workers should have served"

    metrics = scrape(server)
    assert metrics.value("registry_http_requests_total", handler="base", code="200") == requests
    assert metrics.value("registry_http_request_duration_seconds_count", handler="base") == (
        requests
    )
    assert metrics.value("registry_worker_processes") == 2
    assert metrics.value("registry_http_in_flight_requests") == 0
    assert metrics.value("registry_build_info") == 1

    # Only /metrics there, and not on the main address any more.
    base = server.metrics_url.removesuffix("/metrics")
    assert httpx.get(f"{base}/v2/").status_code == 404
    assert httpx.post(server.metrics_url).status_code == 405
    with server.client() as http:
        assert http.get("/metrics").status_code == 404


def test_two_workers_add_up_on_the_main_address(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    """Whichever worker answers a scrape reads every worker's values. (Scrapes are logged at
    debug: the access log then tells which worker answered each.)"""
    server = start_registry("-workers", "2", "-loglevel", "debug")
    requests = 30
    for _ in range(requests):
        with server.client() as fresh:
            assert fresh.get("/v2/").status_code == 200
    served = eventually(
        lambda: lines if len(lines := _base_lines(server)) == requests else None,
        what="an access log line per request",
    )
    assert len({line["pid"] for line in served}) == 2, "both workers should have served"

    def scraped_by_both() -> bool | None:
        metrics = scrape(server)  # a new connection each time
        assert metrics.value("registry_http_requests_total", handler="base") == requests
        assert metrics.value("registry_worker_processes") == 2
        scrapers = {r["pid"] for r in access_records(server) if r["route"] == "metrics"}
        return True if len(scrapers) == 2 else None

    eventually(scraped_by_both, what="a scrape answered by each worker")


def _base_lines(server: RunningRegistry) -> list[dict[str, object]]:
    return [r for r in access_records(server) if r["route"] == "base"]


def _configuration(directory: Path, metrics: str) -> Path:
    directory.mkdir()
    (directory / "config.yaml").write_text(
        "apiVersion: simple-registry.dev/v1\nkind: Configuration\nmetadata: {name: c}\n"
        f"spec:\n  metrics: {metrics}\n"
    )
    return directory


def test_metrics_settings_from_the_configuration(tmp_path: Path) -> None:
    cfg = _configuration(tmp_path / "a", "{addr: '127.0.0.1:9091'}")
    settings = parse_serve(["-adminpwd", "x", "-cfgdir", str(cfg)], environ={})
    assert (settings.metrics_enabled, settings.metrics_addr) == (True, "127.0.0.1:9091")
    env = {"SIMPLE_REGISTRY_METRICSADDR": "127.0.0.1:9092"}
    settings = parse_serve(["-adminpwd", "x", "-cfgdir", str(cfg)], environ=env)
    assert settings.metrics_addr == "127.0.0.1:9092"
    settings = parse_serve(
        ["-adminpwd", "x", "-cfgdir", str(cfg), "-metricsaddr", "[::1]:9093"], environ=env
    )
    assert settings.metrics_addr == "[::1]:9093"
    assert parse_serve(["-adminpwd", "x"], environ={}).metrics_addr is None
    for number, (bad, message) in enumerate(
        [
            ("{port: 9090}", "spec.metrics.port: unknown field (expected one of: enabled, addr)"),
            ("{enabled: 'no'}", "spec.metrics.enabled: expected a boolean, got a string"),
            ("{enabled: false, addr: '127.0.0.1:1'}", "spec.metrics.enabled is false"),
            ("{addr: 'nowhere'}", "-metricsaddr must be HOST:PORT"),
        ]
    ):
        cfg = _configuration(tmp_path / f"bad{number}", bad)
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_serve(["-adminpwd", "x", "-cfgdir", str(cfg)], environ={})


def test_metrics_can_be_turned_off(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    server = start_registry("-cfgdir", str(_configuration(tmp_path / "cfg", "{enabled: false}")))
    with server.client() as http:
        assert http.get("/metrics").status_code == 404
        assert http.get("/readyz").status_code == 200


def test_a_taken_metrics_address_is_a_clear_error(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    taken = start_registry()
    result = subprocess.run(
        [sys.executable, "-m", "registry", "serve", "-adminpwd", "x", "-addr", "127.0.0.1:0",
         "-datadir", str(tmp_path / "d"), "-metricsaddr", taken.host],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"cannot listen on {taken.host} (-metricsaddr)" in result.stderr
    assert "Traceback" not in result.stderr
