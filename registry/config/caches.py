"""The rules of a PullThroughCache's own fields that are not a type: its upstream hosts, its
local prefix, and whether a scope can match a name under that prefix.

They sit apart from the loader (`manifests`) because routing (`registry.proxy.routing`) relies
on what they guarantee: a prefix is "" or a repository name and "/", a host is lower case.
"""

from __future__ import annotations

import ipaddress
import re

from registry.oci.names import is_valid_name

# One DNS label: letters, digits and inner hyphens, at most 63 characters.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL})(?:\.{_LABEL})*")
_BRACKETED = re.compile(r"\[([0-9a-f:.]+)\]")
# Characters with a meaning in a regex: a literal head ends at the first of them.
_SPECIAL = set(".^$*+?{}[]()|\\")
_REPEATS = set("?*{")  # after a character: it may be absent


def host_problem(host: str) -> str | None:
    """What is wrong with `host` as `HOST` or `HOST:PORT` (a DNS name, an IPv4 address or a
    bracketed IPv6 one, already in lower case); None when nothing is. No scheme, path or user."""
    if "/" in host or "@" in host:
        return _host_hint(host)
    name, port = host, None
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[: end + 1], host[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            return _host_hint(host)
        port = rest[1:] if rest else None
    elif host.count(":") == 1:
        name, port = host.split(":")
    if port is not None and not (port.isdigit() and port.isascii() and 1 <= int(port) <= 65535):
        return f"invalid port in {host!r} (expected 1 to 65535)"
    bracketed = _BRACKETED.fullmatch(name)
    if bracketed is not None:
        try:
            ipaddress.IPv6Address(bracketed[1])
        except ValueError:
            return _host_hint(host)
        return None
    if len(name) > 253 or not _HOST.fullmatch(name):
        return _host_hint(host)
    return None


def _host_hint(host: str) -> str:
    return (
        f"expected a registry host such as docker.io or localhost:5000 (no scheme or path), "
        f"got {host!r}"
    )


def prefix_problem(prefix: str) -> str | None:
    """What is wrong with a cache's local prefix; None when nothing is. The prefix is "" or a
    repository name followed by "/", so stripping it leaves whole path components."""
    if prefix == "":
        return None
    if not prefix.endswith("/") or not is_valid_name(prefix[:-1]):
        return (
            f"expected a repository name followed by '/', such as dockerhub/, or \"\" "
            f"(no prefix), got {prefix!r}"
        )
    return None


def literal_head(pattern: str) -> str | None:
    """The text every name `pattern` finds must start with, or None when that cannot be told.

    Known only for a pattern anchored at the start (`^` or `\\A`) without alternatives (`|`):
    then the head is its literal characters up to the first one with a meaning (`.`, a class,
    a group, an escape such as `\\d`), less a last character made optional by `?`, `*` or `{`.
    `\\.`, `\\/` and `\\-` count as the characters they escape."""
    found = _literal(pattern)
    return None if found is None else found[0]


def _literal(pattern: str) -> tuple[str, bool] | None:
    """`literal_head`, and whether the pattern ends right after it (`$` or `\\Z`), so that
    the head is the whole name."""
    if "|" in pattern:
        return None
    if pattern.startswith("^"):
        index = 1
    elif pattern.startswith("\\A"):
        index = 2
    else:
        return None
    head: list[str] = []
    while index < len(pattern):
        char = pattern[index]
        step = 1
        if char == "\\":
            escaped = pattern[index + 1 : index + 2]
            if not escaped or escaped.isalnum() or escaped == "_":
                break  # \d, \w, \Z, \1...: a class or an anchor, not a character
            char, step = escaped, 2
        elif char in _SPECIAL:
            break
        following = pattern[index + step : index + step + 1]
        if following and following in _REPEATS:
            return "".join(head), False
        head.append(char)
        index += step
        if following == "+":
            return "".join(head), False
    return "".join(head), pattern[index:] in ("$", "\\Z")


def can_match_under(pattern: str, prefix: str) -> bool:
    """False only when `pattern` provably finds no name that starts with `prefix`: its literal
    head and the prefix disagree before either ends, or the pattern is a whole name (`^…$`)
    that does not start with the prefix. True when it may (an unanchored pattern always may:
    it can find its text after the prefix)."""
    found = _literal(pattern)
    if found is None:
        return True
    head, whole = found
    return head.startswith(prefix) or (not whole and prefix.startswith(head))


__all__ = ["can_match_under", "host_problem", "literal_head", "prefix_problem"]
