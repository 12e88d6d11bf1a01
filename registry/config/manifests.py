"""Load the YAML manifests of `-cfgdir` folders into `Manifests`, validating them strictly.

Every mistake has one message naming the file, the document number, the manifest when known,
and the field path, e.g.::

    config/users.yaml, document 2 (User "alice"): spec.groups: expected a list of strings, ...

Loading goes on after a mistake, so that one run reports them all (`ConfigErrors`): every
folder, every file, every document (up to its first mistake, or up to a YAML syntax error,
after which a file cannot be read further), every unknown field, and every reference, except
references to a manifest that is itself in error (its own message already says what is wrong).

Unlike the Go simple-registry whose manifests this one loads, nothing is silently ignored:
unknown fields, wrong types, missing folders, duplicate names, invalid regexes and dangling
references are all errors. Secrets (token values, passwords, password hashes) never appear in
a message.

The sections of a Configuration are options (`spec.web`, `spec.storage.s3`, `spec.redis`,
`spec.metrics`): their pydantic models validate them (`registry.options.validated`). The other
manifests (User, Role, RoleBinding, Token, PullThroughCache) are not options: no flag, no
default, no docs table comes from them. They are checked by `_Fields`, because most of their
rules are not a field's type but a step that needs the one before (a verb normalized before
`*` is checked alone, a regex compiled, a bcrypt hash or an RFC 3339 time parsed, a user's
name against Basic credentials) and their messages name list items (`spec.subjects[1].kind`)
and say what to do ("make one with: simple-registry genhash"); pydantic models would need a
custom validator and a translated message for nearly every field. The rules they share with
the options (a non-empty string, a duration, a secret from a file or variable) come from
`registry.options`, so they are written once.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import yaml

from registry.config import sections as typed_sections
from registry.config.caches import can_match_under, host_problem, prefix_problem
from registry.config.model import (
    ACTIONS,
    DEFAULT_MAX_STALE_SECONDS,
    HTTP_VERBS,
    RESOURCES,
    Configuration,
    Manifests,
    PullThroughCache,
    Role,
    RoleBinding,
    Source,
    StaticToken,
    Subject,
    Upstream,
    User,
    WebConfig,
)
from registry.config.serve_options import ServeOptions, WebOptions
from registry.config.settings import ConfigError, ConfigErrors
from registry.options import (
    DURATION_HINT,
    SecretSources,
    SectionError,
    describe_duration,
    seconds_of,
    text_problem,
    validated,
    yaml_keys,
)
from registry.options import type_name as _type_name
from registry.options import unknown_field as _unknown_field

API_VERSION = "simple-registry.dev/v1"
GO_API_VERSION = "simple-registry.jlsalvador.online/v1beta1"
API_VERSIONS = (API_VERSION, GO_API_VERSION)
KINDS = ("Configuration", "User", "Role", "RoleBinding", "PullThroughCache", "Token")
# Configuration sections kept as plain mappings until their features give them types.
SECTIONS = ("storage", "redis", "proxy", "gc", "metrics")
# Sections accepted but unused: each one given is ignored with a warning saying where its
# settings go instead, so that nobody believes a setting took effect.
UNUSED = {
    "proxy": "the pull-through cache is configured by PullThroughCache manifests "
    "(docs/pull-through-cache.md)",
}
ANONYMOUS = "anonymous"

_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]+))?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


# --------------------------------------------------------------------------- YAML parsing


def _construct_mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
    """A mapping constructor that refuses duplicate keys (PyYAML keeps the last silently)."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
    result: dict[Any, Any] = yaml.SafeLoader.construct_mapping(loader, node, deep=True)
    return result


def _make_loader() -> Any:
    base = yaml.SafeLoader
    # Timestamps stay strings: `expiresAt` is parsed (and checked for a time zone) by us.
    resolvers = {
        first: [(tag, rx) for tag, rx in entries if tag != "tag:yaml.org,2002:timestamp"]
        for first, entries in base.yaml_implicit_resolvers.items()
    }
    loader: Any = type("StrictLoader", (base,), {"yaml_implicit_resolvers": resolvers})
    loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
    return loader


