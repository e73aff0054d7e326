"""/console/newsletters: the newsletters and drafts, and writing one in Markdown with a preview
and the checks, a test copy, and scheduling it (date, time and whose clock, in plain words).

Scheduling goes through nurture.newsletter_drafts.schedule_text: every check first, then the
store, then the file; a refused schedule changes nothing. The draft is saved when she
previews or sends herself a test copy. One newsletter's page (its results, moving it,
editing or cancelling it) is nurture.web.console.newsletter_one.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.errors import InputError, NotFound, NurtureError
from nurture.newsletter_drafts import (
    Draft,
    clean_name,
    discard_draft,
    list_drafts,
    live_path,
    read_draft,
    save_draft,
    schedule_text,
)
from nurture.newsletters import (
    ChecksFailed,
    NameTaken,
    NotScheduledAnyMore,
    SameContent,
    TooLate,
    list_newsletters,
)
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
FURTHEST = timedelta(days=2 * 366)  # a newsletter is planned weeks ahead, not years
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


def _same_day_series(app: App, day: date) -> int:
    """People who also have a series email due on that day (practice time), so the daily cap moves
    one of the two."""
    tz = zone(app.config.delivery.default_timezone)
    start = at_local(day, datetime.min.time(), tz)
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


def parse_day(raw: str, now: datetime) -> date | None:
    """The date field, or InputError in her words."""
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        raise InputError("the date is not one the calendar has: pick it again") from None
    if day > (now + FURTHEST).date():
        raise InputError("that date is more than two years away: pick a nearer one")
    return day


def parse_clock(raw: str) -> str:
    """The time field as HH:MM, or InputError in her words."""
    text = raw.strip()
    try:
        return datetime.strptime(text, "%H:%M").strftime("%H:%M")
    except ValueError:
        raise InputError("the time is not one the clock has: pick it again") from None


def plain_words(exc: NurtureError, app: App) -> str:
    """What a refused newsletter action means, in the owner's words (no commands, no paths)."""
    if isinstance(exc, TooLate):
        if exc.practice:
            return "that time has already passed in the practice's time zone: pick a later time"
        return (
            f"that time has already passed for readers in {', '.join(exc.zones)}: pick a later time, "
            "or send it at that time in the practice's time zone instead"
        )
    if isinstance(exc, SameContent):
        return (
            f"newsletter {exc.existing_id} ({exc.existing_status}, {exc.existing_when}) has exactly this "
            "text, so everyone would get it twice. To change its time, open it from the list above"
        )
    if isinstance(exc, NameTaken):
        whose = f"newsletter {exc.owner_id}" if exc.owner_id is not None else "another newsletter's file"
        return f"this name is already used by {whose}: choose another name"
    if isinstance(exc, ChecksFailed):
        return "the check found something to fix first: press Preview and check to see it"
    if isinstance(exc, NotScheduledAnyMore):
        state = "no longer exists" if exc.status is None else f"is now {exc.status}"
        return f"newsletter {exc.newsletter_id} {state}, so it can no longer be changed"
    return in_her_words(exc)


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
    now: datetime = request.app.state.clock()
    letters = await run_in_threadpool(list_newsletters, app)
    drafts = await run_in_threadpool(list_drafts, app.config)
    values = {
        "name": "",
        "source": STARTER,
        "date": "",
        "time": "10:00",
        "mode": "subscriber",
        **(form or {}),
    }
    opened: Draft | None = None
    wanted = request.query_params.get("draft", "")
    if form is None and wanted:
        try:
            opened = await run_in_threadpool(read_draft, app.config, clean_name(wanted))
            values.update(name=opened.name, source=opened.text)
        except InputError:
            flash, flash_kind = "That draft is not here any more (it was scheduled or discarded).", "warning"
    elif values["name"]:
        try:
            opened = await run_in_threadpool(read_draft, app.config, clean_name(values["name"]))
        except InputError:
            opened = None
    if flash is None and request.query_params.get("done") == "discarded":
        flash = "Draft discarded."
    rendered = checked.rendered if checked is not None else None
    return pages_of(request).render(
        request,
        "newsletters.html",
        status=status,
        title="Newsletters",
        letters=letters,
        drafts=drafts,
        now=now,
        values=values,
        replaces=opened.replaces if opened is not None else None,
        checked=checked,
        flash=flash,
        flash_kind=flash_kind,
        cap_warning=cap_warning,
        practice_zone=app.config.delivery.default_timezone,
        email_styles=style_hashes(rendered.html) if rendered else None,
    )


