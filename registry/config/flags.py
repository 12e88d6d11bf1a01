"""`serve` flags in the seed project's style: `-flag` or `--flag`, `SIMPLE_REGISTRY_<NAME>`
environment fallbacks, and the precedence flag > environment > default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from registry.config import sections
from registry.config.builtin import with_flag_users
from registry.config.manifests import MAX_BODY_TIMEOUT, load_manifests
from registry.config.model import Manifests
from registry.config.settings import ConfigError, RedisSettings, S3Settings, Settings
from registry.numbers import whole_number
from registry.observe.logs import FORMATS, LEVELS, default_format

ENV_PREFIX = "SIMPLE_REGISTRY_"


def _env_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true", "yes", "on"):
        return True
    if lowered in ("0", "f", "false", "no", "off", ""):
        return False
    raise ConfigError(f"not a boolean: {value!r}")


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simple-registry serve",
        description="Run the registry. Every flag also reads SIMPLE_REGISTRY_<FLAG> "
        "(e.g. SIMPLE_REGISTRY_DATADIR); a flag on the command line wins over the variable.",
        allow_abbrev=False,
    )

    def add(name: str, *aliases: str, **kwargs: object) -> None:
        spellings = [f"-{name}", f"--{name}"]
        for alias in aliases:
            spellings += [f"-{alias}", f"--{alias}"]
        parser.add_argument(*spellings, dest=name, **kwargs)  # type: ignore[arg-type]

    add("addr", metavar="HOST:PORT", help="listen address (default 0.0.0.0:5000)")
    add("datadir", metavar="DIR", help="data directory (default ./data)")
    add("adminname", metavar="NAME", help="admin user name (default admin)")
    add(
        "adminpwd",
        metavar="PASSWORD",
        help="admin password (visible in the process list; prefer -adminpwdfile)",
    )
    add(
        "adminpwdfile",
        metavar="FILE",
        help="file holding the admin password in clear; a trailing newline is stripped",
    )
    add(
        "anonymous",
        action="store_const",
        const="true",
        help="allow unauthenticated read/write when no admin password is set (unsafe)",
    )
    add("certfile", "cert", metavar="FILE", help="TLS certificate (PEM); HTTPS with -keyfile")
    add("keyfile", "key", metavar="FILE", help="TLS private key (PEM)")
    add("workers", metavar="N", help="worker processes (default 1)")
    add(
        "tokensecret",
        metavar="SECRET",
        help="secret that signs bearer tokens (HS256); "
        "default: generated once and kept in the data directory (in Redis with -redisurl)",
    )
    add("tokensecretfile", metavar="FILE", help="file holding the token secret")
    add(
        "tokenkeyfile",
        metavar="FILE",
        help="PEM private key (RSA or EC) to sign bearer "
        "tokens with RS256/ES256 instead of a shared secret",
    )
    add(
        "tokentimeout",
        "toketimeout",
        metavar="SECONDS",
        help="bearer token lifetime in seconds, at least 60 (default 300)",
    )
    add(
        "bodytimeout",
        metavar="SECONDS",
        help="seconds a request body may pause before the request fails and frees what "
        "it holds, such as its upload (default 60)",
    )
    add(
        "service",
        metavar="NAME",
        help="the token service name (audience); default: the host clients use",
    )
    add(
        "trustforwarded",
        action="store_const",
        const="true",
        help="build the token realm from X-Forwarded-Proto/-Host and log the client "
        "address from X-Forwarded-For (only behind a reverse proxy that sets them)",
    )
    add(
        "redisurl",
        metavar="URL",
        help="Redis for upload sessions and locks shared by "
        "workers on several hosts (redis://[:password@]host:port/db, rediss:// for TLS)",
    )
    add(
        "s3bucket",
        metavar="BUCKET",
        help="keep blobs and metadata in this S3 bucket instead "
        "of the data directory (credentials: the standard AWS variables or files)",
    )
    add("s3endpoint", metavar="URL", help="S3-compatible endpoint (MinIO, Ceph, R2, ...)")
    add("s3region", metavar="REGION", help="S3 region")
    add("s3prefix", metavar="PREFIX", help="key prefix inside the bucket")
    add(
        "s3pathstyle",
        action="store_const",
        const="true",
        help="path-style S3 addressing "
        "(http://endpoint/bucket/key), as MinIO and most S3-compatible stores want",
    )
    add(
        "cfgdir",
        metavar="DIR",
        action="append",
        help="folder of YAML manifests (repeatable; env: comma-separated list)",
    )
    add(
        "metricsaddr",
        metavar="HOST:PORT",
        help="serve /metrics on this address only, without authentication (keep it off the "
        "public network); default: /metrics on the main address, for authenticated users",
    )
    add("loglevel", metavar="LEVEL", help="debug, info (default), warning or error")
    add(
        "logformat",
        metavar="FORMAT",
        help="json (one object per line) or text; default: text on a terminal, else json",
    )
    return parser


def parse_serve(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Flags win over environment variables, which win over the manifests, then defaults."""
    env = os.environ if environ is None else environ
    args = serve_parser().parse_args(list(argv))

    def pick(name: str) -> str | None:
        value = getattr(args, name)
        if value is not None:
            return str(value) if not isinstance(value, list) else ",".join(value)
        return env.get(ENV_PREFIX + name.upper())

    cfgdirs = tuple(Path(p) for p in (pick("cfgdir") or "").split(",") if p.strip())
    manifests = load_manifests(cfgdirs, env) if cfgdirs else Manifests()
    web = manifests.configuration.web

    password = pick("adminpwd")
    password_file = pick("adminpwdfile")
    if password_file:
        password = _read_secret_file(password_file, "-adminpwdfile")
    if password == "":
        raise ConfigError("the admin password is empty")
    anonymous = _env_bool(pick("anonymous") or "false")
    if anonymous and cfgdirs:
        raise ConfigError(
            "-anonymous is for a registry without manifests; with -cfgdir, define a User "
            "named anonymous and bind it to a role"
        )
    if password is None and not anonymous and not cfgdirs:
        raise ConfigError(
            "no admin password: give -adminpwd, -adminpwdfile or SIMPLE_REGISTRY_ADMINPWD "
            "(or -anonymous to allow everyone read/write, which is unsafe)"
        )
    manifests = with_flag_users(
        manifests, pick("adminname") or "admin", password, anonymous and password is None
    )
    if not manifests.users:
        raise ConfigError("the manifests define no User, so nobody could use the registry")

    workers_text = pick("workers") or "1"
    try:
        workers = int(workers_text)
    except ValueError:
        raise ConfigError(f"-workers must be a whole number, not {workers_text!r}") from None
    if not 1 <= workers <= 256:
        raise ConfigError("-workers must be between 1 and 256")

    certfile = pick("certfile") or web.certfile
    keyfile = pick("keyfile") or web.keyfile
    if bool(certfile) != bool(keyfile):
        raise ConfigError("-certfile and -keyfile go together")
    for path in (certfile, keyfile):
        if path and not Path(path).is_file():
            raise ConfigError(f"no such file: {path}")

    addr = pick("addr") or web.addr or "0.0.0.0:5000"
    _check_addr(addr)

    secret_text = pick("tokensecret")
    secret_file = pick("tokensecretfile")
    if secret_file:
        secret_text = _read_secret_file(secret_file, "-tokensecretfile")
    if secret_text is None:
        secret_text = web.token_secret
    if secret_text == "":
        raise ConfigError("the token secret is empty")
    key_file = pick("tokenkeyfile")
    if key_file and not Path(key_file).is_file():
        raise ConfigError(f"no such file: {key_file}")

    lifetime_text = pick("tokentimeout")
    if lifetime_text is not None:
        parsed = whole_number(lifetime_text)
        if parsed is None:
            raise ConfigError(f"-tokentimeout takes whole seconds, not {lifetime_text!r}")
        lifetime = parsed
    else:
        lifetime = web.token_timeout_seconds or 300
    if lifetime < 60:
        raise ConfigError("the token lifetime must be at least 60 seconds (clients assume 60)")

    body_timeout = _body_timeout(pick("bodytimeout"), web.body_timeout_seconds)
    trust = pick("trustforwarded")
    redis = _redis_settings(pick, manifests)
    s3 = _s3_settings(pick, manifests)
    metrics_enabled, metrics_addr = _metrics_settings(pick, manifests)
    if metrics_addr is not None:
        _check_addr(metrics_addr, "-metricsaddr")
    log_level = (pick("loglevel") or "info").strip().lower()
    if log_level not in LEVELS:
        raise ConfigError(f"-loglevel must be one of {', '.join(LEVELS)}, not {log_level!r}")
    log_format = (pick("logformat") or default_format()).strip().lower()
    if log_format not in FORMATS:
        raise ConfigError(f"-logformat must be json or text, not {log_format!r}")
    return Settings(
        addr=addr,
        datadir=Path(pick("datadir") or manifests.configuration.data_dir or "./data"),
        certfile=Path(certfile) if certfile else None,
        keyfile=Path(keyfile) if keyfile else None,
        workers=workers,
        cfgdirs=cfgdirs,
        manifests=manifests,
        token_secret=secret_text.encode() if secret_text is not None else None,
        token_key_file=Path(key_file) if key_file else None,
        token_lifetime=lifetime,
        body_timeout=body_timeout,
        service=pick("service") or web.service,
        trust_forwarded=_env_bool(trust)
        if trust is not None
        else bool(web.trust_forwarded_headers),
        redis=redis,
        s3=s3,
        metrics_enabled=metrics_enabled,
        metrics_addr=metrics_addr,
        log_level=log_level,
        log_format=log_format,
    )


