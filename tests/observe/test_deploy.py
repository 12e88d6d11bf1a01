"""The alerting rules, the dashboard and docs/operations.md name only metrics that exist:
each metric they use is exported by a running registry or documented as exported by the GC
job, and every metric the registry exports is documented. So none of them can drift."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observe.helpers import readiness, scrape
from tests.oci import push_image
from tests.server import RunningRegistry

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\bregistry_[a-z0-9_]+\b")
SERIES_SUFFIXES = ("_bucket", "_sum", "_count")


def _base(name: str) -> str:
    """A histogram's series name without its `_bucket`, `_sum` or `_count`."""
    for suffix in SERIES_SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix).endswith("_seconds"):
            return name.removesuffix(suffix)
    return name


def _documented() -> dict[str, str]:
    """Metric name -> type, from the tables of docs/operations.md."""
    documented = {}
    for line in (ROOT / "docs" / "operations.md").read_text().splitlines():
        match = re.match(r"\| `(registry_[a-z0-9_]+)`[^|]*\| (counter|gauge|histogram) \|", line)
        if match:
            documented[match.group(1)] = match.group(2)
    return documented


def _strings(node: Any, key: str) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and isinstance(v, str):
                yield v
            else:
                yield from _strings(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, key)


def _alerts() -> list[dict[str, Any]]:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def _used_by_alerts() -> set[str]:
    return {_base(m) for rule in _alerts() for m in METRIC.findall(rule["expr"])}


def _used_by_dashboard() -> set[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "registry-dashboard.json").read_text())
    queries = [*_strings(dashboard["panels"], "expr"), *_strings(dashboard["templating"], "query")]
    assert queries
    return {_base(m) for query in queries for m in METRIC.findall(query)}


def test_alert_rules_are_well_formed() -> None:
    alerts = _alerts()
    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names))
    for rule in alerts:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
    covered = " ".join(rule["expr"] for rule in alerts)
    for needed in (
        'registry_http_requests_total{code=~"5.."}',  # error rate
        "histogram_quantile(0.99",  # latency
        "registry_ready",  # readiness
        "registry_storage_errors_total",  # storage errors
        "registry_gc_success) == 0",  # GC failures
        "registry_gc_last_success_timestamp_seconds",  # no success
        "registry_gc_last_run_timestamp_seconds",  # no run
    ):
        assert needed in covered
    documented = (ROOT / "docs" / "operations.md").read_text()
    for name in names:
        assert f"`{name}`" in documented, f"alert {name} is not in docs/operations.md"
    scrape_config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert scrape_config["rule_files"] == ["alerts.yml"]
    assert all(
        job["job_name"].startswith("simple-registry") for job in scrape_config["scrape_configs"]
    )


def test_dashboard_is_importable_json() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "registry-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]


def test_deploy_files_and_docs_name_only_real_metrics(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    server = start_registry()
    with server.client() as http:  # enough traffic for every labelled metric to have a series
        push_image(http, "drift/app", "v1")
        assert http.get("/v2/drift/app/manifests/v1").status_code == 200
        assert http.get("/v2/").status_code == 200
    assert readiness(server)[0] == 200
    exported = {_base(name) for name in scrape(server).families}

    documented = _documented()
    assert exported <= set(documented), f"exported but not documented: {exported - set(documented)}"
    job_metrics = {name for name in documented if name.startswith("registry_gc_")}
    # Labelled by cache: a registry without a pull-through cache has none of them to export
    # (tests/proxy/test_cache.py scrapes them from one that has).
    cache_metrics = {name for name in documented if name.startswith("registry_proxy_")}
    assert set(documented) - exported == job_metrics | cache_metrics, (
        "documented but neither exported nor GC's or a cache's"
    )
    for name, kind in documented.items():
        assert kind != "counter" or name.endswith("_total"), name
        assert kind != "histogram" or name.endswith("_seconds"), name

    used = _used_by_alerts() | _used_by_dashboard()
    assert used <= set(documented), f"used but not documented: {used - set(documented)}"
    assert used - job_metrics - cache_metrics <= exported
    dashboard = _used_by_dashboard()
    assert dashboard - cache_metrics == exported, "the dashboard should show every metric"
    assert cache_metrics <= dashboard, "and every pull-through cache metric"


def test_alert_rules_pass_promtool() -> None:
    """Prometheus's own checker parses every expression (Debian's `prometheus` package)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", "rules", str(ROOT / "deploy" / "prometheus" / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
