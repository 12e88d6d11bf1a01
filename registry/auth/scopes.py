"""What a request needs, in the Docker token specification's vocabulary.

Every handler states its need as a `Scope` (`repository:<name>:pull`), so the same words serve
the Basic check now, and the token service and RBAC later, without touching the handlers.
"""

from __future__ import annotations

from dataclasses import dataclass

PULL, PUSH, DELETE = "pull", "push", "delete"


@dataclass(frozen=True, slots=True)
class Scope:
    type: str  # "repository" or "registry"
    name: str  # repository name, or "catalog"
    action: str  # pull | push | delete | *

    @classmethod
    def repository(cls, name: str, action: str) -> Scope:
        return cls("repository", name, action)

    @classmethod
    def catalog(cls) -> Scope:
        return cls("registry", "catalog", "*")

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{self.action}"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    anonymous: bool = False


ANONYMOUS = Principal("anonymous", anonymous=True)
