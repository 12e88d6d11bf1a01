"""compose.yaml cannot run here (no container engine), so check what can be checked by reading:
every setting it gives the registry is a real flag, and the topology is the scaled one."""

from __future__ import annotations

from pathlib import Path

import yaml

from registry.config.flags import ENV_PREFIX, serve_parser

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, dict[str, object]]:
    services: dict[str, dict[str, object]] = yaml.safe_load((ROOT / "compose.yaml").read_text())[
        "services"
    ]
    return services


def test_registry_environment_names_real_flags() -> None:
    flags = {ENV_PREFIX + a.dest.upper() for a in serve_parser()._actions if a.dest != "help"}
    registries = [s for name, s in _compose().items() if name.startswith("registry")]
    assert len(registries) >= 2
    for service in registries:
        env = service["environment"]
        names = env.keys() if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]  # type: ignore[attr-defined]
        ours = {n for n in names if n.startswith(ENV_PREFIX)}
        assert ours, service
        assert ours <= flags, ours - flags
        assert {ENV_PREFIX + "S3BUCKET", ENV_PREFIX + "REDISURL"} <= ours


def test_one_port_in_front_and_the_backing_services() -> None:
    services = _compose()
    assert {"redis", "minio"} <= set(services)
    published = [name for name, s in services.items() if s.get("ports")]
    assert published == ["proxy"]
