"""Logging for the command line and the server: JSON lines for machines, text for people.

When stderr is not a terminal (cron, systemd, a container) every record is one JSON
object per line (python-json-logger), with whatever ``extra`` fields the caller gave, so
a sync summary's counts or a request's id are fields, not text to parse. On a terminal
records are plain text lines. Either way a line stays a line: JSON escapes what it
carries, and the text formatter escapes control characters in the message (which may
quote an attacker's filename, path or metadata) and indents every continuation line of
a traceback, so nothing a record carries can forge the start of another record.

Records logged while a request is handled carry its ``request_id`` (see
``mirror.web.observe``): a context variable, so each gunicorn thread sees its own.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

# Loggers we own: ``qmirror.*`` (commands, sync, upstream) and ``mirror.*`` (Flask names
# the app's logger after the package, ``mirror.web``, and logs unhandled errors there).
LOGGER_NAMES = ("qmirror", "mirror")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
CONTINUATION = "  | "

request_id: ContextVar[str | None] = ContextVar("qmirror_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to records emitted while a request is being handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = request_id.get()
        if current is not None and not hasattr(record, "request_id"):
            record.request_id = current
        return True


def escape(text: str) -> str:
    """Control, bidi and other non-printable characters as ``\\x..`` / ``\\u....``."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL [request id] message``, one line; tracebacks indented under it."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        prefix = f"{record.asctime} {record.levelname} "
        return prefix + (f"[{rid}] " if rid else "") + escape(record.message)

    def formatException(self, ei: object) -> str:
        return _indent(super().formatException(ei))  # type: ignore[arg-type]

    def formatStack(self, stack_info: str) -> str:
        return _indent(stack_info)


def _indent(text: str) -> str:
    return "\n".join(CONTINUATION + escape(line) for line in text.splitlines())


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",  # ISO 8601, UTC
        json_ensure_ascii=False,
    )


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record, like the standard
    library's last-resort handler, so a replaced stderr never leaves a dead stream here."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def setup_logging(
    level: int, *, as_json: bool | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Install (or replace) our one handler on the loggers we own. ``as_json`` defaults
    to "stderr is not a terminal". Idempotent: calling it again replaces the handler."""
    target = stream if stream is not None else sys.stderr
    if as_json is None:
        as_json = not _isatty(target)
    handler: logging.Handler = StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(json_formatter() if as_json else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler._qmirror = True  # type: ignore[attr-defined]
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        logger.handlers[:] = [h for h in logger.handlers if not getattr(h, "_qmirror", False)]
        logger.addHandler(handler)
        logger.setLevel(level)
    return handler


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
