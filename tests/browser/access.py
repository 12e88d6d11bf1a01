"""Who the browser tests sign in as, and the RBAC manifests that say what each may do.

Three identities, so that every permission the web UI asks the registry about has a "yes"
and a "no" to show: an administrator (everything), a reader (pulls and the catalog, but not
the `private/` area and no deletes) and anonymous visitors (pulls of `public/*` and the
catalog, which then lists only those). The admin is a User manifest, not the `-adminpwd`
bootstrap account, so that the whole policy is in one cfgdir, as an operator would write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bcrypt

from tests.manifests import manifest_doc


@dataclass(frozen=True)
class Account:
    name: str
    password: str


ADMIN = Account("admin", "admin-Pa55-for-the-ui")
READER = Account("reader", "reader-Pa55-for-the-ui")

# The reader's scope: every repository (and the catalog, the empty name) except private/.
NOT_PRIVATE = "^(?!private/)"
PUBLIC = "^public/"


def _hash(password: str) -> str:
    # Four rounds: the tests sign in often, and the hash's strength is not what they test.
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def _binding(name: str, group: str, role: str, scopes: list[str]) -> str:
    subjects = [{"kind": "Group", "name": group}]
    return manifest_doc(
        "RoleBinding", name, {"subjects": subjects, "roleRef": {"name": role}, "scopes": scopes}
    )


def _user(account: Account, group: str) -> str:
    spec = {"passwordHash": _hash(account.password), "groups": [group]}
    return manifest_doc("User", account.name, spec)


def manifests() -> str:
    pull = {"resources": ["catalog", "tags", "manifests", "blobs"], "verbs": ["pull"]}
    docs = [
        _user(ADMIN, "admins"),
        _user(READER, "readers"),
        manifest_doc("User", "anonymous", {"groups": ["guests"]}),
        manifest_doc("Role", "everything", {"resources": ["*"], "verbs": ["*"]}),
        manifest_doc("Role", "pull", pull),
        _binding("admins-everything", "admins", "everything", ["^.*$"]),
        _binding("readers-pull-all-but-private", "readers", "pull", [NOT_PRIVATE]),
        _binding("guests-pull-public", "guests", "pull", [PUBLIC, "^$"]),
    ]
    return "\n---\n".join(docs) + "\n"


def write_cfgdir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rbac.yaml").write_text(manifests())
    return folder
