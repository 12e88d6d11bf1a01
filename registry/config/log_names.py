"""The names `-loglevel` and `-logformat` accept, and the format chosen when none is given.

Kept apart from the log machinery (`registry.observe.logs`) so that configuration can check
the names without importing observability, which sits above it.
"""

from __future__ import annotations

import logging
import sys
from typing import IO

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("json", "text")


def default_format(stream: IO[str] | None = None) -> str:
    """Text for a person at a terminal, JSON for everything else (a pipe, a file, a collector)."""
    target = sys.stderr if stream is None else stream
    try:
        return "text" if target.isatty() else "json"
    except (AttributeError, ValueError):  # closed or not a real stream
        return "json"
