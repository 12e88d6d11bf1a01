"""Flags > environment > YAML > defaults, and the token options around them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import pytest

from registry.config.flags import parse_serve
from registry.config.settings import ConfigError
from tests.server import listening_url

API = "simple-registry.dev/v1"


def _cfgdir(tmp_path: Path, web: dict[str, object], data_dir: str | None = None) -> Path:
    folder = tmp_path / "cfg"
    folder.mkdir(exist_ok=True)
    spec: dict[str, object] = {"web": web}
    if data_dir is not None:
        spec["dataDir"] = data_dir
    doc = {"apiVersion": API, "kind": "Configuration", "metadata": {"name": "main"}, "spec": spec}
    (folder / "config.yaml").write_text(json.dumps(doc))
    return folder


def test_yaml_beats_defaults(tmp_path: Path) -> None:
    cfg = _cfgdir(tmp_path, {"addr": "127.0.0.1:7001", "tokenTimeout": 120}, str(tmp_path / "y"))
    settings = parse_serve(["-cfgdir", str(cfg), "-adminpwd", "pw"], environ={})
    assert settings.addr == "127.0.0.1:7001"
    assert settings.datadir == tmp_path / "y"
    assert settings.token_lifetime == 120


def test_environment_beats_yaml(tmp_path: Path) -> None:
    cfg = _cfgdir(tmp_path, {"addr": "127.0.0.1:7001", "tokenTimeout": 120}, str(tmp_path / "y"))
    env = {
        "SIMPLE_REGISTRY_ADDR": "127.0.0.1:7002",
        "SIMPLE_REGISTRY_DATADIR": str(tmp_path / "e"),
        "SIMPLE_REGISTRY_TOKENTIMEOUT": "90",
    }
    settings = parse_serve(["-cfgdir", str(cfg), "-adminpwd", "pw"], environ=env)
    assert (settings.addr, settings.datadir, settings.token_lifetime) == (
        "127.0.0.1:7002",
        tmp_path / "e",
        90,
    )


def test_flags_beat_environment_and_yaml(tmp_path: Path) -> None:
    cfg = _cfgdir(tmp_path, {"addr": "127.0.0.1:7001", "tokenSecret": "from-yaml-0123456789"})
    env = {"SIMPLE_REGISTRY_ADDR": "127.0.0.1:7002", "SIMPLE_REGISTRY_TOKENSECRET": "from-env"}
    settings = parse_serve(
        [
            "-cfgdir",
            str(cfg),
            "-adminpwd",
            "pw",
            "-addr",
            "127.0.0.1:7003",
            "--tokensecret",
            "from-flag",
        ],
        environ=env,
    )
    assert settings.addr == "127.0.0.1:7003"
    assert settings.token_secret == b"from-flag"
    assert parse_serve(["-cfgdir", str(cfg), "-adminpwd", "pw"], environ={}).token_secret == (
        b"from-yaml-0123456789"
    )


def test_body_timeout_precedence(tmp_path: Path) -> None:
    assert parse_serve(["-adminpwd", "pw"], environ={}).body_timeout == 60
    cfg = _cfgdir(tmp_path, {"bodyTimeout": "1m30s"})
    argv = ["-cfgdir", str(cfg), "-adminpwd", "pw"]
    assert parse_serve(argv, environ={}).body_timeout == 90
    env = {"SIMPLE_REGISTRY_BODYTIMEOUT": "30"}
    assert parse_serve(argv, environ=env).body_timeout == 30
    assert parse_serve([*argv, "-bodytimeout", "0.5"], environ=env).body_timeout == 0.5


@pytest.mark.parametrize("value", ["0", "soon", "4000", "nan"])
def test_body_timeout_flag_errors(value: str) -> None:
    with pytest.raises(ConfigError, match="-bodytimeout"):
        parse_serve(["-adminpwd", "pw", "-bodytimeout", value], environ={})


def test_cfgdir_from_environment_is_a_comma_list(tmp_path: Path) -> None:
    first = _cfgdir(tmp_path, {"addr": "127.0.0.1:7001"})
    second = tmp_path / "more"
    second.mkdir()
    doc = {
        "apiVersion": API,
        "kind": "Configuration",
        "metadata": {"name": "later"},
        "spec": {"web": {"addr": "127.0.0.1:7009"}},
    }
    (second / "c.yaml").write_text(json.dumps(doc))
    settings = parse_serve(
        ["-adminpwd", "pw"], environ={"SIMPLE_REGISTRY_CFGDIR": f"{first},{second}"}
    )
    assert settings.cfgdirs == (first, second)
    assert settings.addr == "127.0.0.1:7009"  # later documents override earlier ones


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-adminpwd", "pw", "-tokentimeout", "30"], "at least 60"),
        (["-adminpwd", "pw", "-tokentimeout", "soon"], "whole seconds"),
        # Not ASCII digits, and beyond what int() takes: an error message, not a traceback.
        (["-adminpwd", "pw", "-tokentimeout", "\u00b2"], "whole seconds"),
        (["-adminpwd", "pw", "-tokentimeout", "9" * 5000], "whole seconds"),
        (["-adminpwd", "pw", "-addr", "127.0.0.1:\u00b2"], "HOST:PORT"),
        (["-adminpwd", "pw", "-tokensecret", ""], "empty"),
        (["-adminpwd", "pw", "-tokenkeyfile", "/nonexistent/key.pem"], "no such file"),
    ],
)
def test_token_option_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_serve(argv, environ={})


def test_seed_spelling_of_the_token_timeout_flag_works() -> None:
    assert parse_serve(["-adminpwd", "pw", "-toketimeout", "75"], environ={}).token_lifetime == 75


def test_admin_name_clash_with_a_user_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir()
    doc = {"apiVersion": API, "kind": "User", "metadata": {"name": "admin"}, "spec": {}}
    (folder / "u.yaml").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="both by the admin flags and by a User manifest"):
        parse_serve(["-cfgdir", str(folder), "-adminpwd", "pw"], environ={})


def test_anonymous_flag_is_refused_with_manifests(tmp_path: Path) -> None:
    folder = _cfgdir(tmp_path, {})
    with pytest.raises(ConfigError, match="define a User named anonymous"):
        parse_serve(["-cfgdir", str(folder), "-anonymous"], environ={})


def test_manifests_without_users_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no User"):
        parse_serve(["-cfgdir", str(_cfgdir(tmp_path, {}))], environ={})


@contextmanager
def _serving(tmp_path: Path, *args: str) -> Iterator[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLE_REGISTRY_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "registry",
            "serve",
            "-addr",
            "127.0.0.1:0",
            "-datadir",
            str(tmp_path / "data"),
            "-adminpwd",
            "pw",
            *args,
        ],
        env=base,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        for line in process.stderr:
            url = listening_url(line)
            if url:
                yield url
                return
        raise AssertionError("server did not start")
    finally:
        process.terminate()
        process.wait(timeout=30)


def _token(url: str, **headers: str) -> str:
    r = httpx.get(
        f"{url}/token", params={"scope": "repository:a:pull"}, auth=("admin", "pw"), headers=headers
    )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def test_ec_key_signs_es256_tokens(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)],
        check=True,
        capture_output=True,
    )
    with _serving(tmp_path, "-tokenkeyfile", str(key)) as url:
        token = _token(url)
        assert jwt.get_unverified_header(token)["alg"] == "ES256"
        r = httpx.get(f"{url}/v2/", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200


def test_generated_secret_is_private_and_survives_restarts(tmp_path: Path) -> None:
    # a fixed service name: the port (part of the default service) changes between runs
    with _serving(tmp_path, "-service", "registry.test") as url:
        token = _token(url)
    secret = tmp_path / "data" / "_secrets" / "token-secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    with _serving(tmp_path, "-service", "registry.test") as url:  # a restart keeps tokens valid
        r = httpx.get(f"{url}/v2/", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200


def test_forwarded_headers_only_when_trusted(tmp_path: Path) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com"}
    with _serving(tmp_path) as url:
        challenge = httpx.get(f"{url}/v2/", headers=forwarded).headers["WWW-Authenticate"]
        assert "registry.example.com" not in challenge
    with _serving(tmp_path, "-trustforwarded") as url:
        challenge = httpx.get(f"{url}/v2/", headers=forwarded).headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="https://registry.example.com/token"')
        assert 'service="registry.example.com"' in challenge


@pytest.mark.parametrize(
    ("web", "env", "flags", "expected"),
    [
        ({}, {}, [], False),
        ({"ui": True}, {}, [], True),
        ({}, {"SIMPLE_REGISTRY_UI": "true"}, [], True),
        ({"ui": True}, {"SIMPLE_REGISTRY_UI": "false"}, [], False),
        ({}, {"SIMPLE_REGISTRY_UI": "false"}, ["-ui"], True),
    ],
)
def test_the_web_ui_switch(
    tmp_path: Path, web: dict[str, object], env: dict[str, str], flags: list[str], expected: bool
) -> None:
    """`-ui`, `SIMPLE_REGISTRY_UI` and `spec.web.ui`, the seed's three switches, in the usual
    order of precedence."""
    cfg = _cfgdir(tmp_path, web)
    settings = parse_serve(["-cfgdir", str(cfg), "-adminpwd", "pw", *flags], environ=env)
    assert settings.ui is expected


def test_a_web_ui_variable_that_is_no_boolean_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a boolean: 'sure'"):
        parse_serve(["-adminpwd", "pw"], environ={"SIMPLE_REGISTRY_UI": "sure"})
