"""The preference center: /preferences/<token>, linked from every email's footer.

    GET       /preferences/{token}            the reader's choices (a visit: a sign of life)
    POST      /preferences/{token}            save them
    POST      /preferences/{token}/pause      pause everything for 30, 60 or 90 days
    POST      /preferences/{token}/resume     end a pause now
    POST      /preferences/{token}/unsubscribe  leave altogether
    GET  POST /preferences/{token}/keep       the re-permission email's "keep me on the list"

GET shows, POST acts: link scanners open links, and must change nothing. The token
is as strict as an unsubscribe token (signed, one spelling, old keys still verify);
a bad, changed or foreign token and a forgotten reader get the same answer, so the
page tells nobody who is on the list. There are no cookies: each form carries a
token bound to its page's link and the time it was shown (`make_preferences_form_token`),
and a POST from another site's page (its Origin) is refused. Every request counts
against a per-client limit kept in the store, like the signup form's. The work is
done by nurture.audience.preferences, which records each change in the consent history.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture import links
from nurture.app import App
from nurture.audience import preferences
from nurture.errors import InputError, TokenError
from nurture.store.models import Frequency
from nurture.tokens import (
    check_preferences_form_token,
    make_preferences_form_token,
    read_preferences_token,
)
from nurture.web.client import client_ip
from nurture.web.pages import Pages, bad_link

log = logging.getLogger(__name__)

FORM_FIELD = "form_token"
ACTIONS = ("pause", "resume", "unsubscribe", "keep")
DONE = {
    "saved": "Saved. Your choices count from the next email on.",
    "unchanged": "Nothing needed saving: these were already your choices.",
    "paused": "Paused. Nothing will be sent until the date below; then emails start again by themselves.",
    "resumed": "Your emails start again with the next one due.",
}
_REGIONS = ("Africa", "America", "Antarctica", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific")


@lru_cache(maxsize=1)
def zone_groups() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The IANA zones a reader may choose, by region (legacy aliases left out)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in available_timezones():
        region = name.split("/", 1)[0]
        if region in _REGIONS and "/" in name:
            groups[region].append(name)
    return tuple((region, tuple(sorted(groups[region]))) for region in _REGIONS if groups[region])


def _token(request: Request) -> str:
    return str(request.path_params["token"])


def _subscriber(app: App, token: str) -> int | None:
    try:
        return read_preferences_token(app.config.secrets.verification_keys(), token)
    except TokenError:
        return None


def _foreign_origin(request: Request, app: App) -> bool:
    """A POST whose Origin names another site. Browsers send "null" (or nothing) under the
    pages' no-referrer policy: the form token decides then."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return False
    allowed = {_origin(app.config.web.public_base_url)}
    host = request.headers.get("host")
    if host:
        allowed.add(f"{request.url.scheme}://{host}".lower())
    return origin.lower() not in allowed


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def _refused(request: Request) -> Response | None:
    """The per-client limit, then nothing else: every request counts, valid link or not."""
    app: App = request.app.state.app
    pages: Pages = request.app.state.pages
    verdict = await run_in_threadpool(
        request.app.state.preference_limiter.attempt, app, client_ip(request), request.app.state.clock()
    )
    if verdict.allowed:
        return None
    return pages.message(
        "Too many attempts",
        "Please wait a few minutes, then try again.",
        status=429,
        headers={"Retry-After": str(verdict.retry_after)},
    )


def _test_copy(pages: Pages) -> Response:
    return pages.message(
        "This is a test copy",
        "This link comes from a test copy of an email, so it belongs to nobody and nothing here can change.",
        "In the email as sent, this link opens the reader's own choices.",
    )


def _not_receiving(pages: Pages, app: App) -> Response:
    return pages.message(
        "You are not on the list",
        f"This address does not receive emails from {app.config.practice.name} now, so there is nothing "
        "to choose. You are welcome to sign up again at any time.",
        link=(links.signup_url(app.config), "Sign up"),
    )


def _expired(pages: Pages) -> Response:
    return pages.message(
        "Please try again",
        "This page was open too long, or the form did not come from it. Nothing was changed.",
        "Open the link from the email again and make your choice.",
        status=403,
    )


async def _form(request: Request) -> dict[str, str]:
    async with request.form(max_files=0, max_fields=30, max_part_size=4096) as form:
        return {key: value[:400] for key, value in form.items() if isinstance(value, str)}


