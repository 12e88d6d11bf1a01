"""`simple-registry check-config`: validate the manifests, summarize them, explain a user's rights.

    simple-registry check-config -cfgdir DIR [-cfgdir DIR2] [-explain USER REPO[:TAG]]

The validation is `load_manifests`, the very one `serve` runs, and the explanation is the RBAC
rule the request path asks (`registry.auth.rbac`). A command, so it sits above both `config`
and `auth`: `config` stays the lowest layer and imports nothing of `auth`. Secrets (token
values, password hashes, token secrets, upstream passwords) are never printed: only whether
they are set.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from registry.auth.rbac import EXPLAINED_RESOURCES, EXPLAINED_VERBS, allowed
from registry.config import sections
from registry.config.manifests import UNUSED, load_manifests, manifest_files
from registry.config.model import Configuration, Manifests
from registry.config.serve_options import ServeOptions, WebOptions
from registry.config.settings import ConfigError
from registry.options import declared, shown
from registry.proxy.routing import in_order

ENV_CFGDIR = "SIMPLE_REGISTRY_CFGDIR"


def check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simple-registry check-config",
        description="Validate the YAML manifests of the -cfgdir folders as serve would, print "
        "a summary, and with -explain what USER may do on REPO. Exit 0 when valid, 2 otherwise. "
        f"Without -cfgdir, {ENV_CFGDIR} (a comma list) is used.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "-cfgdir",
        "--cfgdir",
        dest="cfgdir",
        metavar="DIR",
        action="append",
        help="folder of YAML manifests (repeatable)",
    )
    parser.add_argument(
        "-explain",
        "--explain",
        dest="explain",
        nargs=2,
        metavar=("USER", "REPO"),
        help="show, for each resource and verb, whether USER may act on REPO (REPO:TAG for a "
        "request by tag) and which bindings grant it",
    )
    return parser


def check_config(
    argv: Sequence[str], out: TextIO | None = None, environ: Mapping[str, str] | None = None
) -> int:
    """Run the command; `ConfigError` for an invalid configuration (the CLI prints it)."""
    stream = sys.stdout if out is None else out
    env = os.environ if environ is None else environ
    args = check_parser().parse_args(list(argv))
    if args.cfgdir:
        dirs = [Path(d) for d in args.cfgdir]
    else:
        dirs = [Path(d.strip()) for d in env.get(ENV_CFGDIR, "").split(",") if d.strip()]
    if not dirs:
        raise ConfigError(f"check-config needs -cfgdir DIR (or {ENV_CFGDIR})")
    manifests = load_manifests(dirs, env)
    files = manifest_files(dirs)
    stream.write(summary(manifests, dirs, len(files)))
    if args.explain:
        user, target = args.explain
        stream.write("\n" + explain(manifests, user, target))
    return 0


def _names(title: str, items: Sequence[str]) -> list[str]:
    lines = [f"{title} ({len(items)}):"]
    lines += [f"  {item}" for item in items] or ["  (none)"]
    return lines


# Where the loaded `Configuration` keeps an option whose name there differs from the option's.
_LOADED_NAMES = {
    "datadir": "data_dir",
    "token_lifetime": "token_timeout_seconds",
    "body_timeout": "body_timeout_seconds",
    "trust_forwarded": "trust_forwarded_headers",
}


def _configuration_lines(config: Configuration) -> list[str]:
    """Each option the manifests set, as its declaration says to show it (secrets as "(set)"),
    then the unused sections by their keys."""
    lines = []
    for prefix, model, loaded in (("", ServeOptions, config), ("web.", WebOptions, config.web)):
        for opt in declared(model):
            value = getattr(loaded, _LOADED_NAMES.get(opt.attr, opt.attr), None)
            if opt.yaml is not None and value is not None:
                lines.append(f"  {prefix}{opt.yaml}: {shown(opt, value)}")
    for path, section_model in sections.TYPED:
        section = sections.at_path(config.sections, path)
        for opt in declared(section_model):
            if opt.yaml is not None and section.get(opt.yaml) is not None:
                lines.append(f"  {path}.{opt.yaml}: {shown(opt, section[opt.yaml])}")
    lines += [
        f"  {name}: (keys: {', '.join(sorted(values)) or 'none'})"
        for name, values in sorted(config.sections.items())
        if name in UNUSED
    ]
    return lines


def summary(manifests: Manifests, dirs: Sequence[Path], file_count: int) -> str:
    """The human summary; names and facts only, never a secret."""
    folders = ", ".join(str(d) for d in dirs)
    lines = [f"configuration is valid: {file_count} file(s) in {folders}"]
    lines.append("configuration:")
    lines += _configuration_lines(manifests.configuration) or ["  (defaults)"]
    lines += _names(
        "users",
        [
            f"{user.name}: groups [{', '.join(user.groups)}], "
            f"password {'set' if user.password_hash else 'not set'}"
            + (" (unauthenticated access is on)" if user.name == "anonymous" else "")
            for user in manifests.users
        ],
    )
    lines += _names(
        "roles",
        [
            f"{role.name}: resources [{', '.join(sorted(role.resources))}], "
            f"verbs [{', '.join(sorted(role.verbs))}]"
            for role in manifests.roles
        ],
    )
    lines += _names(
        "bindings",
        [
            f"{binding.name}: "
            + ", ".join(f"{s.kind} {s.name}" for s in binding.subjects)
            + f" -> role {binding.role} on "
            + ", ".join(scope.pattern for scope in binding.scopes)
            for binding in manifests.bindings
        ],
    )
    lines += _names(
        "tokens",
        [
            f"{token.name}: user {token.username}, "
            + (
                f"expires {token.expires_at.isoformat()}"
                if token.expires_at is not None
                else "never expires"
            )
            for token in manifests.tokens
        ],
    )
    lines += _names(
        "caches",
        [
            f"{cache.name}: {cache.upstream.url} for "
            + ", ".join(scope.pattern for scope in cache.scopes)
            + (f", prefix {cache.prefix}" if cache.prefix else "")
            + (f", hosts {', '.join(cache.upstream.hosts)}" if cache.upstream.hosts else "")
            + (", with credentials" if cache.upstream.username else "")
            for cache in in_order(manifests.caches)  # the order routing tries them in
        ],
    )
    lines += _names("warnings", list(manifests.warnings))
    return "\n".join(lines) + "\n"


def explain(manifests: Manifests, user: str, target: str) -> str:
    """What `user` may do on `target` (`repo` or `repo:tag`), resource by resource."""
    repository, _, tag_text = target.partition(":")
    tag = tag_text or None
    found = next((u for u in manifests.users if u.name == user), None)
    about = f'repository "{repository}"' + (f', tag "{tag}"' if tag else "")
    if found is None:
        hint = (
            " (define a User named anonymous to allow unauthenticated access)"
            if user == "anonymous"
            else ""
        )
        return f'explain: no User named "{user}": every request is denied{hint}\n'
    groups = ", ".join(found.groups) or "none"
    lines = [f'explain: user "{user}" (groups: {groups}) on {about}']
    for resource in EXPLAINED_RESOURCES:
        for verb in EXPLAINED_VERBS:
            bindings = allowed(manifests, user, resource, repository, verb, tag)
            decision = f"allowed by {', '.join(bindings)}" if bindings else "denied"
            lines.append(f"  {resource:<10} {verb:<7} {decision}")
    lines.append('  (the catalog is checked against the repository "")')
    return "\n".join(lines) + "\n"


__all__ = ["check_config", "check_parser", "explain", "summary"]
