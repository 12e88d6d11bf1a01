"""Log output: one JSON object per line for log pipelines, or plain text for terminals.

Every record carries a timestamp (UTC, RFC 3339), a level, the logger, the message, the pid
(workers share stderr) and, when it was logged while a request ran, that request's id.
Structured fields go in `extra={"fields": {...}}` and become keys of the JSON object (or
`key=value` pairs in text). Nothing here reads request headers or bodies: what may be logged
is decided where a record is made (see `middleware.py`), and credentials never are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import IO, Any

from registry.config.log_names import LEVELS
from registry.observe import context

# Always shown, whatever the level: tools and tests wait for the "listening on" line.
ANNOUNCE = "registry.server.announce"

# Libraries whose debug output includes signed request headers or connection details: kept
# at WARNING even with -loglevel debug, so that debugging never writes a credential (httpx
# also logs each upstream request of the pull-through cache at INFO).
QUIET_LIBRARIES = (
    "botocore",
    "aiobotocore",
    "urllib3",
    "aiohttp",
    "redis",
    "asyncio",
    "httpx",
    "httpcore",
)

_CORE_KEYS = frozenset({"timestamp", "level", "logger", "message", "pid", "request_id"})


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    if not isinstance(fields, dict):
        return {}
    return {k: v for k, v in fields.items() if k not in _CORE_KEYS}


class RequestIdFilter(logging.Filter):
    """Stamps the id of the request being served on every record logged meanwhile."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            info = context.current()
            record.request_id = info.request_id if info is not None else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            out["request_id"] = request_id
        out.update(_fields(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # ASCII only: the line stays valid whatever encoding stderr has.
        return json.dumps(out, default=str, separators=(",", ":"))


def _text_value(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    if not text or any(c.isspace() or c in '"=' or not c.isprintable() for c in text):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _timestamp(record),
            f"{record.levelname:<7}",
            f"{record.name}:",
            record.getMessage(),
        ]
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            parts.append(f"request_id={request_id}")
        parts += [f"{k}={_text_value(v)}" for k, v in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class BatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the lines logged during one turn of the event loop with one `write`.

    Under load every request logs a line; a `write` (a system call) per line took a tenth of a
    worker's time. Lines logged on the event loop's thread are collected and written together
    as soon as the loop has finished its current turn, so nothing waits longer than that.
    Lines from other threads, or from outside a loop, are written at once (after whatever was
    collected, to keep the order). `flush` (called at exit) writes what is left.
    """

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._guard = threading.RLock()  # the handler's own lock, typed
        self._pending: list[str] = []
        self._scheduled: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        loop = _running_loop()
        with self._guard:
            self._pending.append(line)
            if loop is None:
                self._write_pending()
            elif self._scheduled is not loop:
                self._scheduled = loop
                loop.call_soon(self.flush)

    def flush(self) -> None:
        with self._guard:
            self._scheduled = None
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text, self._pending = "".join(self._pending), []
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nothing better to do
            pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def configure(level: str, fmt: str, stream: IO[str] | None = None) -> None:
    """Route every logger of the process (ours, Hypercorn's, libraries') to one handler."""
    handler = BatchingHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # Python's own warnings would otherwise be printed as bare lines between the records.
    logging.captureWarnings(True)
    logging.getLogger(ANNOUNCE).setLevel(logging.INFO)
    # Hypercorn's "Running on ..." lines are noise next to ours; its errors still show.
    hypercorn_level = logging.DEBUG if level == "debug" else max(LEVELS[level], logging.WARNING)
    logging.getLogger("hypercorn.error").setLevel(hypercorn_level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(LEVELS[level], logging.WARNING))
