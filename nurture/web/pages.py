"""The pages subscribers see (signup, confirm, unsubscribe) and /healthz.

Each handler finds what it needs on `request.app.state` (set by `create_app`):
`app` (the nurture App), `clock`, `pages` (the renderer), `limiter` (the signup
rate limit, in the store) and `signups` (the queue a worker thread drains).

Privacy: pages never say anything about a subscriber beyond "you are unsubscribed";
the signup answer is the same whether the address was new, pending or active (the
work is queued for a worker thread that does it a second or two later, so neither
the answer's timing nor that of the requests after it tells; see `signups`). No
cookies, no tracking, no external resources.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime
from importlib.resources import files
from typing import Any

import jinja2
from markupsafe import Markup
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from nurture import links
from nurture.addresses import clean_first_name, clean_timezone, normalize_email
from nurture.app import App
from nurture.audience.signup import confirm, unsubscribe
from nurture.config import Config
from nurture.errors import InputError, TokenError
from nurture.tokens import read_confirm_token, read_unsubscribe_token
from nurture.web.client import client_ip, user_agent
from nurture.web.middleware import BODY_DROPPED
from nurture.web.ratelimit import SignupLimit
from nurture.web.signups import Signup, SignupQueue

log = logging.getLogger(__name__)

ONE_CLICK = "One-Click"


def _asset(name: str) -> str:
    return files("nurture.web").joinpath("static", name).read_text(encoding="utf-8")


def _csp_hash(source: str) -> str:
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"
    )


class Pages:
    """Jinja2 (autoescaped) templates with the inline CSS and script, and a CSP that allows only those."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("nurture.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=False,
        )
        self.css = _asset("style.css")
        self.script = _asset("timezone.js")
        self.csp = (
            f"default-src 'none'; style-src {_csp_hash(self.css)}; "
            f"script-src {_csp_hash(self.script)}; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )

    @property
    def config(self) -> Config:
        # Read at each use: settings saved in the console (the consent wording) apply at once.
        return self.app.config

    def render(
        self, template: str, status: int = 200, headers: Mapping[str, str] | None = None, **context: Any
    ) -> HTMLResponse:
        page = self.env.get_template(template).render(
            practice=self.config.practice,
            css=Markup(self.css),
            script=Markup(self.script),
            **context,
        )
        response = HTMLResponse(page, status_code=status, headers=dict(headers or {}))
        response.headers["Content-Security-Policy"] = self.csp
        return response

    def message(
        self,
        title: str,
        *paragraphs: str,
        status: int = 200,
        link: tuple[str, str] | None = None,
        **extra: Any,
    ) -> HTMLResponse:
        link_url, link_text = link or (None, None)
        return self.render(
            "message.html",
            status,
            title=title,
            paragraphs=paragraphs,
            link_url=link_url,
            link_text=link_text,
            **extra,
        )

    def button(self, title: str, *paragraphs: str, button: str) -> HTMLResponse:
        return self.render("button.html", title=title, paragraphs=paragraphs, button=button)


# ---------------------------------------------------------------- answers used by more than one handler


def _signup_form(
    pages: Pages,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    shown = {"email": "", "first_name": "", "timezone": "", **(values or {})}
    return pages.render(
        "subscribe.html",
        status,
        title="Sign up for emails",
        values=shown,
        errors=dict(errors or {}),
        consent=pages.config.consent,
        default_timezone=pages.config.delivery.default_timezone,
    )


def _check_inbox(pages: Pages) -> HTMLResponse:
    # The one answer to every accepted signup: new, pending or already active alike.
    return pages.message(
        "Check your inbox",
        "If that address can receive email, a message with a confirmation link is on its way. "
        "Open it and press the button to confirm; nothing else is sent until you do.",
        "The link works for 7 days. If nothing arrives within a few minutes, check your spam folder.",
    )


def _confirm_failed(pages: Pages) -> HTMLResponse:
    return pages.message(
        "This link has expired or no longer works",
        "Confirmation links work for 7 days, and only the "
        "newest one counts. You are welcome to sign up again.",
        status=400,
        link=(links.signup_url(pages.config), "Sign up again"),
    )


def bad_link(pages: Pages) -> HTMLResponse:
    reply = pages.config.practice.reply_to
    paragraphs = ["Please check that you opened the whole link from the email."]
    if reply:
        paragraphs.append(
            f"To stop our emails, you can also write to {reply} and we will take you off the list."
        )
    return pages.message("This link does not work", *paragraphs, status=400)


# ---------------------------------------------------------------- handlers


def _field(form: Any, name: str, limit: int = 400) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def subscribe_page(request: Request) -> Response:
    pages: Pages = request.app.state.pages
    if request.method != "POST":
        return _signup_form(pages)
    app: App = request.app.state.app
    now: datetime = request.app.state.clock()
    limiter: SignupLimit = request.app.state.limiter
    verdict = await run_in_threadpool(limiter.attempt, app, client_ip(request), now)
    if not verdict.allowed:
        return pages.message(
            "Too many attempts",
            "Please wait a few minutes, then try again.",
            status=429,
            headers={"Retry-After": str(verdict.retry_after)},
        )
    async with request.form(max_files=0, max_fields=20, max_part_size=4096) as form:
        email = _field(form, "email", 400)
        first_name = _field(form, "first_name", 200)
        zone = _field(form, "timezone", 100)
        honeypot = _field(form, "website")
        version = _field(form, "consent_version", 100)
    if honeypot.strip():
        return _check_inbox(pages)  # a bot: say the usual thing, do nothing
    values = {"email": email, "first_name": first_name, "timezone": zone}
    errors: dict[str, str] = {}
    try:
        normalize_email(email)
    except InputError:
        errors["email"] = (
            "Enter an email address like name@example.com."
            if email.strip().rpartition("@")[0].isascii()
            else "Our mail provider cannot deliver to an address with letters such as é before the @. "
            "Please use an address whose part before the @ has only plain letters, digits and . _ + -"
        )
    try:
        clean_first_name(first_name)
    except InputError as exc:
        errors["first_name"] = f"Please fix the first name: {str(exc).removeprefix('first name ')}."
    try:
        clean_timezone(zone)
    except InputError:
        errors["timezone"] = "This is not a time zone we know. Correct it, or leave it empty."
    if version != pages.config.consent.version:
        errors["consent"] = (
            "The wording above has changed since this page was "
            "opened. Please read it, then press Subscribe again."
        )
    if errors:
        return _signup_form(pages, values, errors, status=400)
    signups: SignupQueue = request.app.state.signups
    signups.put(Signup(email, now, first_name or None, zone or None, client_ip(request), user_agent(request)))
    return _check_inbox(pages)


async def confirm_page(request: Request) -> Response:
    app: App = request.app.state.app
    pages: Pages = request.app.state.pages
    token = request.path_params["token"]
    secret = app.config.secrets.verification_keys()
    if request.method != "POST":
        try:
            read_confirm_token(secret, token, request.app.state.clock())
        except TokenError:
            return _confirm_failed(pages)
        return pages.button(
            "Confirm your subscription",
            f"Press the button to confirm that you would like emails from {app.config.practice.name}.",
            button="Confirm my subscription",
        )
    now: datetime = request.app.state.clock()
    try:
        confirmed = await run_in_threadpool(
            confirm, app, token, now, ip=client_ip(request), user_agent=user_agent(request), source="web"
        )
    except TokenError:
        return _confirm_failed(pages)
    return pages.message(
        "You are subscribed",
        "Thank you for confirming. The first email will arrive soon.",
        "Every email has a link at the bottom to unsubscribe with one click, and one to choose "
        "what you get: fewer emails, only some of them, or a pause.",
        link=(links.preferences_url(app.config, confirmed.subscriber_id), "Choose what you get"),
    )


async def unsubscribe_page(request: Request) -> Response:
    app: App = request.app.state.app
    pages: Pages = request.app.state.pages
    token = request.path_params["token"]
    try:
        claim = read_unsubscribe_token(app.config.secrets.verification_keys(), token)
    except TokenError:
        return bad_link(pages)
    if links.is_test_copy(claim.subscriber_id, claim.stream):
        return pages.message(
            "This is a test copy",
            "This link comes from a test copy of a newsletter, "
            "so it unsubscribes nobody and nothing was changed.",
            "In the newsletter as sent, this link unsubscribes its reader with one click.",
        )
    if request.method != "POST":
        return pages.button(
            "Unsubscribe",
            f"Press the button to stop all emails from {app.config.practice.name}.",
            button="Unsubscribe",
        )
    one_click = await _is_one_click(request)
    now: datetime = request.app.state.clock()
    await run_in_threadpool(
        unsubscribe,
        app,
        claim.subscriber_id,
        now,
        source="one-click (List-Unsubscribe-Post)" if one_click else "web unsubscribe page",
        stream=claim.stream,
        ip=client_ip(request),
        user_agent=user_agent(request),
    )
    return pages.message(
        "You are unsubscribed",
        f"You will not get any more emails from {app.config.practice.name}.",
        "Changed your mind? You can sign up again at any time.",
        link=(links.signup_url(app.config), "Sign up again"),
    )


async def _is_one_click(request: Request) -> bool:
    """RFC 8058: `List-Unsubscribe=One-Click` as multipart/form-data or urlencoded."""
    if request.scope.get(BODY_DROPPED):
        return False  # too large to have been read: an unsubscribe all the same
    try:
        async with request.form(max_files=0, max_fields=20, max_part_size=4096) as form:
            value = form.get("List-Unsubscribe")
            return isinstance(value, str) and value.strip() == ONE_CLICK
    except HTTPException:
        # A body we cannot parse is still a request to unsubscribe.
        return False


async def healthz(request: Request) -> Response:
    app: App = request.app.state.app
    try:
        await run_in_threadpool(_ping_database, app)
    except Exception as exc:  # noqa: BLE001 - any failure is "not healthy"
        log.error("healthz: the database is not answering (%s)", type(exc).__name__)
        return JSONResponse({"status": "error"}, status_code=503)
    return JSONResponse({"status": "ok"})


def _ping_database(app: App) -> None:
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
