"""Logging for `nurture serve`: tokens and addresses never reach a log line.

uvicorn's access log prints every path, and /confirm/<token> and
/unsubscribe/<token> carry tokens; `RedactPaths` blanks them (and any address)
in every uvicorn record and in nurture's own.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

import uvicorn.config

from nurture.events import scrub


# The console's searches (?q=a name) are the owner's business, not the log's.
_CONSOLE_QUERY = re.compile(r"(/console/[^\s?\"]*)\?[^\s\"]*")


def _redact(text: str) -> str:
    return _CONSOLE_QUERY.sub(r"\1?…", scrub(text))


class RedactPaths(logging.Filter):
    """Replaces the token in /confirm/<token> and /unsubscribe/<token> (and any address) in log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact(value) if isinstance(value, str) else value for key, value in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = _redact(record.msg)
        if record.exc_info and not record.exc_text:
            # A traceback's messages can quote a path or an address too.
            record.exc_text = scrub(_FORMATTER.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


_FORMATTER = logging.Formatter()

_REDACT = RedactPaths()


def redact_filter() -> RedactPaths:
    """One shared instance, so configuring logging twice does not stack filters."""
    return _REDACT


def log_config() -> dict[str, Any]:
    """uvicorn's default logging, with tokens and addresses redacted from every uvicorn record."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    # logging.config resolves this dotted path: keep it pointing at redact_filter above.
    config["filters"] = {"redact": {"()": f"{__name__}.{redact_filter.__name__}"}}
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        config["loggers"].setdefault(name, {})["filters"] = ["redact"]
    return config


def show_nurture_logs() -> None:
    """nurture's own messages (webhook counts, refusals) on stderr beside uvicorn's, once."""
    logger = logging.getLogger("nurture")
    if any(getattr(handler, "_nurture_serve", False) for handler in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:  %(message)s"))
    handler.addFilter(redact_filter())
    handler._nurture_serve = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
