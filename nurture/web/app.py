"""The few pages subscribers see, and the SendGrid webhook, as one Starlette app.

Routes (nothing else is exposed; there are no admin pages):

    GET  POST /subscribe              signup form (honeypot, per-IP rate limit)
    GET  POST /confirm/{token}        GET shows a button, only POST confirms
    GET  POST /unsubscribe/{token}    GET shows a button, POST unsubscribes (also RFC 8058 one-click)
    POST      /webhooks/sendgrid      signed Event Webhook (see nurture.events)
    GET       /healthz                {"status": "ok"} after a trivial query

Privacy: pages never say anything about a subscriber beyond "you are unsubscribed";
the signup answer is the same whether the address was new, pending or active (the
work happens after the answer is sent, so not even its timing tells). No cookies,
no tracking, no external resources. Addresses, names and tokens never reach the
logs: the access log is filtered (see `RedactPaths`).

Client IP: the socket peer. Behind a reverse proxy on the same machine, uvicorn's
proxy headers support (`proxy_headers=True`, `forwarded_allow_ips="127.0.0.1"`,
set by `server_config`) takes the address from X-Forwarded-For, trusting it only
when the request comes from 127.0.0.1.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from importlib.resources import files
from typing import Any

import jinja2
from markupsafe import Markup
from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from nurture import links
from nurture import events as webhooks
from nurture.app import App
from nurture.errors import InputError, TokenError
from nurture.audience.subscribers import clean_first_name, clean_timezone, normalize_email

log = logging.getLogger(__name__)

FORM_BODY_LIMIT = 64 * 1024
WEBHOOK_BODY_LIMIT = 8 * 1024 * 1024  # SendGrid posts batches of up to about 768 KB
RATE_LIMIT = (5, 600.0)  # signups per IP per 10 minutes
ONE_CLICK = "One-Click"

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------- pages


def _asset(name: str) -> str:
    return files("nurture.web").joinpath("static", name).read_text(encoding="utf-8")


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"


class Pages:
    """Jinja2 (autoescaped) templates with the inline CSS and script, and a CSP that allows only those."""

    def __init__(self, app: App) -> None:
        self.config = app.config
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("nurture.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=False,
        )
        self.css = _asset("style.css")
        self.script = _asset("timezone.js")
        self.csp = (
            "default-src 'none'; "
            f"style-src {_csp_hash(self.css)}; "
            f"script-src {_csp_hash(self.script)}; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )

    def render(self, template: str, status: int = 200, headers: Mapping[str, str] | None = None, **context: Any) -> HTMLResponse:
        page = self.env.get_template(template).render(
            practice=self.config.practice,
            css=Markup(self.css),
            script=Markup(self.script),
            **context,
        )
        response = HTMLResponse(page, status_code=status, headers=dict(headers or {}))
        response.headers["Content-Security-Policy"] = self.csp
        return response

    def message(self, title: str, *paragraphs: str, status: int = 200, link: tuple[str, str] | None = None, **extra: Any) -> HTMLResponse:
        link_url, link_text = link or (None, None)
        return self.render("message.html", status, title=title, paragraphs=paragraphs, link_url=link_url, link_text=link_text, **extra)

    def button(self, title: str, *paragraphs: str, button: str) -> HTMLResponse:
        return self.render("button.html", title=title, paragraphs=paragraphs, button=button)


# ---------------------------------------------------------------- rate limit


class RateLimiter:
    """At most `limit` hits per key in a sliding `window` of seconds, in memory."""

    def __init__(self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            if len(self._hits) >= self.max_keys:
                self._prune(now)
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] >= self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True

    def retry_after(self, key: str) -> int:
        with self._lock:
            hits = self._hits.get(key)
            if not hits:
                return 0
            return max(1, int(self.window - (self.clock() - hits[0])) + 1)

    def _prune(self, now: float) -> None:
        for key in [key for key, hits in self._hits.items() if not hits or now - hits[-1] >= self.window]:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:  # under a flood, forget the oldest half rather than grow
            for key in sorted(self._hits, key=lambda k: self._hits[k][-1])[: len(self._hits) // 2]:
                del self._hits[key]


# ---------------------------------------------------------------- the app


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _user_agent(request: Request) -> str | None:
    return (request.headers.get("user-agent") or "")[:400] or None


def _field(form: Any, name: str, limit: int = 400) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def create_app(app: App, *, clock: Clock = _utc_now, rate_limit: tuple[int, float] = RATE_LIMIT) -> Starlette:
    """The ASGI app serving `app`'s store. `clock` and `rate_limit` are for tests."""
    config = app.config
    pages = Pages(app)
    limiter = RateLimiter(*rate_limit)
    signup_url = links.signup_url(config)

    def form_page(values: Mapping[str, str] | None = None, errors: Mapping[str, str] | None = None, status: int = 200) -> HTMLResponse:
        shown = {"email": "", "first_name": "", "timezone": "", **(values or {})}
        return pages.render(
            "subscribe.html",
            status,
            title="Sign up for emails",
            values=shown,
            errors=dict(errors or {}),
            consent=config.consent,
            default_timezone=config.delivery.default_timezone,
        )

    def check_inbox() -> HTMLResponse:
        # The one answer to every accepted signup: new, pending or already active alike.
        return pages.message(
            "Check your inbox",
            "If that address can receive email, a message with a confirmation link is on its way. "
            "Open it and press the button to confirm; nothing else is sent until you do.",
            "The link works for 7 days. If nothing arrives within a few minutes, check your spam folder.",
        )

    async def subscribe_page(request: Request) -> Response:
        if request.method != "POST":
            return form_page()
        ip = _client_ip(request) or "unknown"
        if not limiter.allow(ip):
            return pages.message(
                "Too many attempts",
                "Please wait a few minutes, then try again.",
                status=429,
                headers={"Retry-After": str(limiter.retry_after(ip))},
            )
        async with request.form(max_files=0, max_fields=20, max_part_size=4096) as form:
            email = _field(form, "email", 400)
            first_name = _field(form, "first_name", 200)
            zone = _field(form, "timezone", 100)
            honeypot = _field(form, "website")
            version = _field(form, "consent_version", 100)
        if honeypot.strip():
            return check_inbox()  # a bot: say the usual thing, do nothing
        values = {"email": email, "first_name": first_name, "timezone": zone}
        errors: dict[str, str] = {}
        try:
            normalize_email(email)
        except InputError:
            errors["email"] = "Enter an email address like name@example.com."
        try:
            clean_first_name(first_name)
        except InputError as exc:
            errors["first_name"] = f"Please fix the first name: {str(exc).removeprefix('first name ')}."
        try:
            clean_timezone(zone)
        except InputError:
            errors["timezone"] = "This is not a time zone we know. Correct it, or leave it empty."
        if version != config.consent.version:
            errors["consent"] = "The wording above has changed since this page was opened. Please read it, then press Subscribe again."
        if errors:
            return form_page(values, errors, status=400)
        task = BackgroundTask(_subscribe_later, app, email, clock(), first_name or None, zone or None, _client_ip(request), _user_agent(request))
        response = check_inbox()
        response.background = task
        return response

    async def confirm_page(request: Request) -> Response:
        token = request.path_params["token"]
        secret = config.secrets.verification_keys()
        if request.method != "POST":
            from nurture.tokens import read_confirm_token

            try:
                read_confirm_token(secret, token, clock())
            except TokenError:
                return confirm_failed()
            return pages.button(
                "Confirm your subscription",
                f"Press the button to confirm that you would like emails from {config.practice.name}.",
                button="Confirm my subscription",
            )
        from nurture.audience.subscribers import confirm

        try:
            await run_in_threadpool(confirm, app, token, clock(), ip=_client_ip(request), user_agent=_user_agent(request), source="web")
        except TokenError:
            return confirm_failed()
        return pages.message(
            "You are subscribed",
            "Thank you for confirming. The first email will arrive soon.",
            "Every email has a link at the bottom to unsubscribe with one click.",
        )

    def confirm_failed() -> HTMLResponse:
        return pages.message(
            "This link has expired or no longer works",
            "Confirmation links work for 7 days, and only the newest one counts. You are welcome to sign up again.",
            status=400,
            link=(signup_url, "Sign up again"),
        )

    async def unsubscribe_page(request: Request) -> Response:
        from nurture.tokens import read_unsubscribe_token

        token = request.path_params["token"]
        try:
            claim = read_unsubscribe_token(config.secrets.verification_keys(), token)
        except TokenError:
            return bad_link()
        if request.method != "POST":
            return pages.button(
                "Unsubscribe",
                f"Press the button to stop all emails from {config.practice.name}.",
                button="Unsubscribe",
            )
        one_click = await _is_one_click(request)
        from nurture.audience.subscribers import unsubscribe

        await run_in_threadpool(
            unsubscribe,
            app,
            claim.subscriber_id,
            clock(),
            source="one-click (List-Unsubscribe-Post)" if one_click else "web unsubscribe page",
            stream=claim.stream,
            ip=_client_ip(request),
            user_agent=_user_agent(request),
        )
        return pages.message(
            "You are unsubscribed",
            f"You will not get any more emails from {config.practice.name}.",
            "Changed your mind? You can sign up again at any time.",
            link=(signup_url, "Sign up again"),
        )

    def bad_link() -> HTMLResponse:
        reply = config.practice.reply_to
        paragraphs = ["Please check that you opened the whole link from the email."]
        if reply:
            paragraphs.append(f"To stop our emails, you can also write to {reply} and we will take you off the list.")
        return pages.message("This link does not work", *paragraphs, status=400)

    async def sendgrid_webhook(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            report = await run_in_threadpool(webhooks.handle, app, body, headers, clock())
        except webhooks.WebhookRejected as exc:
            log.warning("sendgrid webhook refused (%d): %s", exc.status, exc.reason)
            return JSONResponse({"error": "forbidden" if exc.status == 403 else "bad request"}, status_code=exc.status)
        return JSONResponse(report.as_dict())

    async def healthz(request: Request) -> Response:
        def ping() -> None:
            # A raw pooled connection: on SQLite every SQLAlchemy transaction is BEGIN IMMEDIATE,
            # and a health check must not queue for (or hold) the write lock.
            if isinstance(app.engine, Engine):
                raw = app.engine.raw_connection()
                try:
                    cursor = raw.cursor()
                    cursor.execute("select 1")
                    cursor.fetchone()
                    cursor.close()
                finally:
                    raw.close()
            else:
                app.engine.execute(text("select 1")).scalar_one()

        try:
            await run_in_threadpool(ping)
        except Exception as exc:  # noqa: BLE001 - any failure is "not healthy"
            log.error("healthz: the database is not answering (%s)", type(exc).__name__)
            return JSONResponse({"status": "error"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if request.url.path == "/webhooks/sendgrid" or request.url.path == "/healthz":
            return JSONResponse({"error": "request failed"}, status_code=status)
        titles = {404: "Page not found", 405: "Not allowed", 413: "Too large"}
        return pages.message(titles.get(status, "Something went wrong"), "Please check the address of this page.", status=status)

    async def server_error(request: Request, exc: Exception) -> Response:
        # Never the exception text: it could name an address. The type is enough to start from.
        log.error("%s %s failed: %s", request.method, webhooks.scrub(request.url.path), type(exc).__name__)
        return pages.message(
            "Something went wrong",
            "Sorry, this did not work. Please try again in a few minutes.",
            status=500,
        )

    routes = [
        Route("/subscribe", subscribe_page, methods=["GET", "POST"]),
        Route("/confirm/{token}", confirm_page, methods=["GET", "POST"]),
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET", "POST"]),
        Route("/webhooks/sendgrid", sendgrid_webhook, methods=["POST"], max_body_size=WEBHOOK_BODY_LIMIT),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        max_body_size=FORM_BODY_LIMIT,
    )


async def _is_one_click(request: Request) -> bool:
    """RFC 8058: `List-Unsubscribe=One-Click` as multipart/form-data or urlencoded."""
    try:
        async with request.form(max_files=0, max_fields=20, max_part_size=4096) as form:
            value = form.get("List-Unsubscribe")
            return isinstance(value, str) and value.strip() == ONE_CLICK
    except HTTPException:
        # A body we cannot parse is still a request to unsubscribe.
        return False


def _subscribe_later(app: App, email: str, now: datetime, first_name: str | None, zone: str | None, ip: str | None, user_agent: str | None) -> None:
    """Runs after the answer is sent. Logs what went wrong without the address or name."""
    from nurture.audience.subscribers import subscribe

    try:
        result = subscribe(app, email, now, first_name=first_name, timezone=zone, source="web form", ip=ip, user_agent=user_agent)
    except Exception as exc:  # noqa: BLE001 - the person already has their answer; tell the owner
        log.error("web signup failed: %s (the address is not logged)", type(exc).__name__)
        return
    log.info("web signup: subscriber %d %s", result.subscriber_id, result.status.replace("_", " "))


class SecurityHeaders:
    """Headers on every answer: no caching (the URLs carry tokens), no referrer, no framing, no sniffing."""

    HEADERS = [
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
    ]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                ours = {name for name, _ in self.HEADERS}
                headers = [(name, value) for name, value in message.get("headers", []) if name.lower() not in ours]
                message = {**message, "headers": headers + self.HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---------------------------------------------------------------- serving and logging


class RedactPaths(logging.Filter):
    """Replaces the token in /confirm/<token> and /unsubscribe/<token> (and any address) in log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(webhooks.scrub(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: webhooks.scrub(value) if isinstance(value, str) else value for key, value in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = webhooks.scrub(record.msg)
        if record.exc_info and not record.exc_text:
            # A traceback's messages can quote a path or an address too.
            record.exc_text = webhooks.scrub(_FORMATTER.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = webhooks.scrub(record.exc_text)
        return True


_FORMATTER = logging.Formatter()


_REDACT = RedactPaths()


def redact_filter() -> RedactPaths:
    """One shared instance, so configuring logging twice does not stack filters."""
    return _REDACT


def log_config() -> dict[str, Any]:
    """uvicorn's default logging, with tokens and addresses redacted from every uvicorn record."""
    import uvicorn.config

    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": "nurture.web.app.redact_filter"}}
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        config["loggers"].setdefault(name, {})["filters"] = ["redact"]
    return config


def _show_nurture_logs() -> None:
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


def server_config(asgi: Any, *, host: str, port: int, **overrides: Any) -> Any:
    """The uvicorn settings `nurture serve` uses (tests start the same)."""
    import uvicorn

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
    import uvicorn

    config = server_config(create_app(app), host=host, port=port)  # this configures uvicorn's logging
    _show_nurture_logs()
    if not app.config.secrets.webhook_public_key:
        log.warning("%s is not set: the SendGrid webhook will refuse every event", webhooks.WEBHOOK_KEY_ENV)
    uvicorn.Server(config).run()
