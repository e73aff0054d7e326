"""The few pages subscribers see, and the SendGrid webhook, as one Starlette app.

Routes (nothing else is exposed; there are no admin pages):

    GET  POST /subscribe              signup form (honeypot, per-IP rate limit)
    GET  POST /confirm/{token}        GET shows a button, only POST confirms
    GET  POST /unsubscribe/{token}    GET shows a button, POST unsubscribes (also RFC 8058 one-click)
    POST      /webhooks/sendgrid      signed Event Webhook (see nurture.providers.sendgrid.events)
    POST      /webhooks/booking       signed booking notice: tags the person "booked" (see booking)
    GET       /healthz                {"status": "ok"} after a trivial query

The handlers live in `pages` and `webhooks`; body limits, the rate limiter and the
security headers in `guards`; log redaction in `logs`. Addresses, names and
tokens never reach the logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nurture.app import App
from nurture.config import WEBHOOK_KEY_ENV
from nurture.events import scrub
from nurture.web.booking import BOOKING_BODY_LIMIT, booking_webhook
from nurture.web.guards import FORM_BODY_LIMIT, RATE_LIMIT, WEBHOOK_BODY_LIMIT, RateLimiter, SecurityHeaders
from nurture.web.logs import log_config, show_nurture_logs
from nurture.web.pages import Pages, confirm_page, healthz, subscribe_page, unsubscribe_page
from nurture.web.webhooks import sendgrid_webhook

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

ROUTES = (
    Route("/subscribe", subscribe_page, methods=["GET", "POST"]),
    Route("/confirm/{token}", confirm_page, methods=["GET", "POST"]),
    Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET", "POST"]),
    Route("/webhooks/sendgrid", sendgrid_webhook, methods=["POST"], max_body_size=WEBHOOK_BODY_LIMIT),
    Route("/webhooks/booking", booking_webhook, methods=["POST"], max_body_size=BOOKING_BODY_LIMIT),
    Route("/healthz", healthz, methods=["GET"]),
)
_JSON_PATHS = {"/webhooks/sendgrid", "/webhooks/booking", "/healthz"}


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def create_app(app: App, *, clock: Clock = _utc_now, rate_limit: tuple[int, float] = RATE_LIMIT) -> Starlette:
    """The ASGI app serving `app`'s store. `clock` and `rate_limit` are for tests."""
    site = Starlette(
        routes=ROUTES,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        max_body_size=FORM_BODY_LIMIT,
    )
    # What the handlers read from request.app.state.
    site.state.app = app
    site.state.clock = clock
    site.state.pages = Pages(app)
    site.state.limiter = RateLimiter(*rate_limit)
    return site


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if request.url.path in _JSON_PATHS:
        return JSONResponse({"error": "request failed"}, status_code=status)
    pages: Pages = request.app.state.pages
    titles = {404: "Page not found", 405: "Not allowed", 413: "Too large"}
    return pages.message(titles.get(status, "Something went wrong"), "Please check the address of this page.", status=status)


async def server_error(request: Request, exc: Exception) -> Response:
    # Never the exception text: it could name an address. The type is enough to start from.
    log.error("%s %s failed: %s", request.method, scrub(request.url.path), type(exc).__name__)
    pages: Pages = request.app.state.pages
    return pages.message(
        "Something went wrong",
        "Sorry, this did not work. Please try again in a few minutes.",
        status=500,
    )


def server_config(asgi: Any, *, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """The uvicorn settings `nurture serve` uses (tests start the same)."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "proxy_headers": True,
        "forwarded_allow_ips": "127.0.0.1",
        "server_header": False,
        "log_config": log_config(),
        "ws": "none",
        "lifespan": "off",
    }
    options.update(overrides)
    return uvicorn.Config(asgi, **options)


def serve(app: App, *, host: str, port: int) -> None:
    """Run until stopped (Ctrl-C or SIGTERM)."""
    config = server_config(create_app(app), host=host, port=port)  # this configures uvicorn's logging
    show_nurture_logs()
    if not app.config.secrets.webhook_public_key:
        log.warning("%s is not set: the SendGrid webhook will refuse every event", WEBHOOK_KEY_ENV)
    uvicorn.Server(config).run()
