"""`simple-registry check-config`, run as a user would: a subprocess, its output and exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLE_REGISTRY_")}
    return subprocess.run(
        [sys.executable, "-m", "registry", "check-config", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("simple-registry: ")
    return lines[0]


def test_summary_of_the_examples() -> None:
    result = _run("-cfgdir", str(EXAMPLES))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("configuration is valid: 8 file(s)")
    for heading in ("users (5):", "roles (5):", "bindings (6):", "tokens (1):", "caches (1):"):
        assert f"\n{heading}\n" in out
    for name in (
        "alice",
        "anonymous",
        "ci-robot",
        "carol",
        "bob",
        "everything",
        "read-only",
        "admins-everything",
        "team-a-push",
        "ci-robot-token",
        "docker-hub",
    ):
        assert f"\n  {name}: " in out, name
    assert "warnings (0):\n  (none)" in out
    # Hashes of passwords and tokens are not shown.
    assert "$2b$" not in out
    assert "40ce44db4f3dfbd1a167725c9e4cbc031ec0f0e4bc5d51a3e117ffd3b3711ef5" not in out
    assert result.stderr == ""


def test_explain_anonymous_on_a_library_tag() -> None:
    result = _run("-cfgdir", str(EXAMPLES), "-explain", "anonymous", "library/alpine:3.20")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (
        'explain: user "anonymous" (groups: guests) on repository "library/alpine", tag "3.20"'
        in out
    )
    rows = {
        tuple(line.split()[:2]): line.split(None, 2)[2]
        for line in out.split("explain:", 1)[1].splitlines()[1:]
        if line.startswith("  ") and not line.startswith("  (")
    }
    assert len(rows) == 24
    assert rows["manifests", "GET"] == "allowed by guests-pull-library"
    assert rows["manifests", "HEAD"] == "allowed by guests-pull-library"
    assert rows["blobs", "GET"] == "allowed by guests-pull-library"
    assert rows["catalog", "GET"] == "allowed by guests-list-catalog"
    for verb in ("POST", "PUT", "PATCH", "DELETE"):
        for resource in ("catalog", "tags", "blobs", "manifests"):
            assert rows[resource, verb] == "denied"


def test_explain_lists_every_granting_binding() -> None:
    result = _run("-cfgdir", str(EXAMPLES), "-explain", "bob", "team-a/app")
    assert result.returncode == 0, result.stderr
    assert "  manifests  PUT     allowed by team-a-push\n" in result.stdout
    assert "  manifests  DELETE  denied\n" in result.stdout
    assert "  catalog    GET     allowed by guests-list-catalog\n" in result.stdout


def test_explain_an_unknown_user() -> None:
    result = _run("-cfgdir", str(EXAMPLES), "-explain", "mallory", "library/alpine")
    assert result.returncode == 0
    assert 'no User named "mallory": every request is denied' in result.stdout


def test_several_folders_and_the_environment(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "dave.yaml").write_text(
        "apiVersion: simple-registry.jlsalvador.online/v1beta1\nkind: User\n"
        "metadata: {name: dave}\nspec: {groups: [team-a]}\n"
    )
    by_flags = _run("-cfgdir", str(EXAMPLES), "--cfgdir", str(extra))
    by_env = _run(env={"SIMPLE_REGISTRY_CFGDIR": f"{EXAMPLES},{extra}"})
    for result in (by_flags, by_env):
        assert result.returncode == 0, result.stderr
        assert "users (6):" in result.stdout
        assert "\n  dave: groups [team-a]" in result.stdout


def test_caches_are_listed_in_routing_order(tmp_path: Path) -> None:
    head = "apiVersion: simple-registry.dev/v1\nkind: PullThroughCache\nmetadata: {name: %s}\n"
    (tmp_path / "c.yaml").write_text(
        head % "mirror"
        + "spec: {upstream: {url: 'https://m'}, scopes: ['^library/.+$']}\n---\n"
        + head % "hub"
        + "spec: {upstream: {url: 'https://h', hosts: [docker.io, registry-1.docker.io]}, "
        "scopes: ['^dockerhub/.+$'], prefix: dockerhub/}\n"
    )
    result = _run("-cfgdir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (
        "caches (2):\n"
        "  hub: https://h for ^dockerhub/.+$, prefix dockerhub/, "
        "hosts docker.io, registry-1.docker.io\n"
        "  mirror: https://m for ^library/.+$\n"
    ) in result.stdout


def test_secrets_are_not_printed(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "apiVersion: simple-registry.dev/v1\nkind: Configuration\nmetadata: {name: c}\n"
        "spec: {web: {tokenSecret: hush-hush-secret}}\n---\n"
        "apiVersion: simple-registry.dev/v1\nkind: User\nmetadata: {name: u}\n---\n"
        "apiVersion: simple-registry.dev/v1\nkind: Token\nmetadata: {name: t}\n"
        "spec: {username: u, value: plain-token-value}\n---\n"
        "apiVersion: simple-registry.dev/v1\nkind: PullThroughCache\nmetadata: {name: p}\n"
        "spec: {upstream: {url: 'https://up', username: me, password: upstream-pass}, "
        "scopes: ['^p/']}\n"
    )
    result = _run("-cfgdir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "web.tokenSecret: (set)" in result.stdout
    assert "spec.valueSha256" in result.stdout  # the warning about the plain token
    for secret in ("hush-hush-secret", "plain-token-value", "upstream-pass"):
        assert secret not in result.stdout + result.stderr


def test_the_summary_shows_each_option_set_as_declared(tmp_path: Path) -> None:
    """Every option a manifest sets is listed with its value, in the sections' own terms;
    those declared secret (S3 keys, a Redis URL that may hold a password) only as "(set)"."""
    (tmp_path / "c.yaml").write_text(
        "apiVersion: simple-registry.dev/v1\nkind: Configuration\nmetadata: {name: c}\n"
        "spec:\n"
        "  web: {tokenTimeout: 10m, bodyTimeout: 1500ms}\n"
        "  storage: {s3: {bucket: images, secretKey: s3-hush, maxAttempts: 5}}\n"
        "  redis: {url: 'redis://:redis-hush@r:6379/0', keyPrefix: a}\n"
        "  metrics: {enabled: false}\n"
        "  gc: {grace: 2h, untagged: true}\n"
    )
    result = _run("-cfgdir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for line in (
        "web.tokenTimeout: 600s",
        "web.bodyTimeout: 1.5s",
        "storage.s3.bucket: images",
        "storage.s3.secretKey: (set)",
        "storage.s3.maxAttempts: 5",
        "redis.url: (set)",
        "redis.keyPrefix: a",
        "metrics.enabled: false",
        "gc.grace: 7200s",
        "gc.untagged: true",
    ):
        assert f"\n  {line}\n" in result.stdout, line
    assert "hush" not in result.stdout + result.stderr


def test_a_missing_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    line = _one_line_error(_run("-cfgdir", str(tmp_path / "nope")))
    assert f"{tmp_path / 'nope'}: no such directory" in line


def test_an_invalid_manifest_is_one_line_naming_file_document_and_field(tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text(
        "apiVersion: simple-registry.dev/v1\nkind: User\nmetadata: {name: a}\n---\n"
        "apiVersion: simple-registry.dev/v1\nkind: User\nmetadata: {name: alice}\n"
        "spec: {groups: admins}\n"
    )
    line = _one_line_error(_run("-cfgdir", str(tmp_path), "-explain", "alice", "x"))
    assert line == (
        f'simple-registry: {tmp_path / "users.yaml"}, document 2 (User "alice"): spec.groups: '
        "expected a list of strings, got a string"
    )


def test_three_errors_in_three_files_are_all_reported_then_counted(tmp_path: Path) -> None:
    head = "apiVersion: simple-registry.dev/v1\nkind: {kind}\nmetadata: {{name: {name}}}\n"
    (tmp_path / "a.yaml").write_text(
        head.format(kind="User", name="alice") + "spec: {groups: admins}\n"
    )
    role = "spec: {resources: [tags], verbs: [GET]%s}\n"
    (tmp_path / "b.yaml").write_text(
        head.format(kind="Role", name="ok") + role % "" + "---\n"
        + head.format(kind="Role", name="r") + role % ", vrebs: []"
    )  # fmt: skip
    (tmp_path / "c.yaml").write_text(
        head.format(kind="Token", name="t") + f"spec: {{username: bob, valueSha256: {'a' * 64}}}\n"
    )
    result = _run("-cfgdir", str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f'simple-registry: {tmp_path / "a.yaml"}, document 1 (User "alice"): spec.groups: '
        "expected a list of strings, got a string",
        f'simple-registry: {tmp_path / "b.yaml"}, document 2 (Role "r"): spec.vrebs: '
        "unknown field (did you mean 'verbs'?)",
        f'simple-registry: {tmp_path / "c.yaml"}, document 1 (Token "t"): spec.username: '
        'no User named "bob"',
        "simple-registry: 3 configuration errors",
    ]


def test_no_folder_is_an_error() -> None:
    line = _one_line_error(_run())
    assert "check-config needs -cfgdir" in line


@pytest.mark.parametrize("args", [["-explain", "only-user"], ["-frobnicate"]])
def test_bad_flags_exit_2_without_traceback(args: list[str]) -> None:
    result = _run("-cfgdir", str(EXAMPLES), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "usage: simple-registry check-config" in result.stderr


def test_usage_names_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "registry", "-h"], capture_output=True, text=True, timeout=60
    )
    assert "check-config" in result.stdout
    help_text = _run("-h").stdout
    assert "-cfgdir" in help_text and "-explain" in help_text