_Loader = _make_loader()


def _documents(path: Path) -> Iterator[tuple[int, object]]:
    """(1-based document number, parsed document) for each document of a file, empty ones too."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    loader = _Loader(text)
    number = 0

    def malformed(exc: Any, document: int) -> ConfigError:
        return ConfigError(f"{path}, document {document}: malformed YAML: {_yaml_problem(exc)}")

    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
            except yaml.YAMLError as exc:
                raise malformed(exc, number + 1) from None
            number += 1
            try:
                document = loader.construct_document(node)
            except yaml.YAMLError as exc:
                raise malformed(exc, number) from None
            yield number, document
    finally:
        loader.dispose()


def _yaml_problem(exc: Any) -> str:
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(problem)


def manifest_files(dirs: Sequence[Path], errors: list[str] | None = None) -> list[Path]:
    """The `*.yaml` / `*.yml` files of each folder (not recursive), folder by folder, each
    folder's files in lexical order. A missing or unreadable folder is an error: raised, or
    added to `errors` when given (and the other folders are still read)."""
    files: list[Path] = []
    for directory in dirs:
        try:
            files += _folder_files(directory)
        except ConfigError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    return files


def _folder_files(directory: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        raise ConfigError(f"config directory {directory}: no such directory") from None
    except NotADirectoryError:
        raise ConfigError(f"config directory {directory}: not a directory") from None
    except OSError as exc:
        raise ConfigError(
            f"config directory {directory}: cannot read: {exc.strerror or exc}"
        ) from None
    files: list[Path] = []
    for entry in entries:
        if not entry.name.lower().endswith((".yaml", ".yml")):
            continue
        path = Path(directory) / entry.name
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if not is_dir:
            files.append(path)
    return files


# --------------------------------------------------------------------------- field access


@dataclass(frozen=True, slots=True)
class _At:
    """A document, for messages: `file, document N (Kind "name")`."""

    source: Source
    kind: str | None = None
    name: str | None = None
    # Where `note` puts mistakes that need not stop reading the document (unknown fields).
    errors: list[str] | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        where = f"{self.source.file}, document {self.source.document}"
        if self.kind and self.name is not None:
            return f'{where} ({self.kind} "{self.name}")'
        if self.kind:
            return f"{where} ({self.kind})"
        return where

    def fail(self, path: str, message: str) -> NoReturn:
        raise ConfigError(self.message(path, message))

    def note(self, path: str, message: str) -> None:
        """A mistake after which the document can still be read: kept, and loading goes on."""
        if self.errors is None:
            self.fail(path, message)
        self.errors.append(self.message(path, message))

    def message(self, path: str, message: str) -> str:
        return f"{self}: {path}: {message}" if path else f"{self}: {message}"


class _Fields:
    """A mapping in a document whose keys are checked against a closed list."""

    def __init__(
        self,
        at: _At,
        path: str,
        value: object,
        allowed: Sequence[str],
        hints: Mapping[str, str] | None = None,
    ) -> None:
        self.at = at
        self.path = path
        if not isinstance(value, dict):
            at.fail(path, f"expected a mapping, got {_type_name(value)}")
        # Unknown keys are never read, so each is reported and reading goes on.
        for key in value:
            if not isinstance(key, str):
                at.note(path, f"keys must be strings, got {_type_name(key)}")
            elif key not in allowed:
                hint = (hints or {}).get(key)
                at.note(self.sub_path(key), _unknown_field(key, allowed, hint))
        self.values: dict[str, object] = value

    def sub_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, message: str) -> NoReturn:
        self.at.fail(self.sub_path(key), message)

    def get(self, key: str, required: bool = False) -> object:
        """The value, or None when absent or null; a required one must be present."""
        value = self.values.get(key)
        if value is None and required:
            self.fail(key, "required field is missing")
        return value

    def has(self, key: str) -> bool:
        return self.values.get(key) is not None

    def mapping(
        self,
        key: str,
        allowed: Sequence[str],
        hints: Mapping[str, str] | None = None,
        required: bool = False,
    ) -> _Fields | None:
        value = self.get(key, required)
        if value is None:
            return None
        return _Fields(self.at, self.sub_path(key), value, allowed, hints)

    def text(self, key: str, required: bool = False) -> str | None:
        value = self.get(key, required)
        if value is None:
            return None
        problem = text_problem(value)
        if problem is not None:
            self.fail(key, problem)
        assert isinstance(value, str)
        return value

    def texts(self, key: str, required: bool = False) -> tuple[str, ...] | None:
        value = self.get(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            got = _type_name(value)
            if isinstance(value, list):
                bad = next(item for item in value if not isinstance(item, str))
                got = f"a list holding {_type_name(bad)}"
            self.fail(key, f"expected a list of strings, got {got}")
        for index, item in enumerate(value):
            if not item.strip():
                self.at.fail(f"{self.sub_path(key)}[{index}]", "must not be empty")
        if required and not value:
            self.fail(key, "must list at least one entry")
        return tuple(value)

    def flag(self, key: str) -> bool | None:
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {_type_name(value)}")
        assert isinstance(value, bool)
        return value

    def duration(self, key: str) -> float | None:
        value = self.get(key)
        if value is None:
            return None
        seconds = seconds_of(value)
        if seconds is None:
            self.fail(key, f"expected {DURATION_HINT}, got {describe_duration(value)}")
        return seconds

    def secret(self, key: str, environ: Mapping[str, str]) -> str | None:
        """`key`, `keyFile` or `keyEnv` (at most one): the secret itself, never shown."""
        sources = SecretSources(key)
        try:
            secret = sources.resolve(self.values, environ)
        except SectionError as problem:
            self.fail(problem.path, problem.message)
        for given in sources.keys:
            self.text(given)  # a value that is not text is reported as such
        return secret


def _regexes(fields: _Fields, key: str) -> tuple[re.Pattern[str], ...]:
    patterns = fields.texts(key, required=True)
    assert patterns is not None
    compiled = []
    for index, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            hint = " (Python regexes: write \\Z, not Go's \\z)" if "\\z" in pattern else ""
            fields.at.fail(f"{fields.sub_path(key)}[{index}]", f"invalid regex: {exc}{hint}")
    return tuple(compiled)


def _rfc3339(fields: _Fields, key: str) -> datetime | None:
    text = fields.text(key)
    if text is None:
        return None
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        fields.fail(
            key,
            f"expected an RFC 3339 time with a time zone, such as 2030-01-31T12:00:00Z, "
            f"got {text!r}",
        )
    day, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    micro = f".{(fraction or '0')[:6].ljust(6, '0')}"
    try:
        return datetime.fromisoformat(f"{day}T{clock}{micro}{zone}")
    except ValueError as exc:
        fields.fail(key, f"invalid time {text!r}: {exc}")


# --------------------------------------------------------------------------- documents


@dataclass(slots=True)
class _Loaded:
    """What the documents said, before cross-checks."""

    configuration: Configuration = field(default_factory=Configuration)
    users: list[User] = field(default_factory=list)
    roles: list[Role] = field(default_factory=list)
    bindings: list[RoleBinding] = field(default_factory=list)
    tokens: list[StaticToken] = field(default_factory=list)
    caches: list[PullThroughCache] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    names: dict[tuple[str, str], Source] = field(default_factory=dict)
    # (kind, name) of manifests with a mistake: references to them are not reported again.
    failed: set[tuple[str, str]] = field(default_factory=set)
    # Where each cross-reference was made, to name it when its target is missing.
    role_refs: list[tuple[_At, str, str]] = field(default_factory=list)
    token_users: list[tuple[_At, str, str]] = field(default_factory=list)
    subjects: list[tuple[_At, str, Subject]] = field(default_factory=list)


_TOP_FIELDS = ("apiVersion", "kind", "metadata", "spec")


def _known(
    at: _At, document: dict[Any, object], key: str, allowed: Sequence[str], expected: str
) -> str:
    """A header field that must be one of `allowed` (`expected` says which, for the message)."""
    value = document.get(key)
    if value is None:
        at.fail(key, "required field is missing")
    if value not in allowed:
        shown = repr(value) if isinstance(value, str) else _type_name(value)
        at.fail(key, f"unknown {key} {shown} (expected {expected})")
    return str(value)


def _header(source: Source, document: object, errors: list[str]) -> tuple[_At, _Fields]:
    at = _At(source, errors=errors)
    if not isinstance(document, dict):
        at.fail("", f"expected a manifest (a mapping), got {_type_name(document)}")
    _known(at, document, "apiVersion", API_VERSIONS, " or ".join(API_VERSIONS))
    kind = _known(at, document, "kind", KINDS, "one of: " + ", ".join(KINDS))
    at = replace(at, kind=kind)
    metadata_hints = {
        "passwordHash": "unknown field: passwordHash belongs under spec (spec.passwordHash), "
        "not metadata",
        "groups": "unknown field: groups belong under spec (spec.groups), not metadata",
    }
    raw_metadata = document.get("metadata")
    if raw_metadata is None:
        at.fail("metadata.name", "required field is missing")
    # Name the manifest in messages about its metadata when the name itself is fine.
    early_name = raw_metadata.get("name") if isinstance(raw_metadata, dict) else None
    if isinstance(early_name, str) and early_name.strip():
        at = replace(at, name=early_name)
    metadata = _Fields(at, "metadata", raw_metadata, ("name",), metadata_hints)
    name = metadata.text("name", required=True)
    assert name is not None
    at = replace(at, name=name)
    top = _Fields(at, "", document, _TOP_FIELDS)
    return at, top


def _user(at: _At, spec: _Fields | None, loaded: _Loaded) -> None:
    assert at.name is not None
    if ":" in at.name:
        at.fail("metadata.name", "a user name cannot contain ':' (Basic credentials split on it)")
    password_hash = groups = None
    if spec is not None:
        password_hash = spec.text("passwordHash")
        if password_hash is not None and not _BCRYPT.fullmatch(password_hash):
            spec.fail(
                "passwordHash",
                "not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters); "
                "make one with: simple-registry genhash",
            )
        groups = spec.texts("groups")
    if at.name == ANONYMOUS and password_hash is not None:
        loaded.warnings.append(
            f"{at}: spec.passwordHash: the anonymous user is used without credentials; "
            "its password is never needed"
        )
    unique_groups = tuple(dict.fromkeys(groups or ()))
    loaded.users.append(User(at.name, password_hash, unique_groups, at.source))


def _role(at: _At, spec: _Fields, loaded: _Loaded) -> None:
    assert at.name is not None
    resources = spec.texts("resources", required=True)
    verbs = spec.texts("verbs", required=True)
    assert resources is not None and verbs is not None
    for index, resource in enumerate(resources):
        if resource not in RESOURCES:
            expected = ", ".join(sorted(RESOURCES - {"*"})) + " or *"
            at.fail(
                f"spec.resources[{index}]", f"unknown resource {resource!r} (expected {expected})"
            )
    if "*" in resources and len(set(resources)) > 1:
        spec.fail("resources", "'*' already means every resource; list it alone")
    normalized: list[str] = []
    for index, verb in enumerate(verbs):
        word = verb.strip()
        if word.upper() in HTTP_VERBS:
            normalized.append(word.upper())
        elif word.lower() in ACTIONS:
            normalized.append(word.lower())
        elif word == "*":
            normalized.append("*")
        else:
            at.fail(
                f"spec.verbs[{index}]",
                f"unknown verb {verb!r} (expected HEAD, GET, POST, PUT, PATCH, DELETE, "
                "pull, push, delete or *)",
            )
    if "*" in normalized and len(set(normalized)) > 1:
        spec.fail("verbs", "'*' already means every verb; list it alone")
    role = Role(at.name, frozenset(resources), frozenset(normalized), at.source)
    reads_manifests = "manifests" in role.resources and bool(role.verbs & {"GET", "pull", "*"})
    if reads_manifests and "tags" not in role.resources:
        loaded.warnings.append(
            f"{at}: spec.resources: grants reading manifests but not tags, so its holders "
            "cannot list tags (add tags)"
        )
    loaded.roles.append(role)


def _binding(at: _At, spec: _Fields, loaded: _Loaded) -> None:
    assert at.name is not None
    raw_subjects = spec.get("subjects", required=True)
    if not isinstance(raw_subjects, list):
        spec.fail("subjects", f"expected a list of {{kind, name}}, got {_type_name(raw_subjects)}")
    if not raw_subjects:
        spec.fail("subjects", "must list at least one subject")
    subjects = []
    for index, raw in enumerate(raw_subjects):
        entry = _Fields(at, f"spec.subjects[{index}]", raw, ("kind", "name"))
        kind = entry.text("kind", required=True)
        name = entry.text("name", required=True)
        assert kind is not None and name is not None
        if kind not in ("User", "Group"):
            entry.fail("kind", f"expected User or Group, got {kind!r}")
        subject = Subject(kind, name)
        subjects.append(subject)
        loaded.subjects.append((at, f"spec.subjects[{index}]", subject))
    role_ref = spec.mapping("roleRef", ("name", "kind"), required=True)
    assert role_ref is not None
    ref_kind = role_ref.text("kind")
    if ref_kind is not None and ref_kind != "Role":
        role_ref.fail("kind", f"expected Role, got {ref_kind!r}")
    role = role_ref.text("name", required=True)
    assert role is not None
    loaded.role_refs.append((at, "spec.roleRef.name", role))
    scopes = _regexes(spec, "scopes")
    loaded.bindings.append(RoleBinding(at.name, tuple(subjects), role, scopes, at.source))


def _token(at: _At, spec: _Fields, loaded: _Loaded) -> None:
    assert at.name is not None
    given = [key for key in ("value", "valueSha256") if spec.has(key)]
    if not given:
        spec.fail("valueSha256", "required field is missing (or give spec.value)")
    if len(given) > 1:
        spec.fail("value", "give only one of value and valueSha256")
    if given[0] == "value":
        value = spec.text("value")
        assert value is not None
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
        loaded.warnings.append(
            f"{at}: spec.value: the token is written in clear; replace it with "
            "spec.valueSha256 (the output of: printf %s TOKEN | sha256sum)"
        )
    else:
        text = spec.text("valueSha256")
        assert text is not None
        if not _SHA256_HEX.fullmatch(text):
            spec.fail("valueSha256", "expected 64 lowercase hexadecimal digits (a SHA-256)")
        digest = text
    username = spec.text("username", required=True)
    assert username is not None
    loaded.token_users.append((at, "spec.username", username))
    expires_at = _rfc3339(spec, "expiresAt")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        loaded.warnings.append(f"{at}: spec.expiresAt: the token has already expired")
    loaded.tokens.append(StaticToken(at.name, username, digest, expires_at, at.source))


_UPSTREAM_FIELDS = (
    "url",
    "timeout",
    "ttl",
    "username",
    "password",
    "passwordFile",
    "passwordEnv",
    "maxStale",
    "hosts",
)


def _upstream_url(fields: _Fields) -> str:
    url = fields.text("url", required=True)
    assert url is not None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        fields.fail("url", f"invalid URL: {exc}")
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fields.fail("url", "expected an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        fields.fail("url", "put credentials in username and password, not in the URL")
    if parts.query or parts.fragment:
        fields.fail("url", "a query or fragment is not allowed")
    return url.strip().rstrip("/")


def _cache(at: _At, spec: _Fields, loaded: _Loaded, environ: Mapping[str, str]) -> None:
    assert at.name is not None
    fields = spec.mapping("upstream", _UPSTREAM_FIELDS, required=True)
    assert fields is not None
    url = _upstream_url(fields)
    username = fields.text("username")
    password = fields.secret("password", environ)
    if password is not None and username is None:
        fields.fail("username", "required when a password is given")
    if username is not None and password is None:
        fields.fail("password", "required when a username is given (or passwordFile/passwordEnv)")
    max_stale = fields.duration("maxStale")
    upstream = Upstream(
        url=url,
        timeout_seconds=fields.duration("timeout"),
        username=username,
        password=password,
        ttl_seconds=fields.duration("ttl"),
        max_stale_seconds=DEFAULT_MAX_STALE_SECONDS if max_stale is None else max_stale,
        hosts=_hosts(fields),
    )
    prefix = _prefix(spec)
    scopes = _regexes(spec, "scopes")
    for index, scope in enumerate(scopes):
        if not can_match_under(scope.pattern, prefix):
            at.fail(
                f"spec.scopes[{index}]",
                f"{scope.pattern!r} can match no name under spec.prefix {prefix!r}, and this "
                "cache serves only names that start with its prefix",
            )
    allow_pushes = bool(spec.flag("allowPushes"))
    loaded.caches.append(
        PullThroughCache(at.name, upstream, scopes, at.source, prefix, allow_pushes)
    )


def _hosts(fields: _Fields) -> tuple[str, ...]:
    """Lower-cased: host names are case-insensitive, and `?ns=` is compared in lower case."""
    hosts = tuple(host.lower() for host in fields.texts("hosts") or ())
    seen: set[str] = set()
    for index, host in enumerate(hosts):
        problem = host_problem(host)
        if problem is not None:
            fields.at.fail(f"{fields.sub_path('hosts')}[{index}]", problem)
        if host in seen:
            fields.at.fail(f"{fields.sub_path('hosts')}[{index}]", f"{host!r} is listed twice")
        seen.add(host)
    return hosts


def _prefix(spec: _Fields) -> str:
    if spec.get("prefix") == "":
        return ""  # no prefix, said explicitly (other empty strings are mistakes)
    prefix = spec.text("prefix")
    if prefix is None:
        return ""
    problem = prefix_problem(prefix)
    if problem is not None:
        spec.fail("prefix", problem)
    return prefix


def _cross_check_hosts(loaded: _Loaded) -> None:
    """One host, one cache: a `?ns=` must name a single upstream."""
    owners: dict[str, PullThroughCache] = {}
    for cache in loaded.caches:
        for index, host in enumerate(cache.upstream.hosts):
            owner = owners.setdefault(host, cache)
            if owner is cache:
                continue
            assert cache.source is not None and owner.source is not None
            where = _At(cache.source, "PullThroughCache", cache.name)
            loaded.errors.append(
                where.message(
                    f"spec.upstream.hosts[{index}]",
                    f'{host!r} is also listed by PullThroughCache "{owner.name}" '
                    f"({owner.source.file}, document {owner.source.document}); "
                    "a host may have one cache only",
                )
            )


# Where `WebConfig` keeps an option of `WebOptions` whose attribute there has another name.
_WEB_CONFIG_NAMES = {
    "token_lifetime": "token_timeout_seconds",
    "body_timeout": "body_timeout_seconds",
    "trust_forwarded": "trust_forwarded_headers",
}


def _plain(at: _At, path: str, value: object) -> object:
    """Check that every mapping inside has string keys; return plain dicts and lists."""
    if isinstance(value, dict):
        result: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                at.fail(path, f"keys must be strings, got {_type_name(key)}")
            result[key] = _plain(at, f"{path}.{key}", item)
        return result
    if isinstance(value, list):
        return [_plain(at, f"{path}[{index}]", item) for index, item in enumerate(value)]
    return value


def _configuration(
    at: _At, spec: _Fields | None, loaded: _Loaded, environ: Mapping[str, str]
) -> None:
    if spec is None:
        return
    current = loaded.configuration
    data_dir = spec.text("dataDir")
    web = _web(at, spec, loaded, environ)
    sections = {name: dict(values) for name, values in current.sections.items()}
    for name in SECTIONS:
        _section(at, spec, name, sections, loaded)
    loaded.configuration = Configuration(
        data_dir=data_dir if data_dir is not None else current.data_dir,
        web=web,
        sections=sections,
    )


def _web(at: _At, spec: _Fields, loaded: _Loaded, environ: Mapping[str, str]) -> WebConfig:
    """`spec.web`, validated by `WebOptions`, over what earlier documents set: only the
    fields this document gives change (documents merge field by field)."""
    current = loaded.configuration.web
    value = spec.get("web")
    if value is None:
        return current
    section = _plain(at, spec.sub_path("web"), value)
    if isinstance(section, dict):  # a field set to null counts as not given
        section = {key: item for key, item in section.items() if item is not None}
    web, errors = validated("web", section, WebOptions, environ=environ)
    for error in errors:
        at.note(spec.sub_path(error.path), error.message)
    if web is None:
        return current
    given = {attr: getattr(web, attr) for attr in web.model_fields_set}
    changes = {_WEB_CONFIG_NAMES.get(attr, attr): value for attr, value in given.items()}
    return replace(current, **{attr: value for attr, value in changes.items() if value is not None})


def _section(
    at: _At, spec: _Fields, name: str, sections: dict[str, dict[str, object]], loaded: _Loaded
) -> None:
    """Check one section of `spec` and merge it into `sections` (key by key) when valid."""
    value = spec.get(name)
    if value is None:
        return
    if not isinstance(value, dict):
        spec.fail(name, f"expected a mapping, got {_type_name(value)}")
    plain = _plain(at, spec.sub_path(name), value)
    assert isinstance(plain, dict)
    errors = typed_sections.check(name, plain)
    for error in errors:
        at.note(spec.sub_path(error.path), error.message)
    if not errors:
        sections.setdefault(name, {}).update(plain)
    if name in UNUSED:
        loaded.warnings.append(f"{at}: spec.{name}: {UNUSED[name]}; this section is ignored")


_SPEC_FIELDS: dict[str, tuple[str, ...]] = {
    "Configuration": (*yaml_keys(ServeOptions), "web", *SECTIONS),
    "User": ("passwordHash", "groups"),
    "Role": ("resources", "verbs"),
    "RoleBinding": ("subjects", "roleRef", "scopes"),
    "PullThroughCache": ("upstream", "scopes", "prefix", "allowPushes"),
    "Token": ("value", "valueSha256", "username", "expiresAt"),
}
_SPEC_HINTS: dict[str, dict[str, str]] = {
    "Configuration": {
        "http": "unknown field: the http section was renamed; call it web",
        "datadir": "unknown field (the name is dataDir)",
    },
}


def _document(
    source: Source, document: object, loaded: _Loaded, environ: Mapping[str, str]
) -> None:
    at, top = _header(source, document, loaded.errors)
    assert at.kind is not None and at.name is not None
    first = loaded.names.get((at.kind, at.name))
    if first is not None and at.kind != "Configuration":
        at.fail(
            "metadata.name",
            f'duplicate {at.kind} "{at.name}" (first defined in {first.file}, '
            f"document {first.document})",
        )
    loaded.names.setdefault((at.kind, at.name), source)
    try:
        _spec(at, top, loaded, environ)
    except ConfigError:
        loaded.failed.add((at.kind, at.name))
        raise


def _spec(at: _At, top: _Fields, loaded: _Loaded, environ: Mapping[str, str]) -> None:
    assert at.kind is not None
    spec = top.mapping("spec", _SPEC_FIELDS[at.kind], _SPEC_HINTS.get(at.kind))
    if at.kind == "Configuration":
        _configuration(at, spec, loaded, environ)
        return
    if at.kind == "User":
        _user(at, spec, loaded)
        return
    if spec is None:
        at.fail("spec", "required field is missing")
    handlers: dict[str, Callable[[_At, _Fields, _Loaded], None]] = {
        "Role": _role,
        "RoleBinding": _binding,
        "Token": _token,
        "PullThroughCache": lambda a, s, ld: _cache(a, s, ld, environ),
    }
    handlers[at.kind](at, spec, loaded)


def _cross_check(loaded: _Loaded) -> None:
    roles = {role.name for role in loaded.roles}
    users = {user.name for user in loaded.users}
    groups = {group for user in loaded.users for group in user.groups}
    for at, path, role in loaded.role_refs:
        if role not in roles and ("Role", role) not in loaded.failed:
            loaded.errors.append(at.message(path, f'no Role named "{role}"'))
    for at, path, username in loaded.token_users:
        if username not in users and ("User", username) not in loaded.failed:
            loaded.errors.append(at.message(path, f'no User named "{username}"'))
    _cross_check_hosts(loaded)
    seen: dict[str, StaticToken] = {}
    for token in loaded.tokens:
        other = seen.setdefault(token.value_sha256, token)
        if other is not token:
            assert token.source is not None
            where = _At(token.source, "Token", token.name)
            loaded.errors.append(where.message("spec", f'same token value as Token "{other.name}"'))
    for at, path, subject in loaded.subjects:
        if subject.kind == "User" and subject.name not in users:
            loaded.warnings.append(
                f'{at}: {path}: no User named "{subject.name}"; it grants nothing'
            )
        if subject.kind == "Group" and subject.name not in groups:
            loaded.warnings.append(
                f'{at}: {path}: no User is in group "{subject.name}"; it grants nothing yet'
            )


def _file(path: Path, loaded: _Loaded, environ: Mapping[str, str]) -> None:
    """Each document of the file; a mistake ends its document, a YAML syntax error the file
    (the parser cannot find where the next document starts)."""
    try:
        for number, document in _documents(path):
            if document is None:
                continue
            try:
                _document(Source(path, number), document, loaded, environ)
            except ConfigError as exc:
                loaded.errors.append(str(exc))
    except ConfigError as exc:
        loaded.errors.append(str(exc))


def load_manifests(dirs: Sequence[Path], environ: Mapping[str, str] | None = None) -> Manifests:
    """Read and validate every manifest of `dirs` (in order); on mistakes, `ConfigErrors`
    listing all of them.

    `environ` (default: `os.environ`) is where `tokenSecretEnv` and `passwordEnv` are looked up.
    """
    env = os.environ if environ is None else environ
    loaded = _Loaded()
    for path in manifest_files(dirs, loaded.errors):
        _file(path, loaded, env)
    _cross_check(loaded)
    if loaded.errors:
        raise ConfigErrors(loaded.errors)
    if dirs and not loaded.users:
        loaded.warnings.append("no User manifest: nobody can log in, and anonymous access is off")
    return Manifests(
        configuration=loaded.configuration,
        users=tuple(loaded.users),
        roles=tuple(loaded.roles),
        bindings=tuple(loaded.bindings),
        tokens=tuple(loaded.tokens),
        caches=tuple(loaded.caches),
        warnings=tuple(loaded.warnings),
    )


__all__ = [
    "API_VERSION",
    "API_VERSIONS",
    "GO_API_VERSION",
    "KINDS",
    "load_manifests",
    "manifest_files",
]
