"""`simple-registry serve | gc | check-config | genhash | version`.

Every error a user can cause ends in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import getpass
import logging
import sys
from collections.abc import Sequence

import bcrypt

import registry
from registry.config.flags import parse_serve, serve_parser
from registry.config.settings import ConfigError, ConfigErrors

VERSION = registry.__version__
USAGE = """usage: simple-registry <command> [flags]

commands:
  serve         run the registry (simple-registry serve -h for its flags)
  gc            delete what nothing references, while the registry serves (gc -h);
                garbage-collect is the same, with the seed project's flag spellings too
  check-config  validate the YAML manifests of -cfgdir folders; -explain USER REPO
  genhash       print the bcrypt hash of a password read from the terminal or stdin
  version       print the version
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    try:
        if command == "serve":
            return _serve(rest)
        if command in ("gc", "garbage-collect"):
            from registry.gc.command import gc_main

            return gc_main(rest, command)
        if command == "check-config":
            from registry.check_config import check_config

            return check_config(rest)
        if command == "genhash":
            return _genhash(rest)
        if command in ("version", "-version", "--version"):
            return _version(rest)
    except ConfigError as exc:
        _print_errors(exc)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"simple-registry: unknown command {command!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 2


def _print_errors(exc: ConfigError) -> None:
    """One line per mistake; several (from the manifests) are followed by their count."""
    messages = exc.messages if isinstance(exc, ConfigErrors) else (str(exc),)
    for message in messages:
        print(f"simple-registry: {message}", file=sys.stderr)
    if len(messages) > 1:
        print(f"simple-registry: {len(messages)} configuration errors", file=sys.stderr)


def _serve(argv: list[str]) -> int:
    from registry.server import metrics_directory

    # First of all: prometheus_client reads where to keep its values when first imported.
    with metrics_directory():
        return _serve_with(argv)


def _serve_with(argv: list[str]) -> int:
    from registry.observe.logs import configure

    settings = parse_serve(argv)
    configure(settings.log_level, settings.log_format)
    log = logging.getLogger("registry")
    if any(b.name == "simple-registry:anonymous" for b in settings.manifests.bindings):
        log.warning("no admin password: ANYONE can push, pull and delete (started with -anonymous)")
    for warning in settings.manifests.warnings:
        log.warning("%s", warning)
    if settings.token_secret is not None:
        from registry.auth.keys import weak_secret_warning

        weak = weak_secret_warning(settings.token_secret)
        if weak:
            log.warning("%s", weak)
    from registry.server import serve

    # Each start-up step turns its own OSError into a line naming its path or address.
    return serve(settings)


def _genhash(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="simple-registry genhash",
        description="Print the bcrypt hash of a password. On a terminal the password is read "
        "without echo; otherwise from stdin, with one trailing newline stripped.",
    )
    parser.parse_args(argv)
    if sys.stdin.isatty():
        password = getpass.getpass("Enter password (no echo): ", stream=sys.stderr)
    else:
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not password:
        raise ConfigError("refusing to hash an empty password")
    if len(password.encode()) > 72:
        raise ConfigError("bcrypt uses at most 72 bytes of a password; choose a shorter one")
    print(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode())
    return 0


def _version(argv: list[str]) -> int:
    import argparse

    argparse.ArgumentParser(prog="simple-registry version").parse_args(argv)
    print(f"simple-registry\tv{VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "serve_parser"]
