"""The users and grants the flags define, added to those of the manifests.

`-adminpwd` (or its file or variable) defines a user with every right on every repository, in
both modes: alone it is the embedded default, next to `-cfgdir` it is a bootstrap account.
`-anonymous` (only without manifests) gives everyone every right, for a throwaway registry.
"""

from __future__ import annotations

import re
from dataclasses import replace

import bcrypt

from registry.config.model import Manifests, Role, RoleBinding, Subject, User
from registry.config.settings import ConfigError

_EVERYTHING = Role("simple-registry:everything", frozenset({"*"}), frozenset({"*"}))
_ALL_REPOSITORIES = (re.compile(""),)


def with_flag_users(
    manifests: Manifests, admin_name: str, admin_password: str | None, anonymous: bool
) -> Manifests:
    users, bindings = list(manifests.users), list(manifests.bindings)
    if admin_password is not None:
        if any(user.name == admin_name for user in users):
            raise ConfigError(
                f"user {admin_name!r} is defined both by the admin flags and by a User manifest"
            )
        hashed = bcrypt.hashpw(admin_password.encode(), bcrypt.gensalt(rounds=10)).decode()
        users.append(User(admin_name, hashed, ("simple-registry:admins",)))
        bindings.append(
            RoleBinding(
                "simple-registry:admin",
                (Subject("User", admin_name),),
                _EVERYTHING.name,
                _ALL_REPOSITORIES,
            )
        )
    if anonymous:
        users.append(User("anonymous", None))
        bindings.append(
            RoleBinding(
                "simple-registry:anonymous",
                (Subject("User", "anonymous"),),
                _EVERYTHING.name,
                _ALL_REPOSITORIES,
            )
        )
    if len(bindings) == len(manifests.bindings):
        return manifests
    return replace(
        manifests,
        users=tuple(users),
        roles=(*manifests.roles, _EVERYTHING),
        bindings=tuple(bindings),
    )
