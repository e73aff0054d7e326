"""The few pages subscribers see, and the SendGrid webhook, as one Starlette app.

Routes (nothing else is exposed):

    GET  POST /subscribe              signup form (honeypot, per-client rate limit in the store)
    GET  POST /confirm/{token}        GET shows a button, only POST confirms
    GET  POST /unsubscribe/{token}    GET shows a button, POST unsubscribes (also RFC 8058 one-click)
    GET  POST /preferences/{token}    the reader's preference center (see preferences); /pause,
              /preferences/{token}/…  /resume, /unsubscribe (POST) and /keep (GET shows, POST acts)
    POST      /webhooks/sendgrid      signed Event Webhook (see nurture.providers.sendgrid.event_webhook)
    POST      /webhooks/ses           SES events by SNS over HTTPS, signed (nurture.providers.ses.sns)
    POST      /webhooks/booking       signed booking notice: tags the person "booked" (see booking)
    GET       /healthz                {"status": "ok"} after a trivial query
    GET  POST /console/...            the owner console, behind a login (see nurture.web.console)

The handlers live in `pages` and `webhooks`; body limits and the security headers
in `middleware`; the signup rate limit in `ratelimit`; the signup worker in `signups`
(started and stopped by the app's lifespan); log redaction in `logs`. Addresses,
names and tokens never reach the logs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nurture.app import App
from nurture.config import WEBHOOK_KEY_ENV
from nurture.deliverability.doctor import DoctorOptions
from nurture.web.booking import BOOKING_BODY_LIMIT, booking_webhook
from nurture.web.console.access import FORM_LIMIT as CONSOLE_FORM_LIMIT
from nurture.web.console.access import UPLOADS
from nurture.web.console.import_jobs import ImportJobs
from nurture.web.console.paths import PREFIX as CONSOLE_PREFIX
from nurture.web.console.render import error_page, is_console_path
from nurture.web.console.routes import console_routes, console_state
from nurture.web.logs import know_routes, log_config, route_template, show_nurture_logs
from nurture.web.middleware import (
    FORM_BODY_LIMIT,
    SNS_BODY_LIMIT,
    WEBHOOK_BODY_LIMIT,
    BodyLimit,
    FreshSettings,
    SecurityHeaders,
)
from nurture.web.pages import Pages, confirm_page, healthz, subscribe_page, unsubscribe_page
from nurture.web.preferences import preferences_action, preferences_page
from nurture.web.ratelimit import PREFERENCES_PURPOSE, PREFERENCES_RATE_LIMIT, RATE_LIMIT, SignupLimit
from nurture.web.signups import DELAY as SIGNUP_DELAY
from nurture.web.signups import SignupQueue
from nurture.web.webhooks import sendgrid_webhook, ses_webhook

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

ROUTES = (
    Route("/subscribe", subscribe_page, methods=["GET", "POST"]),
    Route("/confirm/{token}", confirm_page, methods=["GET", "POST"]),
    Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET", "POST"]),
    Route("/preferences/{token}", preferences_page, methods=["GET", "POST"]),
    Route("/preferences/{token}/{action}", preferences_action, methods=["GET", "POST"]),
    Route("/webhooks/sendgrid", sendgrid_webhook, methods=["POST"]),
    Route("/webhooks/ses", ses_webhook, methods=["POST"]),
    Route("/webhooks/booking", booking_webhook, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
)
_JSON_PATHS = {"/webhooks/sendgrid", "/webhooks/ses", "/webhooks/booking", "/healthz"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    app: App,
    *,
    clock: Clock = _utc_now,
    rate_limit: tuple[int, float] = RATE_LIMIT,
    signup_delay: float = SIGNUP_DELAY,
    preference_limit: tuple[int, float] = PREFERENCES_RATE_LIMIT,
    doctor: DoctorOptions | None = None,
) -> Starlette:
    """The ASGI app serving `app`'s store. `clock`, the limits and `signup_delay` are for tests."""
    signups = SignupQueue(app, delay=signup_delay)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        signups.start()
        try:
            yield
        finally:
            await run_in_threadpool(signups.stop)  # finishes the signups already accepted
            site.state.console_imports.close()  # uploads not imported are deleted

    site = Starlette(
        routes=[*ROUTES, *console_routes(app)],
        lifespan=lifespan,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(FreshSettings, refresh=app.refresh_settings),
            # One-click unsubscribe acts whatever the body (RFC 8058); everything else over
            # its limit is refused before its handler runs.
            Middleware(
                BodyLimit,
                limit=FORM_BODY_LIMIT,
                limits={
                    "/webhooks/sendgrid": WEBHOOK_BODY_LIMIT,
                    "/webhooks/ses": SNS_BODY_LIMIT,
                    "/webhooks/booking": BOOKING_BODY_LIMIT,
                },
                # The console's forms have their own, larger limit (its guard says why).
                prefix_limits={CONSOLE_PREFIX + "/": CONSOLE_FORM_LIMIT},
                acts_anyway=("/unsubscribe/",),
                streamed=tuple(UPLOADS),
                too_large=http_error,
            ),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    # A path that misses only by a slash gets a 404, not Starlette's redirect, which would
    # name whatever site the Host header says (the console redirects such paths itself).
    site.router.redirect_slashes = False
    # What the handlers read from request.app.state.
    site.state.app = app
    site.state.clock = clock
    site.state.pages = Pages(app)
    site.state.limiter = SignupLimit(*rate_limit)
    site.state.preference_limiter = SignupLimit(*preference_limit, purpose=PREFERENCES_PURPOSE)
    site.state.signups = signups
    know_routes(site.routes)  # the access log's allow-list (the live list: later routes count too)
    site.state.console_pages = console_state(app)
    site.state.console_imports = ImportJobs()
    # The console's Inbox page runs the doctor's checks; a page load waits for them, so briefly.
    site.state.doctor_options = doctor or DoctorOptions(timeout=3.0)
    return site


def _in_console(request: Request) -> bool:
    app: App = request.app.state.app
    return app.config.console.enabled and is_console_path(request.url.path)


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if _in_console(request):
        return error_page(request, status)
    if request.url.path in _JSON_PATHS:
        return JSONResponse({"error": "request failed"}, status_code=status)
    pages: Pages = request.app.state.pages
    titles = {404: "Page not found", 405: "Not allowed", 413: "Too large"}
    return pages.message(
        titles.get(status, "Something went wrong"), "Please check the address of this page.", status=status
    )


async def server_error(request: Request, exc: Exception) -> Response:
    # Never the exception text: it could name an address. The type is enough to start from.
    log.error("%s %s failed: %s", request.method, route_template(request.url.path), type(exc).__name__)
    if _in_console(request):
        return error_page(request, 500)
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
        "lifespan": "on",  # starts and stops the signup worker
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