def _body_timeout(text: str | None, configured: float | None) -> float:
    """`-bodytimeout` in seconds (fractions allowed), over `spec.web.bodyTimeout`."""
    if text is None:
        return configured or 60.0
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(f"-bodytimeout takes seconds, not {text!r}") from None
    if not 0 < seconds <= MAX_BODY_TIMEOUT:
        raise ConfigError(f"-bodytimeout must be above 0 and at most {MAX_BODY_TIMEOUT} seconds")
    return seconds


def _section_values(
    path: str, section: object, fields: Mapping[str, sections.Field]
) -> dict[str, object]:
    """A merged Configuration section by Settings attribute (the loader checked each part)."""
    try:
        return sections.values(path, section, fields)
    except sections.SectionError as error:
        raise ConfigError(f"Configuration spec.{error.path}: {error.message}") from None


def _s3_settings(pick: Callable[[str], str | None], manifests: Manifests) -> S3Settings | None:
    """`-s3*` flags (and variables) over `spec.storage.s3` of the Configuration."""
    section = manifests.configuration.sections.get("storage", {}).get("s3") or {}
    values = _section_values("storage.s3", section, sections.S3_FIELDS)
    for flag, name in (
        ("s3bucket", "bucket"),
        ("s3endpoint", "endpoint_url"),
        ("s3region", "region"),
        ("s3prefix", "prefix"),
    ):
        given = pick(flag)
        if given is not None:
            values[name] = given
    path_style = pick("s3pathstyle")
    if path_style is not None:
        values["path_style"] = _env_bool(path_style)
    if not values.get("bucket"):
        if values:
            raise ConfigError("S3 storage needs a bucket (-s3bucket or spec.storage.s3.bucket)")
        return None
    return S3Settings(**values)  # type: ignore[arg-type]


