"""What a request needs, in the words of both access models we speak.

A handler states one `Need` per check: the RBAC manifests' vocabulary (a resource, a
repository, an HTTP verb, maybe a tag) from which the Docker token vocabulary (`repository:
<name>:pull`) is derived. The same statement thus serves Basic credentials checked against
RBAC and bearer tokens checked against their `access` claim, without handlers knowing which.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.auth.tokens import Access

PULL, PUSH, DELETE = "pull", "push", "delete"


@dataclass(frozen=True, slots=True)
class Need:
    resource: str  # "catalog", "tags", "blobs" or "manifests"
    name: str  # the repository; "" for the catalog
    verb: str  # HEAD, GET, POST, PUT, PATCH or DELETE (a role's GET also allows HEAD)
    tag: str | None = None

    @classmethod
    def catalog(cls) -> Need:
        return cls("catalog", "", "GET")

    @classmethod
    def read(cls, resource: str, name: str, tag: str | None = None, verb: str = "GET") -> Need:
        return cls(resource, name, verb, tag)

    @property
    def action(self) -> str:
        if self.verb in ("GET", "HEAD"):
            return PULL
        if self.verb == "DELETE":
            return DELETE
        return PUSH

    @property
    def token_type(self) -> str:
        return "registry" if self.resource == "catalog" else "repository"

    @property
    def token_name(self) -> str:
        return "catalog" if self.resource == "catalog" else self.name

    @property
    def token_scope(self) -> str:
        """The scope a `WWW-Authenticate` challenge asks the client to get a token for.

        A write asks for `pull,push`, as Distribution does: clients take one token from the
        first challenge of a push and use it for every request of it, including the reads
        (blob HEADs, reading the manifest back), so a `push`-only token would fail halfway.
        Deletes ask for `delete` alone, as in Distribution.
        """
        if self.resource == "catalog":
            return "registry:catalog:*"
        actions = f"{PULL},{PUSH}" if self.action == PUSH else self.action
        return f"repository:{self.name}:{actions}"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    anonymous: bool = False
    # For a bearer JWT: the `access` claim, which narrows what RBAC grants. None otherwise.
    access: tuple[Access, ...] | None = None


ANONYMOUS = Principal("anonymous", anonymous=True)
