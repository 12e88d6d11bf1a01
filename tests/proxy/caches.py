"""Registries with pull-through caches in front of the test upstream (`conftest.Upstream`):
the manifests that declare them, and a server started with them."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from tests.server import RunningRegistry

HOST = "upstream.test"  # the `hosts` entry containerd's ?ns= names
READER = ("reader", "reader-pw")  # may pull only `up/granted/...`


@dataclass
class Cache:
    """One PullThroughCache: its name, local prefix and upstream settings."""

    url: str
    name: str = "up"
    prefix: str = "up/"
    ttl: str = "0s"
    max_stale: str = "1h"
    timeout: str = "5s"
    hosts: Sequence[str] = (HOST,)
    credentials: tuple[str, str] | None = None
    scopes: Sequence[str] | None = None
    allow_pushes: bool = False

    def document(self) -> dict[str, Any]:
        upstream: dict[str, Any] = {
            "url": self.url,
            "ttl": self.ttl,
            "maxStale": self.max_stale,
            "timeout": self.timeout,
            "hosts": list(self.hosts),
        }
        if self.credentials is not None:
            upstream["username"], upstream["password"] = self.credentials
        scopes = list(self.scopes) if self.scopes is not None else [f"^{self.prefix}.+$"]
        extra = {"allowPushes": True} if self.allow_pushes else {}
        return _doc(
            "PullThroughCache",
            self.name,
            {
                "upstream": upstream,
                "scopes": scopes,
                "prefix": self.prefix,
                **extra,
            },
        )


@dataclass
class Caching:
    """A registry started with caches, and a reader who may pull only `up/granted/...`."""

    server: RunningRegistry
    caches: list[Cache] = field(default_factory=list)


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "simple-registry.dev/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def write_config(
    folder: Path, caches: Sequence[Cache], anonymous_scopes: Sequence[str] = ()
) -> Path:
    """The manifests: the caches, and the reader with its binding (the admin comes from the
    server's -adminpwd). With `anonymous_scopes`, also the User `anonymous` (requests without
    credentials) with a pull binding for those scopes, as a public mirror has."""
    folder.mkdir(parents=True, exist_ok=True)
    password_hash = bcrypt.hashpw(READER[1].encode(), bcrypt.gensalt(rounds=4)).decode()
    docs = [
        *(cache.document() for cache in caches),
        _doc("User", READER[0], {"passwordHash": password_hash}),
        _doc("Role", "puller", {"resources": ["tags", "blobs", "manifests"], "verbs": ["GET"]}),
        _doc(
            "RoleBinding",
            "reader-granted",
            {
                "subjects": [{"kind": "User", "name": READER[0]}],
                "roleRef": {"name": "puller"},
                "scopes": ["^up/granted/"],
            },
        ),
    ]
    if anonymous_scopes:
        docs += [
            _doc("User", "anonymous", {}),
            _doc(
                "RoleBinding",
                "anonymous-pulls",
                {
                    "subjects": [{"kind": "User", "name": "anonymous"}],
                    "roleRef": {"name": "puller"},
                    "scopes": list(anonymous_scopes),
                },
            ),
        ]
    (folder / "caches.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs) + "\n")
    return folder


def start_caching(
    start_registry: Callable[..., RunningRegistry],
    folder: Path,
    caches: Sequence[Cache],
    *extra: str,
    anonymous_scopes: Sequence[str] = (),
) -> Caching:
    config = write_config(folder, caches, anonymous_scopes)
    server = start_registry("-cfgdir", str(config), *extra)
    return Caching(server, list(caches))
