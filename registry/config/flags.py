"""`serve` flags in the style of the Go simple-registry: `-flag` or `--flag`,
`SIMPLE_REGISTRY_<NAME>` environment fallbacks, and the precedence
flag > environment > YAML > default.

Every flag is declared once, with its YAML key, default, range and help, in an options model
(`OPTION_MODELS`); this module only applies the precedence and the checks that span options.
Like the manifests' mistakes, every bad flag and variable is reported in one run.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from registry.config import sections
from registry.config.builtin import with_flag_users
from registry.config.gc_options import GcSettings
from registry.config.log_names import FORMATS, LEVELS, default_format
from registry.config.manifests import load_manifests
from registry.config.model import Manifests, WebConfig
from registry.config.serve_options import (
    MAX_BODY_TIMEOUT,
    MIN_TOKEN_TIMEOUT,
    MetricsSettings,
    ServeOptions,
    WebOptions,
)
from registry.config.settings import ConfigError, ConfigErrors, Settings
from registry.coord.redis_options import SCHEMES, RedisSettings, parse_sentinel_url
from registry.numbers import whole_number
from registry.options import (
    ENV_PREFIX,
    Declared,
    add_flags,
    declared,
    default_of,
    flag_text,
    flag_value,
    is_host_port,
    section_errors,
)
from registry.options import parse_bool as _parse_bool
from registry.storage.s3_options import S3Settings

# In the order `serve -h` lists their flags.
OPTION_MODELS: tuple[type[BaseModel], ...] = (
    ServeOptions,
    WebOptions,
    RedisSettings,
    S3Settings,
    MetricsSettings,
)

Pick = Callable[[str], str | None]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
# The admin user the flags define: name, password (None: none) and anonymous access.
_Admin = tuple[str, str | None, bool]


def _env_bool(value: str) -> bool:
    parsed = _parse_bool(value)
    if parsed is None:
        raise ConfigError(f"not a boolean: {value!r}")
    return parsed


def _switch(given: str | None, configured: bool | None) -> bool:
    """A switch flag (or its variable) over the YAML field: `-x` or `x=true` turns it on."""
    return _env_bool(given) if given is not None else bool(configured)


def serve_parser() -> argparse.ArgumentParser:
    return _parser(
        "simple-registry serve",
        "Run the registry. Every flag also reads SIMPLE_REGISTRY_<FLAG> "
        "(e.g. SIMPLE_REGISTRY_DATADIR); a flag on the command line wins over the variable.",
        OPTION_MODELS,
    )


def gc_parser(prog: str = "simple-registry gc") -> argparse.ArgumentParser:
    return _parser(
        prog,
        "Delete what nothing references any more (docs/gc.md), while the registry keeps "
        "serving. Its own flags come first; it also takes every flag of serve, so that one "
        "configuration serves both (the storage, Redis and -cfgdir ones matter here). Every "
        "flag also reads SIMPLE_REGISTRY_<FLAG> (a dash as _: SIMPLE_REGISTRY_DRY_RUN).",
        (GcSettings, *OPTION_MODELS),
    )


def _parser(
    prog: str, description: str, models: Sequence[type[BaseModel]]
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)
    for model in models:
        add_flags(parser, model)
    return parser


def _picker(
    argv: Sequence[str],
    env: Mapping[str, str],
    parser: argparse.ArgumentParser | None = None,
    models: Sequence[type[BaseModel]] = OPTION_MODELS,
) -> Pick:
    """`pick(flag)`: the flag's text from the command line, else from its variable."""
    args = (parser or serve_parser()).parse_args(list(argv))
    flags = {opt.flag: opt for model in models for opt in declared(model) if opt.flag}

    def pick(name: str) -> str | None:
        return flag_text(args, env, flags[name])

    return pick


