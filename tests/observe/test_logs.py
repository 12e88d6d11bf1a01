"""Logs: one JSON object per line with the documented fields, request ids accepted or made,
the client address behind a trusted proxy, a text format and a level, and never a credential."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from registry.config.flags import parse_serve
from registry.config.log_names import default_format
from registry.config.settings import ConfigError
from registry.observe.logs import JsonFormatter, TextFormatter
from tests.observe.helpers import log_records
from tests.oci import push_image
from tests.server import RunningRegistry, start

ADMIN_PASSWORD = "Adm1n-Pa55-never-in-logs"
WRONG_PASSWORD = "Wr0ng-Pa55-never-in-logs"
ROBOT_TOKEN = "robot-token-never-in-logs-0123456789"
TOKEN_SECRET = "token-secret-never-in-logs-0123456789abcdef"
ACCESS_FIELDS = {
    "timestamp", "level", "logger", "message", "pid", "request_id", "route", "method", "path",
    "status", "duration_seconds", "bytes_received", "bytes_sent", "client", "user",
}  # fmt: skip


def _robot_manifests(directory: Path) -> Path:
    directory.mkdir()
    digest = hashlib.sha256(ROBOT_TOKEN.encode()).hexdigest()
    (directory / "robot.yaml").write_text(
        f"""apiVersion: simple-registry.dev/v1
kind: User
metadata: {{name: robot}}
---
apiVersion: simple-registry.dev/v1
kind: Token
metadata: {{name: robot-token}}
spec: {{username: robot, valueSha256: {digest}}}
---
apiVersion: simple-registry.dev/v1
kind: Role
metadata: {{name: everything}}
spec: {{resources: ["*"], verbs: ["*"]}}
---
apiVersion: simple-registry.dev/v1
kind: RoleBinding
metadata: {{name: robot-logs}}
spec:
  subjects: [{{kind: User, name: robot}}]
  roleRef: {{name: everything}}
  scopes: ["^logs/"]