def _render(
    request: Request,
    reader: preferences.Reader,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    app: App = request.app.state.app
    pages: Pages = request.app.state.pages
    now: datetime = request.app.state.clock()
    token = _token(request)
    choices = reader.choices
    shown = {
        "first_name": choices.first_name or "",
        "timezone": choices.timezone or "",
        **(values or {}),
    }
    return pages.render(
        "preferences.html",
        status,
        title="Your email choices",
        reader=reader,
        choices=choices,
        values=shown,
        errors=errors or {},
        flash=DONE.get(request.query_params.get("done", "")),
        action=f"/preferences/{token}",
        form_field=FORM_FIELD,
        form_token=make_preferences_form_token(app.config.secrets.require_secret_key(), token, now),
        zone_groups=zone_groups(),
        default_timezone=app.config.delivery.default_timezone,
        max_per_day=app.config.delivery.max_emails_per_day,
        series_titles=sorted(campaign.title for campaign in app.campaigns.values()),
        pause_days=preferences.PAUSE_DAYS,
        weekly=Frequency.WEEKLY,
    )


async def preferences_page(request: Request) -> Response:
    refused = await _refused(request)
    if refused is not None:
        return refused
    app: App = request.app.state.app
    pages: Pages = request.app.state.pages
    now: datetime = request.app.state.clock()
    token = _token(request)
    subscriber_id = _subscriber(app, token)
    if subscriber_id is None:
        return bad_link(pages)
    if links.is_test_copy_subscriber(subscriber_id):
        return _test_copy(pages)
    if request.method == "POST":
        return await _save(request, subscriber_id, token, now)
    reader = await run_in_threadpool(preferences.visit, app, subscriber_id, now)
    if reader is None:
        return bad_link(pages)
    if not reader.active:
        return _not_receiving(pages, app)
    return _render(request, reader)


def _form_ok(request: Request, form: dict[str, str], token: str, now: datetime) -> bool:
    app: App = request.app.state.app
    if _foreign_origin(request, app):
        return False
    try:
        check_preferences_form_token(
            app.config.secrets.verification_keys(), form.get(FORM_FIELD, ""), token, now
        )
    except TokenError:
        return False
    return True


async def _save(request: Request, subscriber_id: int, token: str, now: datetime) -> Response:
    app: App = request.app.state.app
    pages: Pages = request.app.state.pages
    form = await _form(request)
    if not _form_ok(request, form, token, now):
        return _expired(pages)
    choices = preferences.Choices(
        series=form.get("series") == "on",
        newsletter=form.get("newsletter") == "on",
        frequency=Frequency.WEEKLY if form.get("frequency") == Frequency.WEEKLY else Frequency.DAILY,
        first_name=form.get("first_name") or None,
        timezone=form.get("timezone") or None,
    )
    try:
        changes = await run_in_threadpool(preferences.save, app, subscriber_id, choices, now)
    except InputError as exc:
        reader = await run_in_threadpool(preferences.visit, app, subscriber_id, now)
        if reader is None:
            return bad_link(pages)
        if not reader.active:
            return _not_receiving(pages, app)
        field = "first_name" if str(exc).startswith("first name") else "timezone"
        message = (
            f"Please fix the first name: {str(exc).removeprefix('first name ')}."
            if field == "first_name"
            else "This is not a time zone we know. Choose one from the list."
        )
        values = {"first_name": form.get("first_name", ""), "timezone": form.get("timezone", "")}
        return _render(request, reader, status=400, errors={field: message}, values=values)
    return _done(token, "saved" if changes else "unchanged")


def _done(token: str, what: str) -> Response:
    # After a POST, a GET: reloading the page does not repeat the action.
    return RedirectResponse(f"/preferences/{token}?done={what}", status_code=303)


async def preferences_action(request: Request) -> Response:
    refused = await _refused(request)
    if refused is not None:
        return refused
    app: App = request.app.state.app
    pages: Pages = request.app.state.pages
    now: datetime = request.app.state.clock()
    token = _token(request)
    action = str(request.path_params["action"])
    subscriber_id = _subscriber(app, token)
    if subscriber_id is None or action not in ACTIONS:
        return bad_link(pages)
    if links.is_test_copy_subscriber(subscriber_id):
        return _test_copy(pages)
    if action == "keep" and request.method != "POST":
        return await _keep_page(request, subscriber_id)
    if request.method != "POST":
        return _done(token, "")
    form = await _form(request)
    if not _form_ok(request, form, token, now):
        return _expired(pages)
    try:
        if action == "keep":
            await run_in_threadpool(preferences.keep, app, subscriber_id, now)
            return pages.message(
                "Thank you",
                f"You will keep getting emails from {app.config.practice.name}.",
                "You can also choose fewer emails, only some of them, or a pause.",
                link=(f"/preferences/{token}", "Choose what you get"),
            )
        if action == "unsubscribe":
            await run_in_threadpool(preferences.leave, app, subscriber_id, now)
            return pages.message(
                "You are unsubscribed",
                f"You will not get any more emails from {app.config.practice.name}.",
                "Changed your mind? You can sign up again at any time.",
                link=(links.signup_url(app.config), "Sign up again"),
            )
        if action == "pause":
            days = int(form.get("days", "0")) if form.get("days", "").isdigit() else 0
            await run_in_threadpool(preferences.pause, app, subscriber_id, days, now)
            return _done(token, "paused")
        await run_in_threadpool(preferences.resume, app, subscriber_id, now)
        return _done(token, "resumed")
    except InputError:
        # Not subscribed (any more), or a pause length the form does not offer.
        reader = await run_in_threadpool(preferences.visit, app, subscriber_id, now)
        if reader is None:
            return bad_link(pages)
        return _not_receiving(pages, app) if not reader.active else _done(token, "")


async def _keep_page(request: Request, subscriber_id: int) -> Response:
    """GET of the "keep me on the list" link: a button, and no change (scanners open links too)."""
    app: App = request.app.state.app
    pages: Pages = request.app.state.pages
    now: datetime = request.app.state.clock()
    token = _token(request)
    reader = await run_in_threadpool(preferences.look, app, subscriber_id, now)
    if reader is None:
        return bad_link(pages)
    if not reader.active:
        return _not_receiving(pages, app)
    context: dict[str, Any] = {
        "title": "Keep getting our emails?",
        "paragraphs": [
            f"Press the button to keep getting emails from {app.config.practice.name}. Nothing else changes.",
        ],
        "button": "Keep me on the list",
        "action": f"/preferences/{token}/keep",
        "form_field": FORM_FIELD,
        "form_token": make_preferences_form_token(app.config.secrets.require_secret_key(), token, now),
        "link_url": f"/preferences/{token}",
        "link_text": "Or choose fewer emails, only some of them, or a pause",
    }
    return pages.render("keep.html", **context)
