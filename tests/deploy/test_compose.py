"""compose.yaml: valid for compose itself, and what each service needs is there.

Debian's `docker-compose` (1.29, which reads the compose specification without a `version`)
validates the file against its schema and prints it resolved: variables substituted, the
`x-registry` anchor merged into each instance. The tests read that output, so they see what
compose would run. Nothing is started: the images are on registries this machine does not reach
(docs/image.md says how to run it where they are reachable).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from registry.config.flags import OPTION_MODELS, parse_serve
from registry.options import declared
from tests.clients.tools import describe, require_binary

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
PASSWORD = "compose-test-password"
# `serve` waits up to 30 s for its workers after SIGTERM.
SERVE_STOP_SECONDS = 30


def compose(*args: str, password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    """docker-compose on compose.yaml, without variables from this environment."""
    binary = require_binary("docker-compose")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "MINIO_", "REGISTRY_"))
    }
    if password is not None:
        env["REGISTRY_ADMIN_PASSWORD"] = password
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    result = compose("config")
    assert result.returncode == 0, describe(result)
    doc: dict[str, Any] = yaml.safe_load(result.stdout)
    return doc


def registry_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from this repository's Dockerfile."""
    return {name: spec for name, spec in doc["services"].items() if "build" in spec}


def waits_for(services: dict[str, dict[str, Any]], name: str) -> set[str]:
    """The services `name` is started after, directly or through another one."""
    found: set[str] = set()
    pending = [name]
    while pending:
        for other in services[pending.pop()].get("depends_on") or {}:
            if other not in found:
                found.add(other)
                pending.append(other)
    return found


def seconds(duration: str) -> float:
    """A compose duration (`35s`, `1m30s`) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"([0-9.]+)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def test_compose_validates_it() -> None:
    result = compose("config", "--quiet")
    assert result.returncode == 0, describe(result)


def test_the_admin_password_is_required() -> None:
    result = compose("config", "--quiet", password=None)
    assert result.returncode != 0
    assert "set REGISTRY_ADMIN_PASSWORD" in result.stderr, result.stderr


def test_compose_rejects_what_its_schema_does_not_know(tmp_path: Path) -> None:
    """The validation above can fail: an unknown key in a service is refused."""
    broken = COMPOSE_FILE.read_text().replace(
        "    restart: unless-stopped\n", "    restartt: unless-stopped\n", 1
    )
    copy = tmp_path / "compose.yaml"
    copy.write_text(broken)
    binary = require_binary("docker-compose")
    env = os.environ | {"REGISTRY_ADMIN_PASSWORD": PASSWORD}
    command = [binary, "--project-directory", str(ROOT), "-f", str(copy), "config", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert "restartt" in result.stderr, result.stderr


def test_registry_instances_have_their_settings(resolved: dict[str, Any]) -> None:
    """Each instance's command and variables are a valid `serve` configuration for the scaled
    mode, every SIMPLE_REGISTRY_ variable is one `serve` reads, and the S3 credentials are
    MinIO's."""
    services = resolved["services"]
    instances = registry_services(resolved)
    assert sorted(instances) == ["registry-1", "registry-2"]
    known = {d.env_name for model in OPTION_MODELS for d in declared(model) if d.env_name}
    for name, spec in instances.items():
        env: dict[str, str] = spec["environment"]
        unknown = {k for k in env if k.startswith("SIMPLE_REGISTRY_")} - known
        assert not unknown, f"{name}: variables serve does not read: {unknown}"
        assert spec["command"][0] == "serve", spec["command"]
        settings = parse_serve(spec["command"][1:], environ=env)
        assert settings.workers == 2
        assert settings.redis is not None and settings.s3 is not None, name
        assert env["SIMPLE_REGISTRY_ADMINPWD"] == PASSWORD
        assert env["SIMPLE_REGISTRY_TRUSTFORWARDED"] == "true"
        for url in (env["SIMPLE_REGISTRY_S3ENDPOINT"], env["SIMPLE_REGISTRY_REDISURL"]):
            host = urlsplit(url).hostname
            assert host in services, f"{name}: {url} names no service"
            assert host in waits_for(services, name), f"{name} does not wait for {host}"
        minio = services["minio"]["environment"]
        assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
        assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
        bucket = env["SIMPLE_REGISTRY_S3BUCKET"]
        assert f"local/{bucket}" in " ".join(services["createbucket"]["command"])
        assert spec["depends_on"]["createbucket"]["condition"] == "service_completed_successfully"
        assert spec["depends_on"]["redis"]["condition"] == "service_healthy"


def test_registry_instances_stop_and_store_as_the_image_expects(resolved: dict[str, Any]) -> None:
    volumes: list[str] = []
    for name, spec in registry_services(resolved).items():
        grace = seconds(spec["stop_grace_period"])
        assert grace > SERVE_STOP_SECONDS, f"{name}: stop_grace_period {grace} s"
        assert spec["init"] is True, name
        assert spec["build"]["context"] == str(ROOT)
        data = [v for v in spec["volumes"] if v.split(":")[1] == "/data"]
        assert len(data) == 1, f"{name}: {spec['volumes']}"
        volumes.append(data[0].split(":")[0])
    assert len(set(volumes)) == len(volumes), f"instances share a data volume: {volumes}"


def test_images_are_pinned(resolved: dict[str, Any]) -> None:
    """Every image pulled from a registry names a version, never `latest` or no tag."""
    for name, spec in resolved["services"].items():
        if "build" in spec:
            continue
        image: str = spec["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"[0-9]", tag), f"{name}: {image} is not pinned"


def test_the_proxy_sends_to_both_instances(resolved: dict[str, Any]) -> None:
    proxy = resolved["services"]["proxy"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in proxy["volumes"]}
    config = Path(mounts["/etc/nginx/nginx.conf"]).read_text()
    for name in registry_services(resolved):
        assert re.search(rf"server\s+{re.escape(name)}:5000\b", config), f"nginx lacks {name}"
    assert [p["published"] for p in proxy["ports"]] == [5000]