"""
    )
    return directory


def test_json_lines_with_every_field_and_no_secret(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    server = start_registry(
        "-cfgdir", str(_robot_manifests(tmp_path / "cfg")),
        "-tokensecret", TOKEN_SECRET,
        "-trustforwarded",
        password=ADMIN_PASSWORD,
    )  # fmt: skip
    secrets = [ADMIN_PASSWORD, WRONG_PASSWORD, ROBOT_TOKEN, TOKEN_SECRET]
    secrets.append(base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode())
    with server.client() as admin:
        push_image(admin, "logs/app", "v1")
        r = admin.get("/v2/", headers={"X-Request-Id": "client-chosen.id:42"})
        assert r.headers["X-Request-Id"] == "client-chosen.id:42"
        r = admin.get("/v2/", headers={"X-Request-Id": "not safe; has spaces"})
        generated = r.headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        r = admin.get("/v2/", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7"})
        forwarded_id = r.headers["X-Request-Id"]
        admin.get("/v2/_catalog", params={"n": "1", "last": "secret-in-the-query"})
        issued = admin.get(
            "/token", params={"scope": "repository:logs/app:pull", "offline_token": "true"}
        ).json()
        jwt, refresh = issued["token"], issued["refresh_token"]
        secrets += [jwt, refresh, jwt.rsplit(".", 1)[1]]
        form = {"grant_type": "refresh_token", "refresh_token": refresh, "service": server.host}
        # auth=None: this request without the client's credentials (httpx's types omit it)
        refreshed = admin.post("/token", data=form, auth=None)  # type: ignore[arg-type]
        assert refreshed.status_code == 200, refreshed.text
        secrets.append(refreshed.json()["token"])
        form = {"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD}
        answer = admin.post("/token", data=form, auth=None)  # type: ignore[arg-type]
        assert answer.status_code == 200
    with server.client(auth=False) as http:
        assert http.get("/v2/", auth=("admin", WRONG_PASSWORD)).status_code == 401
        bearer = {"Authorization": f"Bearer {ROBOT_TOKEN}"}
        assert http.get("/v2/logs/app/tags/list", headers=bearer).status_code == 200
        assert http.get("/v2/logs/app/tags/list", auth=("robot", ROBOT_TOKEN)).status_code == 200
        bearer = {"Authorization": f"Bearer {jwt}"}
        assert http.get("/v2/logs/app/manifests/v1", headers=bearer).status_code == 200
    server.stop()

    records = log_records(server)  # every line parses as one JSON object
    for record in records:
        assert {"timestamp", "level", "logger", "message", "pid"} <= set(record)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["timestamp"])
        assert record["level"] in ("debug", "info", "warning", "error")
    access = [r for r in records if r["logger"] == "registry.access"]
    assert len(access) >= 12
    for record in access:
        assert set(record) >= ACCESS_FIELDS, record
        assert "?" not in record["path"] and "?" not in record["message"]
        assert isinstance(record["duration_seconds"], float)
    by_id = {r["request_id"]: r for r in access}
    chosen = by_id["client-chosen.id:42"]
    assert (chosen["route"], chosen["method"], chosen["path"]) == ("base", "GET", "/v2/")
    assert (chosen["status"], chosen["user"], chosen["client"]) == (200, "admin", "127.0.0.1")
    assert chosen["message"] == "GET /v2/ 200"
    assert chosen["user_agent"].startswith("python-httpx/")
    assert by_id[generated]["route"] == "base"
    assert by_id[forwarded_id]["client"] == "198.51.100.7"  # what the trusted proxy appended
    uploads = [r for r in access if r["route"] == "upload_start" and r["status"] == 201]
    assert uploads and all(r["bytes_received"] > 0 for r in uploads)  # monolithic pushes
    pulls = [r for r in access if r["route"] == "manifest" and r["method"] == "GET"]
    assert pulls and pulls[-1]["bytes_sent"] > 0 and pulls[-1]["user"] == "admin"
    refused = [r for r in access if r["status"] == 401]
    assert refused and all(r["user"] is None for r in refused)
    assert {r["user"] for r in access if r["route"] == "tags"} == {"robot"}
    tokens = [r for r in access if r["route"] == "token"]
    assert len(tokens) == 3 and {r["method"] for r in tokens} == {"GET", "POST"}

    everything = "".join(server.output)
    for secret in secrets:
        assert secret not in everything
    assert "secret-in-the-query" not in everything
    assert "authorization" not in everything.lower()


def test_text_format_and_level(tmp_path: Path) -> None:
    env = {"SIMPLE_REGISTRY_LOGFORMAT": "text"}
    server = start(tmp_path / "data", env=env)
    with server.client() as http:
        assert http.get("/v2/").status_code == 200
        assert http.get("/v2/x%0A2030-01-01T00:00:00.000Z INFO forged/tags/list").status_code
    server.stop()
    lines = "".join(server.output).splitlines()
    assert lines and not any(line.startswith("{") for line in lines)
    assert any(
        " INFO    registry.server.announce: simple-registry listening on " in line for line in lines
    )
    access = [line for line in lines if "registry.access:" in line]
    assert any(" GET /v2/ 200 request_id=" in line and " route=base " in line for line in access)
    assert any("\\x0a" in line for line in access)  # escaped: one line per record
    assert not any(line.startswith("2030-") for line in lines)

    server = start(tmp_path / "quiet", "-loglevel", "warning", env=env)
    with server.client() as http:
        assert http.get("/v2/").status_code == 200
    server.stop()
    lines = "".join(server.output).splitlines()
    assert any("simple-registry listening on" in line for line in lines)  # always shown
    assert not any("registry.access" in line for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-loglevel", "loud"], "-loglevel must be one of debug, info, warning, error"),
        (["-logformat", "xml"], "-logformat must be json or text"),
        (["-metricsaddr", "nowhere"], "-metricsaddr must be HOST:PORT"),
    ],
)
def test_bad_log_and_metrics_flags(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_serve(["-adminpwd", "x", *args], environ={})


def test_log_flags_variables_and_default() -> None:
    settings = parse_serve(["-adminpwd", "x"], environ={})
    assert (settings.log_level, settings.log_format) == ("info", default_format())
    env = {"SIMPLE_REGISTRY_LOGLEVEL": "DEBUG", "SIMPLE_REGISTRY_LOGFORMAT": "text"}
    settings = parse_serve(["-adminpwd", "x"], environ=env)
    assert (settings.log_level, settings.log_format) == ("debug", "text")
    settings = parse_serve(["-adminpwd", "x", "-loglevel", "error"], environ=env)
    assert settings.log_level == "error"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_default_format_is_text_on_a_terminal() -> None:
    assert default_format(_Terminal()) == "text"
    assert default_format(io.StringIO()) == "json"


def test_formatters_keep_one_record_per_line() -> None:
    record = logging.LogRecord("registry.test", logging.WARNING, __file__, 1, "a\nb", None, None)
    record.fields = {"path": "/x y\nz", "status": 200}
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter().format(record))
    assert parsed["message"] == "a\nb" and parsed["path"] == "/x y\nz" and parsed["status"] == 200
    assert "ValueError: boom" in parsed["exception"]
    record.exc_info = None
    text = TextFormatter().format(record)
    assert 'path="/x y\\nz" status=200' in text
