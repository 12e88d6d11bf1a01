"""`serve` flags in the seed project's style: `-flag` or `--flag`, `SIMPLE_REGISTRY_<NAME>`
environment fallbacks, and the precedence flag > environment > default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from registry.config.settings import ConfigError, PasswordCheck, Settings

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
        "cfgdir",
        metavar="DIR",
        action="append",
        help="folder of YAML manifests (repeatable; env: comma-separated list)",
    )
    return parser


def parse_serve(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    args = serve_parser().parse_args(list(argv))

    def pick(name: str) -> str | None:
        value = getattr(args, name)
        if value is not None:
            return str(value) if not isinstance(value, list) else ",".join(value)
        return env.get(ENV_PREFIX + name.upper())

    password = pick("adminpwd")
    password_file = pick("adminpwdfile")
    if password_file:
        try:
            password = Path(password_file).read_text(encoding="utf-8").removesuffix("\n")
            password = password.removesuffix("\r")
        except OSError as exc:
            raise ConfigError(
                f"cannot read -adminpwdfile {password_file}: {exc.strerror}"
            ) from None
    if password == "":
        raise ConfigError("the admin password is empty")

    anonymous = _env_bool(pick("anonymous") or "false")
    if password is None and not anonymous:
        raise ConfigError(
            "no admin password: give -adminpwd, -adminpwdfile or SIMPLE_REGISTRY_ADMINPWD "
            "(or -anonymous to allow everyone read/write, which is unsafe)"
        )

    workers_text = pick("workers") or "1"
    try:
        workers = int(workers_text)
    except ValueError:
        raise ConfigError(f"-workers must be a whole number, not {workers_text!r}") from None
    if not 1 <= workers <= 256:
        raise ConfigError("-workers must be between 1 and 256")

    certfile, keyfile = pick("certfile"), pick("keyfile")
    if bool(certfile) != bool(keyfile):
        raise ConfigError("-certfile and -keyfile go together")
    for path in (certfile, keyfile):
        if path and not Path(path).is_file():
            raise ConfigError(f"no such file: {path}")

    addr = pick("addr") or "0.0.0.0:5000"
    _check_addr(addr)
    cfgdirs = tuple(Path(p) for p in (pick("cfgdir") or "").split(",") if p.strip())

    return Settings(
        addr=addr,
        datadir=Path(pick("datadir") or "./data"),
        admin_name=pick("adminname") or "admin",
        admin_password=PasswordCheck.of(password) if password is not None else None,
        anonymous=password is None and anonymous,
        certfile=Path(certfile) if certfile else None,
        keyfile=Path(keyfile) if keyfile else None,
        workers=workers,
        cfgdirs=cfgdirs,
    )


def _check_addr(addr: str) -> None:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"-addr must be HOST:PORT, not {addr!r}")
    del host
