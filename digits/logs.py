"""Structured logging: one JSON object per line, each carrying the request id it belongs to.

The request id lives in a context variable that the API middleware sets for each request, so
every line logged while serving it (ours, SQLAlchemy's, uvicorn's errors) carries it; lines
outside a request carry ``null``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# LogRecord attributes that are not user-supplied ``extra`` fields.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


# C0 and C1 control characters (newline, carriage return, escape...) and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


class TextFormatter(logging.Formatter):
    """One line per record: control characters a client sent (in a path, a header) are escaped,
    so they cannot forge a line or drive the terminal. A traceback follows on its own lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _CONTROL.sub(_escape, super().formatMessage(record))


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Route the root, uvicorn and SQLAlchemy loggers to one stderr handler (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler.set_name("digits")
    root = logging.getLogger()
    # Replace console handlers (ours from an earlier call, or a CLI's basicConfig) so each line
    # is printed once, in one format; other handlers (files, test capture) stay.
    kept = [
        h
        for h in root.handlers
        if h.get_name() != "digits"
        and not (type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.stdout))
    ]
    root.handlers = [*kept, handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # import-time noise
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # digits.access writes the access line (with the request id, route and duration);
    # uvicorn's own would be a second line per request.
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
