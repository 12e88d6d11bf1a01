"""Rendering the Helm chart with the real Helm engine (Helm v4's Go library, through
helm-python-sdk), in-process, and reading what it rendered as Kubernetes objects."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "simple-registry"
CI_VALUES = CHART / "ci"
FAILURES = Path(__file__).resolve().parent / "chart_failures"
RELEASE = "reg"
NAMESPACE = "registry"
FULLNAME = f"{RELEASE}-simple-registry"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion); objects are checked
# against its API schemas, which newer versions keep accepting.
KUBE_VERSION = "1.30.0"
# Custom resources that kubernetes-validate has no schema for; the tests check their shape.
CUSTOM_KINDS = frozenset({"ServiceMonitor", "PrometheusRule"})

Obj = dict[str, Any]


def load_chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def ci_values(case: str) -> dict[str, Any]:
    loaded = yaml.safe_load((CI_VALUES / f"{case}-values.yaml").read_text())
    return dict(loaded or {})


def ci_cases() -> list[str]:
    return sorted(p.name.removesuffix("-values.yaml") for p in CI_VALUES.glob("*-values.yaml"))


class Rendered:
    """The objects of one render, and NOTES.txt."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = dict(files)
        self.notes = next((text for name, text in files.items() if name.endswith("NOTES.txt")), "")
        self.objects: list[Obj] = [
            doc
            for name, text in sorted(files.items())
            if not name.endswith(".txt")
            for doc in yaml.safe_load_all(text)
            if doc
        ]

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    def all(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def maybe(self, kind: str, name: str = FULLNAME) -> Obj | None:
        return next((o for o in self.all(kind) if o["metadata"]["name"] == name), None)

    def one(self, kind: str, name: str = FULLNAME) -> Obj:
        found = self.maybe(kind, name)
        assert found is not None, f"no {kind} {name} among {self.kinds()}"
        return found

    def pod_spec(self, kind: str) -> Obj:
        if kind == "CronJob":
            spec: Obj = self.one("CronJob", f"{FULLNAME}-gc")["spec"]["jobTemplate"]["spec"]
            return dict(spec["template"]["spec"])
        return dict(self.one(kind)["spec"]["template"]["spec"])

    def template_file(self, name: str) -> str:
        return self.files[f"simple-registry/templates/{name}"]


def render(
    values: Mapping[str, Any] | None = None, *, chart: helm_python.Chart | None = None
) -> Rendered:
    """Render as `helm template reg chart -n registry -f values` would."""
    owned = chart is None
    loaded = chart or load_chart()
    try:
        return Rendered(loaded.render(values=dict(values or {}), name=RELEASE, namespace=NAMESPACE))
    finally:
        if owned:
            loaded.close()


def validate(obj: Obj) -> None:
    """Kubernetes' own OpenAPI schema of the object's kind, strictly (no unknown fields)."""
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def walk_strings(node: object) -> Iterator[str]:
    """Every string (keys too) anywhere in a parsed object."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)
