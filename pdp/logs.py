"""Structured server logs: one JSON object per line on stderr, apart from decision logs."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON: time, level, logger, message, and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str = "info") -> None:
    """Send pdp's logs to stderr as JSON lines, and every other logger's warnings and errors
    too (grpc, asyncio, Python warnings): nothing else writes plain text there."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("pdp")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").filters[:] = [_mark_warning]
    everything = logging.getLogger()
    everything.handlers[:] = [handler]
    everything.setLevel(logging.WARNING)


def _mark_warning(record: logging.LogRecord) -> bool:
    """A Python warning's log line: `"event": "python_warning"`, its text on one line."""
    record.event = "python_warning"
    record.msg = str(record.msg).strip()
    return True
