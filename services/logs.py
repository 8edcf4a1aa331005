"""Structured logging: one JSON object per line in production, readable lines in a terminal."""

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from services.telemetry import current_ids

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
SECRET_KEYS = frozenset({"token", "password", "authorization", "secret", "x-consul-token"})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _RESERVED or key.startswith("_"):
            continue
        fields[key] = "[redacted]" if key.lower() in SECRET_KEYS else value
    return fields


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object with stable keys."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line of a record."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(current_ids())
        line.update(_fields(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class ConsoleFormatter(logging.Formatter):
    """Format a record as a short line followed by its key=value fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the readable line of a record."""
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        fields = {**_fields(record), **current_ids()}
        pairs = " ".join(f"{k}={v}" for k, v in fields.items())
        text = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()} {pairs}".rstrip()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(level: str, fmt: str) -> None:
    """Configure the root logger once: JSON unless ``fmt`` is console or stderr is a TTY."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "uvicorn.access", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
