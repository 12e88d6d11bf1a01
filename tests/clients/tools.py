"""Running client binaries: skip when a tool is missing, fail with its whole output otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Generous bound for one client command; a hang is a failure, not something to wait out.
COMMAND_TIMEOUT = 180

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def require_binary(name: str) -> str:
    """The tool's path, or a clean skip naming the missing binary."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (not found on PATH)")
    return path


def require_root(tool: str) -> None:
    """Daemons that manage mounts and namespaces only run as root in this setup."""
    if os.geteuid() != 0:
        pytest.skip(f"{tool} needs root in these tests; running as uid {os.geteuid()}")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without proxy settings (traffic stays on loopback) plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: str | bytes | None = None,
    check: bool = True,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run a command; with `check`, a non-zero exit fails the test showing all its output."""
    data = input.encode() if isinstance(input, str) else input
    completed = subprocess.run(
        list(args),
        input=data,
        capture_output=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
        check=False,
    )
    result = subprocess.CompletedProcess(
        completed.args,
        completed.returncode,
        completed.stdout.decode(errors="replace"),
        completed.stderr.decode(errors="replace"),
    )
    if check and result.returncode != 0:
        raise AssertionError(describe(result))
    return result


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"command {' '.join(map(str, result.args))!r} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-8000:]}\n--- stderr ---\n{result.stderr[-8000:]}"
    )


@dataclass
class Skopeo:
    """skopeo with a private auth file, registries.conf and signature config for one test."""

    binary: str
    home: Path

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "registries.d").mkdir(exist_ok=True)
        (self.home / "registries.conf").write_text("")
        self.authfile = self.home / "auth.json"

    @property
    def env(self) -> dict[str, str]:
        return clean_env(
            {
                "REGISTRY_AUTH_FILE": str(self.authfile),
                "CONTAINERS_REGISTRIES_CONF": str(self.home / "registries.conf"),
                "DOCKER_CONFIG": str(self.home / "docker"),
                "TMPDIR": str(self.home),
            }
        )

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run([*self._base(), *args], env=self.env, input=input, check=check)

    def _base(self) -> list[str]:
        registries_d = str(self.home / "registries.d")
        return [self.binary, "--insecure-policy", "--registries.d", registries_d]

    def copy(self, source: str, dest: str, *flags: str) -> None:
        self("copy", "--retry-times", "0", *flags, source, dest)

    def inspect_raw(self, ref: str, *flags: str) -> bytes:
        """The manifest bytes exactly as the registry served them."""
        command = [*self._base(), "inspect", "--raw", "--retry-times", "0", *flags, ref]
        completed = subprocess.run(
            command, capture_output=True, env=self.env, timeout=COMMAND_TIMEOUT, check=False
        )
        if completed.returncode != 0:
            raise AssertionError(
                f"skopeo inspect --raw {ref} exited {completed.returncode}: "
                f"{completed.stderr.decode(errors='replace')}"
            )
        return completed.stdout

    def list_tags(self, ref: str, *flags: str) -> list[str]:
        doc: dict[str, Any] = json.loads(self("list-tags", *flags, ref).stdout)
        tags: list[str] = doc.get("Tags") or []
        return tags
