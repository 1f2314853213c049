"""Structured logs: one JSON object per line on stderr, with the ``extra`` fields kept.

Every line passes a :class:`domain.credentials.Redactor` that knows the configured secrets
(camera passwords, the S3 and database passwords; :func:`protect_secrets`, called when the
settings are read) and masks any URL's login it did not know of. The sources redact their own
texts; this is the last line of defence, for tracebacks and texts nobody foresaw.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from domain.credentials import Redactor

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


_SECRETS = Redactor()


def protect_secrets(*secrets: str) -> None:
    """Mask these in every log line from now on (in every spelling, JSON-escaped included)."""
    _SECRETS.add(*secrets)


class RedactingFormatter(logging.Formatter):
    """Formats with ``inner``, then masks the secrets in the whole line (message, extras, traceback)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return _SECRETS.text(self._inner.format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    inner = (
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(RedactingFormatter(inner))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter that would drown the recorder's own lines.
    for noisy in ("libav", "urllib3", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
