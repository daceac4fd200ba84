"""Structured logs: one JSON object a line on stderr, with every known secret redacted.

Secrets are redacted twice: by value (the ones this process was given, registered with
`Redactor.add`) and by shape (API keys, environment keys, signing secrets, bearer tokens), so
a secret that reaches a log line through a library's message is still never written.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"

# Shapes of credentials that must never be written, whoever logs them.
_SECRET_SHAPES = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]+"  # Anthropic API and environment keys
    r"|whsec_[A-Za-z0-9+/=_\-]+"  # webhook signing secrets
    r"|(?<=Bearer )[A-Za-z0-9._~+/=\-]+)"  # any bearer token
)

# Attributes every LogRecord has; anything else was passed as `extra=` and is a field.
# (uvicorn adds `color_message`, a copy of the message with terminal colours.)
_RECORD_ATTRS = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class Redactor:
    """Replaces known secret values and secret-shaped strings with a placeholder."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Remember more secret values (short strings are ignored: they would redact words)."""
        self._secrets.update(s for s in secrets if s and len(s) >= 8)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return _SECRET_SHAPES.sub(REDACTED, text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: ts, level, logger, msg, extra fields, exc."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self.redactor(json.dumps(entry, default=str))


def configure_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> Redactor:
    """Send every logger's records to stderr as JSON lines; returns the redactor to extend."""
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redactor))
    root = logging.getLogger()
    # Replace whatever an imported SDK installed (the Blaxel SDK calls basicConfig).
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redactor


def register_secrets(secrets: Iterable[str]) -> None:
    """Teach every JSON handler on the root logger these secret values."""
    values = list(secrets)
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.redactor.add(values)
