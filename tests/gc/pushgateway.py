"""A real Prometheus Pushgateway (Debian's `prometheus-pushgateway`) on a free loopback port,
and what it holds of the garbage collector's job."""

from __future__ import annotations

import http.client
import shutil
import subprocess

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.backends.process import ServerProcess

JOB = "registry_gc"


class Pushgateway(ServerProcess):
    what = "prometheus-pushgateway"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("prometheus-pushgateway")
        assert binary is not None, (
            "prometheus-pushgateway is not installed (scripts/test installs it)"
        )
        log = self.dir / "pushgateway.log"
        with log.open("ab") as out:
            self._proc = subprocess.Popen(
                [binary, f"--web.listen-address=127.0.0.1:{self.port}"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready(log)

    def answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            connection.request("GET", "/-/ready")
            return connection.getresponse().status == 200
        finally:
            connection.close()

    def samples(self, store: str) -> dict[str, float]:
        """The job's `registry_gc_*` samples of one store (its grouping label), by name."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        found: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if (
                    sample.name.startswith("registry_gc_")
                    and labels.get("job") == JOB
                    and labels.get("store") == store
                ):
                    found[sample.name] = sample.value
        return found


__all__ = ["Pushgateway"]