def _redis_settings(
    pick: Callable[[str], str | None], manifests: Manifests
) -> RedisSettings | None:
    """`-redisurl` (and its variable) over `spec.redis` of the Configuration."""
    section = manifests.configuration.sections.get("redis", {})
    values = _section_values("redis", section, sections.REDIS_FIELDS)
    url = pick("redisurl")
    if url is not None:
        values["url"] = url
    if not values.get("url"):
        return None
    _check_redis_url(str(values["url"]))
    return RedisSettings(**values)  # type: ignore[arg-type]


def _metrics_settings(
    pick: Callable[[str], str | None], manifests: Manifests
) -> tuple[bool, str | None]:
    """`spec.metrics` of the Configuration (`enabled`, `addr`), under `-metricsaddr`."""
    section = manifests.configuration.sections.get("metrics", {})
    values = _section_values("metrics", section, sections.METRICS_FIELDS)
    enabled = values.get("enabled", True)
    addr = pick("metricsaddr") or values.get("addr")
    assert isinstance(enabled, bool) and (addr is None or isinstance(addr, str))
    if addr is not None and not enabled:
        raise ConfigError("a metrics address is set but spec.metrics.enabled is false")
    return enabled, addr or None


def _check_redis_url(url: str) -> None:
    from registry.coord.redis import parse_sentinel_url

    if not url.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
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


def _check_addr(addr: str, flag: str = "-addr") -> None:
    host, sep, port = addr.rpartition(":")
    port_number = whole_number(port)
    if not sep or port_number is None or port_number > 65535:
        raise ConfigError(f"{flag} must be HOST:PORT, not {addr!r}")
    del host
