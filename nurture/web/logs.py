"""Logging for `nurture serve`: tokens, names and addresses never reach a log line.

uvicorn's access log would print every path with its query: /confirm/<token>,
/unsubscribe/<token>, /subscribe?first_name=... An access line names the route
instead ("/unsubscribe/{token}"), from an allow-list: the app's own routes, as
`know_routes` was given them; any other path (a 404, /UNSUBSCRIBE/<t>,
/unsubscribe//<t>) is "<unknown path>". The query string and the client's address
are left out. Every other record, uvicorn's and nurture's, is scrubbed of addresses
and tokens, tracebacks included.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import uvicorn.config
from starlette.routing import BaseRoute, Mount, Route

from nurture.redaction import scrub

UNKNOWN_PATH = "<unknown path>"
_ACCESS_LOGGER = "uvicorn.access"


class _KnownRoutes:
    """The routes of the app being served: the access log's allow-list."""

    routes: Sequence[BaseRoute] = ()


def know_routes(routes: Sequence[BaseRoute]) -> None:
    """Log paths as these routes' templates. Pass the app's live route list, so routes
    added to it later (a Mount) are known too."""
    _KnownRoutes.routes = routes


def route_template(path: str, routes: Sequence[BaseRoute] | None = None) -> str:
    """The template of the route serving `path` (decoded, no query), or UNKNOWN_PATH."""
    for route in _KnownRoutes.routes if routes is None else routes:
        if isinstance(route, Mount):
            if path == route.path:
                return route.path
            match = route.path_regex.match(path)
            if match:
                if not route.routes:
                    return route.path + "/{path}"
                inner = route_template("/" + match.group("path"), route.routes)
                return UNKNOWN_PATH if inner == UNKNOWN_PATH else route.path + inner
        elif isinstance(route, Route) and route.path_regex.match(path):
            return route.path
    return UNKNOWN_PATH


def _access_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    # uvicorn's access record: (client address, method, path with query, HTTP version, status).
    _client, method, full_path, version, status = args
    path = unquote(str(full_path).split("?", 1)[0])
    return ("-", method, route_template(path), version, status)


class RedactPaths(logging.Filter):
    """Access lines name the route, not the path; every record is scrubbed of addresses and tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == _ACCESS_LOGGER and isinstance(record.args, tuple) and len(record.args) == 5:
            record.args = _access_args(record.args)
        elif isinstance(record.args, tuple) and record.args:
            record.args = tuple(scrub(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                key: scrub(value) if isinstance(value, str) else value for key, value in record.args.items()
            }
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
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
    # The form parser warns about every malformed upload a bot sends, quoting what it sent;
    # the access line's 400 says enough. Its errors still show, redacted.
    config["loggers"]["python_multipart"] = {
        "handlers": ["default"],
        "level": "ERROR",
        "propagate": False,
        "filters": ["redact"],
    }
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