def _cap_warning(app: App, day: date | None) -> str | None:
    if day is None or app.config.delivery.max_emails_per_day > 1:
        return None
    same_day = _same_day_series(app, day)
    if not same_day:
        return None
    return (
        f"{same_day} {'person also has' if same_day == 1 else 'people also have'} "
        "a series email due that day. Each person gets at most one email a day, "
        "so for them one of the two waits until the next day."
    )


async def newsletter_compose(request: Request) -> Response:
    """One form, three buttons: preview and check (saves the draft), send a test copy, schedule."""
    app: App = request.app.state.app
    raw = await read_form(request)
    form = {key: str(raw.get(key) or "") for key in ("name", "source", "date", "time", "mode", "do")}
    now: datetime = request.app.state.clock()
    actor = request.state.owner.actor(client_ip(request))
    doing = form["do"] if form["do"] in ("test", "schedule") else "preview"
    try:
        name = clean_name(form["name"])
        day = parse_day(form["date"], now)
        live = live_path(app.config, name)
        checked = await run_in_threadpool(email_edits.check, app.config, form["source"], live)
        cap_warning = await run_in_threadpool(_cap_warning, app, day)
        if doing == "preview":
            await run_in_threadpool(save_draft, app.config, name, form["source"])
            return await newsletters_page(
                request,
                form=form,
                checked=checked,
                flash="Draft saved and checked. Nothing goes out until you schedule it.",
                cap_warning=cap_warning,
            )
        if checked.findings or checked.prepared is None:
            what = "No test copy was made" if doing == "test" else "Not scheduled"
            return await newsletters_page(
                request,
                form=form,
                checked=checked,
                flash=f"{what}: fix what the check found first (listed below). Nothing was saved.",
                flash_kind="warning",
                status=400,
                cap_warning=cap_warning,
            )
        if doing == "test":
            await run_in_threadpool(save_draft, app.config, name, form["source"])
            owner_email = request.state.owner.email
            await run_in_threadpool(send_test_copy, app.transport, app.config, checked.prepared, owner_email)
            await run_in_threadpool(record_now, app, actor, "sent a newsletter test copy", now, name)
            return await newsletters_page(
                request,
                form=form,
                checked=checked,
                flash=email_edits.test_copy_words(app, owner_email) + " The draft is saved.",
                cap_warning=cap_warning,
            )
        if day is None or not form["time"].strip():
            raise InputError("choose the date and the time to send it")
        form["time"] = parse_clock(form["time"])
        mode = "subscriber" if form["mode"] == "subscriber" else "practice"
        try:
            replaces = (await run_in_threadpool(read_draft, app.config, name)).replaces
        except NotFound:
            replaces = None
        newsletter_id = await run_in_threadpool(
            lambda: schedule_text(
                app, name, form["source"], f"{day:%Y-%m-%d} {form['time']}", mode, now, replaces=replaces
            )
        )
        detail = f"newsletter {newsletter_id} ({name}) at {day:%Y-%m-%d} {form['time']} {mode} time"
        if replaces is not None:
            detail += f", in place of newsletter {replaces}"
        await run_in_threadpool(record_now, app, actor, "scheduled a newsletter", now, detail)
        return RedirectResponse(f"{BASE}/{newsletter_id}?done=scheduled", status_code=303)
    except NurtureError as exc:
        nothing = "Nothing was saved or scheduled" if doing == "schedule" else "Nothing was done"
        return await newsletters_page(
            request,
            form=form,
            flash=f"{nothing}: {plain_words(exc, app)}.",
            flash_kind="warning",
            status=400,
        )


async def draft_discard(request: Request) -> Response:
    app: App = request.app.state.app
    form = await read_form(request)
    now: datetime = request.app.state.clock()
    try:
        name = clean_name(str(form.get("name") or ""))
    except InputError:
        return await newsletters_page(
            request, flash="There is no such draft.", flash_kind="warning", status=400
        )
    if not await run_in_threadpool(discard_draft, app.config, name):
        return await newsletters_page(
            request,
            flash="That draft was not there any more: it was scheduled or discarded meanwhile.",
            flash_kind="warning",
            status=400,
        )
    actor = request.state.owner.actor(client_ip(request))
    await run_in_threadpool(record_now, app, actor, "discarded a newsletter draft", now, name)
    back = str(form.get("back") or "")
    return RedirectResponse(
        "/console/drafts?done=discarded" if back == "drafts" else BASE + "?done=discarded", status_code=303
    )
