"""The RBAC decision rule, as a pure function of the loaded manifests.

`allowed` answers "may USER do VERB on RESOURCE of REPOSITORY (maybe by TAG)?" with the names of
the bindings that grant it (empty: denied). It is what the request path asks (through
`Policy`) and what `check-config -explain` prints (registry/check_config.py). The manifests
are those of the Go simple-registry (jlsalvador/simple-registry), which this one loads; where
their meaning there was a trap, the rule here is the one users expect (docs/rbac.md):

- a role verb GET also allows HEAD;
- for a request by tag, the scopes are searched in the repository name and ALSO in
  `name:tag`, so `^team/app$` allows pulls by tag while patterns written for `name:tag`
  (`^team/app:v1\\.`) keep working;
- the registry actions `pull` / `push` / `delete` may be named as verbs, and `push` includes
  the GET/HEAD of blobs an upload needs (its status request).
"""

from __future__ import annotations

from registry.config.model import Manifests, Role

# What the request path checks, in the order `check-config -explain` shows them.
EXPLAINED_RESOURCES = ("catalog", "tags", "blobs", "manifests")
EXPLAINED_VERBS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

_READ = frozenset({"GET", "HEAD"})
_WRITE = frozenset({"POST", "PUT", "PATCH"})


def role_allows(role: Role, resource: str, verb: str) -> bool:
    """Whether the role lists the resource (or `*`) and a verb covering `verb`."""
    if resource not in role.resources and "*" not in role.resources:
        return False
    verbs = role.verbs
    if "*" in verbs or verb in verbs:
        return True
    if verb == "HEAD" and "GET" in verbs:  # a HEAD reads what a GET reads
        return True
    if "pull" in verbs and verb in _READ:
        return True
    if "push" in verbs and (verb in _WRITE or (resource == "blobs" and verb in _READ)):
        return True  # an upload's status GET is part of pushing
    return "delete" in verbs and verb == "DELETE"


def allowed(
    manifests: Manifests,
    user: str,
    resource: str,
    repository: str,
    verb: str,
    tag: str | None = None,
) -> list[str]:
    """Names of the bindings that let `user` do `verb` on `resource` of `repository`.

    `resource` is catalog, tags, blobs or manifests; `verb` an HTTP method (any case); for the
    catalog the repository is always "" and `tag` is ignored. An empty list means denied. The
    user must be defined; `anonymous` is defined only by a User manifest of that name.
    """
    found = next((u for u in manifests.users if u.name == user), None)
    if found is None:
        return []
    verb = verb.strip().upper()
    if resource == "catalog":
        repository, tag = "", None
    candidates = [repository] if tag is None else [repository, f"{repository}:{tag}"]
    roles: dict[str, Role] = {}
    for each in manifests.roles:
        roles.setdefault(each.name, each)
    granted: list[str] = []
    for binding in manifests.bindings:
        role = roles.get(binding.role)
        if role is None or not role_allows(role, resource, verb):
            continue
        if not any(
            (subject.kind == "User" and subject.name == user)
            or (subject.kind == "Group" and subject.name in found.groups)
            for subject in binding.subjects
        ):
            continue
        if not any(scope.search(text) for scope in binding.scopes for text in candidates):
            continue
        if binding.name not in granted:
            granted.append(binding.name)
    return granted


__all__ = ["EXPLAINED_RESOURCES", "EXPLAINED_VERBS", "allowed", "role_allows"]
