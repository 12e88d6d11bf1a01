"""Configuration manifests written by tests: one document of a kind, as an operator would."""

from __future__ import annotations

import json
from collections.abc import Mapping

API_VERSION = "simple-registry.dev/v1"


def manifest_doc(kind: str, name: str, spec: Mapping[str, object]) -> str:
    """One manifest; JSON is YAML, and keeps bcrypt hashes' `$` out of quoting trouble."""
    return json.dumps(
        {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
    )
