"""Reading what the registry exports: scraped metrics, access log lines, bounded polling."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.server import RunningRegistry

T = TypeVar("T")


@dataclass(frozen=True)
class Metrics:
    """One scrape: every sample, and the family names as the `# TYPE` lines give them."""

    samples: list[tuple[str, dict[str, str], float]]
    families: set[str]
    text: str

    @classmethod
    def parse(cls, text: str) -> Metrics:
        samples = []
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.append((sample.name, dict(sample.labels), float(sample.value)))
        families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
        return cls(samples, families, text)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels` (0 if none)."""
        return sum(
            value
            for sample, found, value in self.samples
            if sample == name and all(found.get(k) == v for k, v in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        return {
            found[label] for sample, found, _ in self.samples if sample == name and label in found
        }


def scrape(server: RunningRegistry, *, auth: bool = True) -> Metrics:
    """From the metrics address when the server has one, else from the main one."""
    if server.metrics_url is not None:
        response = httpx.get(server.metrics_url, timeout=30)
    else:
        with server.client(auth=auth) as http:
            response = http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Metrics.parse(response.text)


def eventually(probe: Callable[[], T | None], *, seconds: float = 30, what: str = "") -> T:
    """Ask `probe` until it returns something, within a bounded time (never a fixed wait)."""
    deadline = time.monotonic() + seconds
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def log_records(server: RunningRegistry) -> list[dict[str, Any]]:
    """Every line the server wrote so far, each parsed as one JSON object."""
    records = []
    for line in list(server.output):
        assert line.endswith("\n"), line
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


def access_records(server: RunningRegistry) -> list[dict[str, Any]]:
    return [r for r in log_records(server) if r["logger"] == "registry.access"]


def readiness(server: RunningRegistry) -> tuple[int, dict[str, Any]]:
    with server.client(auth=False) as http:
        r = http.get("/readyz")
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    return r.status_code, r.json()


def until_ready_status(server: RunningRegistry, status: int) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        code, body = readiness(server)
        return body if code == status else None

    return eventually(probe, what=f"/readyz answering {status}")