class _Problems:
    """The mistakes found so far, of the manifests and of every flag and variable: each
    independent check runs even after another failed, so that one run reports them all."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, step: Callable[[], T], fallback: T) -> T:
        """What `step` returns; after a mistake, `fallback` (never used: `raise_any` follows)."""
        try:
            return step()
        except ConfigErrors as exc:
            self.messages += exc.messages
        except ConfigError as exc:
            self.messages.append(str(exc))
        return fallback

    def raise_any(self) -> None:
        if self.messages:
            raise ConfigErrors(self.messages)


def parse_serve(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Flags win over environment variables, which win over the manifests, then defaults.

    Every mistake (each manifest's, each flag's and variable's) is reported in one
    `ConfigErrors`; a check that needs a value in error is skipped rather than misled.
    """
    env = os.environ if environ is None else environ
    pick = _picker(argv, env)
    check = _Problems()
    cfgdirs = tuple(Path(p) for p in (pick("cfgdir") or "").split(",") if p.strip())
    manifests = _manifests(pick, cfgdirs, env, check)
    metrics_default: tuple[bool, str | None] = (True, None)
    metrics_enabled, metrics_addr = check(
        lambda: _metrics_settings(pick, manifests), metrics_default
    )
    log_level, log_format = check(lambda: _log_settings(pick), ("info", "json"))
    settings = Settings(
        datadir=Path(
            pick("datadir")
            or manifests.configuration.data_dir
            or default_of(ServeOptions, "datadir")
        ),
        workers=check(lambda: _workers(pick("workers")), 1),
        cfgdirs=cfgdirs,
        redis=check(lambda: _redis_settings(pick, manifests), None),
        manifests=manifests,
        s3=check(lambda: _s3_settings(pick, manifests), None),
        metrics_enabled=metrics_enabled,
        log_level=log_level,
        metrics_addr=metrics_addr,
        log_format=log_format,
        **_web_settings(pick, manifests.configuration.web, check),  # type: ignore[arg-type]
    )
    check.raise_any()
    return settings


def parse_gc(
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
    *,
    prog: str = "simple-registry gc",
) -> tuple[Settings, GcSettings]:
    """The settings of the store to collect (as `serve` reads them, minus the admin user,
    which collecting needs none of) and the collection's own options, over `spec.gc`."""
    env = os.environ if environ is None else environ
    pick = _picker(argv, env, gc_parser(prog), (GcSettings, *OPTION_MODELS))
    check = _Problems()
    cfgdirs = tuple(Path(p) for p in (pick("cfgdir") or "").split(",") if p.strip())
    manifests = _manifests(pick, cfgdirs, env, check, admin=False)
    log_level, log_format = check(lambda: _log_settings(pick), ("info", "text"))
    settings = Settings(
        datadir=Path(
            pick("datadir")
            or manifests.configuration.data_dir
            or default_of(ServeOptions, "datadir")
        ),
        cfgdirs=cfgdirs,
        redis=check(lambda: _redis_settings(pick, manifests), None),
        manifests=manifests,
        s3=check(lambda: _s3_settings(pick, manifests), None),
        metrics_enabled=False,
        log_level=log_level,
        log_format=log_format,
    )
    gc = check(lambda: _gc_settings(pick, manifests), GcSettings())
    check.raise_any()
    return settings, gc


def _gc_settings(pick: Pick, manifests: Manifests) -> GcSettings:
    """The collection's flags (and variables) over `spec.gc` of the Configuration."""
    values = _section(manifests, "gc", GcSettings) | _flag_values(pick, GcSettings)
    return _built(GcSettings, values)


def _manifests(
    pick: Pick,
    cfgdirs: tuple[Path, ...],
    env: Mapping[str, str],
    check: _Problems,
    *,
    admin: bool = True,
) -> Manifests:
    """The manifests, plus (with `admin`) the admin (and anonymous) users that the flags
    define; without manifests in error, whose users are unknown."""
    loaded = check(lambda: load_manifests(cfgdirs, env) if cfgdirs else Manifests(), None)
    if not admin:
        return loaded or Manifests()
    admin_user = _admin(pick, cfgdirs, check)
    if loaded is None or admin_user is None:
        return loaded or Manifests()
    return check(lambda: _with_admin(loaded, admin_user), loaded)


def _admin(pick: Pick, cfgdirs: tuple[Path, ...], check: _Problems) -> _Admin | None:
    """The admin the flags define: name, password, and whether anonymous access is on;
    None after a mistake."""
    before = len(check.messages)
    password = check(lambda: _admin_password(pick), None)
    anonymous = check(lambda: _anonymous(pick, cfgdirs), False)
    if len(check.messages) > before:
        return None
    if password is None and not anonymous and not cfgdirs:
        check.messages.append(
            "no admin password: give -adminpwd, -adminpwdfile or SIMPLE_REGISTRY_ADMINPWD "
            "(or -anonymous to allow everyone read/write, which is unsafe)"
        )
        return None
    return pick("adminname") or default_of(ServeOptions, "adminname"), password, anonymous


def _admin_password(pick: Pick) -> str | None:
    password = pick("adminpwd")
    password_file = pick("adminpwdfile")
    if password_file:
        password = _read_secret_file(password_file, "-adminpwdfile")
    if password == "":
        raise ConfigError("the admin password is empty")
    return password


