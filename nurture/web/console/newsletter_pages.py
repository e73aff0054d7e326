"""/console/newsletters: write one in Markdown with a preview and the checks, send a test
copy, schedule it (date, time and whose clock, in plain words), cancel, and results.

Scheduling goes through nurture.newsletters.schedule, exactly as `nurture newsletter
schedule`: the file is written to campaigns/newsletters/<name>.md first.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.content.campaigns import NEWSLETTERS_DIR
from nurture.errors import InputError, NurtureError
from nurture.newsletters import cancel, list_newsletters, parse_local, schedule
from nurture.owners.audit import record_now
from nurture.sending.one_email import send_test_copy
from nurture.sending.planning import at_local, zone
from nurture.store import models as m
from nurture.store.db import reading
from nurture.web.client import client_ip
from nurture.web.console import email_edits
from nurture.web.console.access import read_form
from nurture.web.console.email_view import style_hashes
from nurture.web.console.render import pages_of
from nurture.web.console.words import in_her_words

BASE = "/console/newsletters"
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
STARTER = """---
subject: A note from the practice
preheader: One line that shows beside the subject in the inbox.
cta: Book a free consultation
cta_target: booking
---
Write the newsletter here. Leave an empty line between paragraphs.

- A list item starts with a dash.
- **Bold** and *italic* work too.
"""


def _folder(app: App) -> Path:
    return app.config.campaigns_dir / NEWSLETTERS_DIR


def _clean_name(raw: str) -> str:
    name = raw.strip().lower().removesuffix(".md")
    if not NAME.match(name):
        raise InputError(
            "the file name may hold only small letters, digits and dashes (for example 2026-12-winter-note)"
        )
    return name


LATEST_YEARS = 5


def check_date(text: str, now: datetime) -> None:
    """The date field holds a real date within the next LATEST_YEARS years (the date field of a
    browser allows up to 9999-12-31, past what the store's times can be moved by a day)."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InputError("the date is not a date: pick it with the date field (year, month, day)") from None
    if day.year > now.year + LATEST_YEARS:
        raise InputError(f"the date is too far ahead: pick one within the next {LATEST_YEARS} years")


def _same_day_series(app: App, day: str) -> int:
    """People who also have a series email due on that day (practice time), so the daily cap moves
    one of the two."""
    local = parse_local(day + " 00:00")
    tz = zone(app.config.delivery.default_timezone)
    start = at_local(local.date(), local.time(), tz)
    with reading(app.engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(m.Enrollment)
                .where(
                    m.Enrollment.status == m.EnrollmentStatus.ACTIVE,
                    m.Enrollment.next_due_at >= start,
                    m.Enrollment.next_due_at < start + timedelta(days=1),
                )
            )
            or 0
        )


async def newsletters_page(
    request: Request,
    *,
    form: dict[str, str] | None = None,
    checked: Any = None,
    flash: str | None = None,
    flash_kind: str = "ok",
    status: int = 200,
    cap_warning: str | None = None,
) -> Response:
    app: App = request.app.state.app
    letters = await run_in_threadpool(list_newsletters, app)
    values = {
        "name": "",
        "source": STARTER,
        "date": "",
        "time": "10:00",
        "mode": "subscriber",
        **(form or {}),
    }
    if flash is None:
        done = request.query_params.get("done", "")
        flash = {
            "scheduled": "Scheduled. It goes out at the chosen time; you can cancel it here until then.",
            "cancelled": "Cancelled: it will not go out (emails already sent stay sent).",
        }.get(done)
    rendered = checked.rendered if checked is not None else None
    return pages_of(request).render(
        request,
        "newsletters.html",
        status=status,
        title="Newsletters",
        letters=letters,
        values=values,
        checked=checked,
        flash=flash,
        flash_kind=flash_kind,
        cap_warning=cap_warning,
        practice_zone=app.config.delivery.default_timezone,
        max_per_day=app.config.delivery.max_emails_per_day,
        email_styles=style_hashes(rendered.html) if rendered else None,
    )


async def newsletter_compose(request: Request) -> Response:
    """One form, three buttons: preview and check, send a test copy, schedule."""
    app: App = request.app.state.app
    raw = await read_form(request)
    form = {key: str(raw.get(key) or "") for key in ("name", "source", "date", "time", "mode", "do")}
    now: datetime = request.app.state.clock()
    actor = request.state.owner.actor(client_ip(request))
    try:
        name = _clean_name(form["name"])
        live = _folder(app) / f"{name}.md"
        draft = await run_in_threadpool(email_edits.write_draft, live, form["source"])
        checked = await run_in_threadpool(lambda: email_edits.check(app.config, draft, live))
        cap_warning = None
        if form["date"]:
            check_date(form["date"], now)
            same_day = await run_in_threadpool(_same_day_series, app, form["date"])
            if same_day and app.config.delivery.max_emails_per_day <= 1:
                cap_warning = (
                    f"{same_day} {'person also has' if same_day == 1 else 'people also have'} "
                    "a series email due that day. "
                    f"Each person gets at most {app.config.delivery.max_emails_per_day} "
                    "email a day, so for them one of the two waits until the next day."
                )
        if form["do"] == "test":
            if checked.prepared is None:
                raise InputError("the newsletter cannot be built yet: fix the findings below")
            copy = await run_in_threadpool(
                send_test_copy, app.transport, app.config, checked.prepared, request.state.owner.email
            )
            await run_in_threadpool(record_now, app, actor, "sent a newsletter test copy", now, name)
            return await newsletters_page(
                request,
                form=form,
                checked=checked,
                flash=f"Test copy sent to {copy.to}.",
                cap_warning=cap_warning,
            )
        if form["do"] == "schedule":
            if checked.findings:
                return await newsletters_page(
                    request,
                    form=form,
                    checked=checked,
                    flash="Not scheduled: fix the findings below first.",
                    flash_kind="warning",
                    status=400,
                    cap_warning=cap_warning,
                )
            if not form["date"] or not form["time"]:
                raise InputError("choose the date and the time to send it")
            mode = "subscriber" if form["mode"] == "subscriber" else "practice"
            await run_in_threadpool(live.write_text, (draft.read_text(encoding="utf-8")), "utf-8")
            newsletter_id = await run_in_threadpool(
                schedule, app, live, f"{form['date']} {form['time']}", mode, now
            )
            email_edits.discard_draft(live)
            await run_in_threadpool(
                record_now,
                app,
                actor,
                "scheduled a newsletter",
                now,
                f"newsletter {newsletter_id} ({name}) at {form['date']} {form['time']} {mode} time",
            )
            return RedirectResponse(BASE + "?done=scheduled", status_code=303)
        return await newsletters_page(request, form=form, checked=checked, cap_warning=cap_warning)
    except NurtureError as exc:
        return await newsletters_page(
            request,
            form=form,
            flash=f"Nothing was sent or scheduled: {in_her_words(exc)}",
            flash_kind="warning",
            status=400,
        )


async def newsletter_cancel(request: Request) -> Response:
    app: App = request.app.state.app
    newsletter_id = int(request.path_params["newsletter_id"])
    now: datetime = request.app.state.clock()
    try:
        await run_in_threadpool(cancel, app, newsletter_id, now)
    except NurtureError as exc:
        return await newsletters_page(
            request, flash=f"Nothing changed: {in_her_words(exc)}", flash_kind="warning", status=400
        )
    await run_in_threadpool(
        record_now,
        app,
        request.state.owner.actor(client_ip(request)),
        "cancelled a newsletter",
        now,
        f"newsletter {newsletter_id}",
    )
    return RedirectResponse(BASE + "?done=cancelled", status_code=303)
