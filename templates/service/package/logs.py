"""Structured logs: one JSON object per line on stderr, for access and for the gateway's own
events (startup checks, upstream trouble)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

access = logging.getLogger("hapta.access")
log = logging.getLogger("hapta")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure(level: str) -> None:
    """Send ``hapta.*`` loggers to stderr as JSON lines (idempotent)."""
    root = logging.getLogger("hapta")
    if not any(getattr(h, "_hapta", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._hapta = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(level.upper())


def access_line(
    *, method: str, path: str, route: str, status: int, started: float, client: str,
    upstream_ms: float | None, size: int,
) -> None:
    if not access.isEnabledFor(logging.INFO):
        return
    fields = {
        "method": method,
        "path": path,
        "route": route,
        "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 2),
        "upstream_ms": upstream_ms,
        "client": client,
        "bytes": size,
    }
    access.info("", extra={"fields": fields})