def _anonymous(pick: Pick, cfgdirs: tuple[Path, ...]) -> bool:
    anonymous = _env_bool(pick("anonymous") or "false")
    if anonymous and cfgdirs:
        raise ConfigError(
            "-anonymous is for a registry without manifests; with -cfgdir, define a User "
            "named anonymous and bind it to a role"
        )
    return anonymous


def _with_admin(manifests: Manifests, admin: _Admin) -> Manifests:
    name, password, anonymous = admin
    manifests = with_flag_users(manifests, name, password, anonymous and password is None)
    if not manifests.users:
        raise ConfigError("the manifests define no User, so nobody could use the registry")
    return manifests


def _workers(text: str | None) -> int:
    workers_option = _option(ServeOptions, "workers")
    if text is None:
        return int(workers_option.default)
    try:
        workers = int(text)
    except ValueError:
        raise ConfigError(f"-workers must be a whole number, not {text!r}") from None
    low, high = workers_option.low, workers_option.high
    if low is not None and high is not None and not low <= workers <= high:
        raise ConfigError(f"-workers must be between {low:g} and {high:g}")
    return workers


def _option(model: type[BaseModel], attr: str) -> Declared:
    return next(opt for opt in declared(model) if opt.attr == attr)


def _web_settings(pick: Pick, web: WebConfig, check: _Problems) -> dict[str, object]:
    """The `Settings` fields of `spec.web` and its flags: listening, TLS and tokens."""
    addr = pick("addr") or web.addr or default_of(WebOptions, "addr")
    return {
        "addr": check(lambda: _checked_addr(addr, "-addr"), addr),
        **check(lambda: _tls(pick, web), {}),
        "token_secret": check(lambda: _token_secret(pick, web), None),
        "token_key_file": check(lambda: _existing(pick("tokenkeyfile")), None),
        "token_lifetime": check(
            lambda: _token_lifetime(pick("tokentimeout"), web.token_timeout_seconds), 0
        ),
        "body_timeout": check(
            lambda: _body_timeout(pick("bodytimeout"), web.body_timeout_seconds), 0.0
        ),
        "service": pick("service") or web.service,
        "ui": check(lambda: _switch(pick("ui"), web.ui), False),
        "trust_forwarded": check(
            lambda: _switch(pick("trustforwarded"), web.trust_forwarded_headers),
            False,
        ),
    }


def _tls(pick: Pick, web: WebConfig) -> dict[str, Path | None]:
    """`-certfile` and `-keyfile` (over `spec.web`): both or neither, and both files there."""
    certfile = pick("certfile") or web.certfile
    keyfile = pick("keyfile") or web.keyfile
    if bool(certfile) != bool(keyfile):
        raise ConfigError("-certfile and -keyfile go together")
    problems = [
        f"no such file: {path}" for path in (certfile, keyfile) if path and not Path(path).is_file()
    ]
    if problems:
        raise ConfigErrors(problems)
    return {"certfile": _existing(certfile), "keyfile": _existing(keyfile)}


def _existing(path: str | None) -> Path | None:
    """A file a flag names, which must exist (read later, by code that cannot say which flag)."""
    if path and not Path(path).is_file():
        raise ConfigError(f"no such file: {path}")
    return Path(path) if path else None


def _token_secret(pick: Pick, web: WebConfig) -> bytes | None:
    """`-tokensecret` or `-tokensecretfile`, over the secret of `spec.web`."""
    secret_text = pick("tokensecret")
    secret_file = pick("tokensecretfile")
    if secret_file:
        secret_text = _read_secret_file(secret_file, "-tokensecretfile")
    if secret_text is None:
        secret_text = web.token_secret
    if secret_text == "":
        raise ConfigError("the token secret is empty")
    return secret_text.encode() if secret_text is not None else None


def _token_lifetime(text: str | None, configured: int | None) -> int:
    """`-tokentimeout` in whole seconds, over `spec.web.tokenTimeout`."""
    if text is not None:
        parsed = whole_number(text)
        if parsed is None:
            raise ConfigError(f"-tokentimeout takes whole seconds, not {text!r}")
        lifetime = parsed
    else:
        lifetime = configured or default_of(WebOptions, "token_lifetime")
    if lifetime < MIN_TOKEN_TIMEOUT:
        raise ConfigError(
            f"the token lifetime must be at least {MIN_TOKEN_TIMEOUT} seconds (clients assume 60)"
        )
    return lifetime


def _body_timeout(text: str | None, configured: float | None) -> float:
    """`-bodytimeout` in seconds (fractions allowed), over `spec.web.bodyTimeout`."""
    if text is None:
        return configured or default_of(WebOptions, "body_timeout")
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(f"-bodytimeout takes seconds, not {text!r}") from None
    if not 0 < seconds <= MAX_BODY_TIMEOUT:
        raise ConfigError(f"-bodytimeout must be above 0 and at most {MAX_BODY_TIMEOUT} seconds")
    return seconds


def _log_settings(pick: Pick) -> tuple[str, str]:
    """`-loglevel` and `-logformat` (flags and variables only)."""
    log_level = (pick("loglevel") or default_of(ServeOptions, "log_level")).strip().lower()
    if log_level not in LEVELS:
        raise ConfigError(f"-loglevel must be one of {', '.join(LEVELS)}, not {log_level!r}")
    log_format = (pick("logformat") or default_format()).strip().lower()
    if log_format not in FORMATS:
        raise ConfigError(f"-logformat must be {' or '.join(FORMATS)}, not {log_format!r}")
    return log_level, log_format


def _section(manifests: Manifests, path: str, model: type[BaseModel]) -> dict[str, object]:
    """A merged Configuration section by attribute (the loader checked each part)."""
    return sections.by_attribute(sections.at_path(manifests.configuration.sections, path), model)


def _flag_values(pick: Pick, model: type[BaseModel]) -> dict[str, object]:
    """The model's options given as flags or variables, by attribute; `ConfigErrors` naming
    each one that is not of the option's type."""
    values: dict[str, object] = {}
    problems: list[str] = []
    for opt in declared(model):
        text = pick(opt.flag) if opt.flag else None
        if text is not None:
            try:
                values[opt.attr] = flag_value(opt, text)
            except ValueError as exc:
                problems.append(str(exc))
    if problems:
        raise ConfigErrors(problems)
    return values


def _built(model: type[M], values: dict[str, object]) -> M:
    """The model from merged values; each value out of range (only a flag's can be: the
    loader checked the YAML) is named by its flag."""
    by_attr = {opt.attr: opt for opt in declared(model)}
    as_yaml = {by_attr[attr].yaml or attr: value for attr, value in values.items()}
    problems = []
    for problem in section_errors("", as_yaml, model, partial=False):
        key = problem.path.lstrip(".")
        flag = next((opt.flag for opt in by_attr.values() if opt.yaml == key), None)
        problems.append(f"-{flag or key}: {problem.message}")
    if problems:
        raise ConfigErrors(problems)
    return model(**values)


def _s3_settings(pick: Pick, manifests: Manifests) -> S3Settings | None:
    """`-s3*` flags (and variables) over `spec.storage.s3` of the Configuration."""
    values = _section(manifests, "storage.s3", S3Settings) | _flag_values(pick, S3Settings)
    if not values.get("bucket"):
        if values:
            raise ConfigError("S3 storage needs a bucket (-s3bucket or spec.storage.s3.bucket)")
        return None
    return _built(S3Settings, values)


def _redis_settings(pick: Pick, manifests: Manifests) -> RedisSettings | None:
    """`-redisurl` (and its variable) over `spec.redis` of the Configuration."""
    values = _section(manifests, "redis", RedisSettings) | _flag_values(pick, RedisSettings)
    if not values.get("url"):
        return None
    _check_redis_url(str(values["url"]))
    return _built(RedisSettings, values)


def _metrics_settings(pick: Pick, manifests: Manifests) -> tuple[bool, str | None]:
    """`spec.metrics` of the Configuration (`enabled`, `addr`), under `-metricsaddr`."""
    values = _section(manifests, "metrics", MetricsSettings) | _flag_values(pick, MetricsSettings)
    metrics = _built(MetricsSettings, values)
    addr = metrics.addr or None
    if addr is not None and not metrics.enabled:
        raise ConfigError("a metrics address is set but spec.metrics.enabled is false")
    if addr is not None:
        _checked_addr(addr, "-metricsaddr")
    return metrics.enabled, addr


def _check_redis_url(url: str) -> None:
    if not url.startswith(SCHEMES):
        raise ConfigError(
            "the Redis URL must start with redis://, rediss://, unix:// or redis+sentinel://"
        )
    try:
        parse_sentinel_url(url)
    except ValueError as exc:
        raise ConfigError(f"-redisurl: {exc}") from None


def _read_secret_file(path: str, flag: str) -> str:
    """A secret kept in a file: the content, without one trailing newline."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {flag} {path}: {exc.strerror}") from None
    return text.removesuffix("\n").removesuffix("\r")


def _checked_addr(addr: str, flag: str) -> str:
    if not is_host_port(addr):
        raise ConfigError(f"{flag} must be HOST:PORT, not {addr!r}")
    return addr


__all__ = ["ENV_PREFIX", "OPTION_MODELS", "gc_parser", "parse_gc", "parse_serve", "serve_parser"]
