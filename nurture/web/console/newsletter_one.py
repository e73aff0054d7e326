"""/console/newsletters/<id>: one newsletter: when it goes out, its results (in total and by
the readers' time zones), and while it is scheduled: move it, edit its text, cancel it.

What each confirmation says is read back from the store after the action, so it says
what is now so, not what was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.content.approved import source_from_stored
from nurture.content.campaigns import EmailSource
from nurture.errors import InputError, NurtureError
from nurture.newsletter_drafts import reopen
from nurture.newsletters import cancel, reschedule
from nurture.owners.audit import record_now
from nurture.reporting.newsletter_results import NewsletterResults, newsletter_results
from nurture.store import models as m
from nurture.store.db import reading
from nurture.web.client import client_ip
from nurture.web.console.access import read_form
from nurture.web.console.newsletter_pages import BASE, parse_clock, parse_day, plain_words
from nurture.web.console.render import pages_of, plural

MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Letter:
    id: int
    subject: str
    status: str
    when: str  # wall-clock "YYYY-MM-DD HH:MM"
    mode: str
    segment: str | None
    source: EmailSource
    updated_at: datetime

    @property
    def date(self) -> str:
        return self.when[:10]

    @property
    def time(self) -> str:
        return self.when[11:16]


def _letter(app: App, newsletter_id: int) -> Letter | None:
    with reading(app.engine) as session:
        row = session.get(m.Newsletter, newsletter_id)
        if row is None:
            return None
        return Letter(
            row.id,
            row.subject,
            row.status,
            row.send_at_local.replace("T", " ")[:16],
            row.timezone_mode,
            row.segment_tag,
            source_from_stored(row.source_file, dict(row.content)),
            row.updated_at,
        )


def _wanted(request: Request) -> int | None:
    number = int(request.path_params["newsletter_id"])
    return number if 0 < number <= MAX_ID else None


def _missing(request: Request) -> Response:
    return pages_of(request).render(
        request,
        "message.html",
        status=404,
        title="No such newsletter",
        paragraphs=["Pick one from the list of newsletters."],
        back=BASE,
    )


def _confirmation(done: str, letter: Letter, results: NewsletterResults) -> str | None:
    """The message after an action, from the newsletter as it now is."""
    whose = "in each reader's own time" if letter.mode == "subscriber" else "in the practice's time"
    if done in ("scheduled", "moved") and letter.status == m.NewsletterStatus.SCHEDULED:
        verb = "Scheduled" if done == "scheduled" else "Moved"
        return f"{verb}: it goes out on {letter.date} at {letter.time} {whose}. You can still change it here."
    if done == "cancelled" and letter.status == m.NewsletterStatus.CANCELLED:
        if results.total.sent or results.in_flight:
            return (
                f"Stopped: nobody else will get it. {plural(results.total.sent, 'person', 'people')} "
                "got it before;"
                " an email being handed over at this very moment may still arrive."
            )
        return "Cancelled: it will not go out."
    return None


async def newsletter_page(
    request: Request, *, flash: str | None = None, flash_kind: str = "ok", status: int = 200
) -> Response:
    app: App = request.app.state.app
    newsletter_id = _wanted(request)
    letter = await run_in_threadpool(_letter, app, newsletter_id) if newsletter_id else None
    if letter is None:
        return _missing(request)
    results = await run_in_threadpool(newsletter_results, app, letter.id)
    if flash is None:
        flash = _confirmation(request.query_params.get("done", ""), letter, results)
    return pages_of(request).render(
        request,
        "newsletter.html",
        status=status,
        title=f"Newsletter: {letter.subject}",
        letter=letter,
        results=results,
        flash=flash,
        flash_kind=flash_kind,
        practice_zone=app.config.delivery.default_timezone,
    )


async def _act(request: Request, action: str) -> Response:
    app: App = request.app.state.app
    newsletter_id = _wanted(request)
    if newsletter_id is None or await run_in_threadpool(_letter, app, newsletter_id) is None:
        return _missing(request)
    form = await read_form(request)
    now: datetime = request.app.state.clock()
    actor = request.state.owner.actor(client_ip(request))
    try:
        if action == "cancel":
            await run_in_threadpool(cancel, app, newsletter_id, now)
            await run_in_threadpool(
                record_now, app, actor, "cancelled a newsletter", now, f"newsletter {newsletter_id}"
            )
            return RedirectResponse(f"{BASE}/{newsletter_id}?done=cancelled", status_code=303)
        if action == "edit":
            name = await run_in_threadpool(reopen, app, newsletter_id)
            await run_in_threadpool(
                record_now, app, actor, "reopened a newsletter", now, f"newsletter {newsletter_id}"
            )
            return RedirectResponse(f"{BASE}?draft={name}#write", status_code=303)
        day = parse_day(str(form.get("date") or ""), now)
        clock = str(form.get("time") or "").strip()
        mode = "subscriber" if form.get("mode") == "subscriber" else "practice"
        if day is None or not clock:
            raise InputError("choose the date and the time to send it")
        clock = parse_clock(clock)
        await run_in_threadpool(reschedule, app, newsletter_id, f"{day:%Y-%m-%d} {clock}", mode, now)
        await run_in_threadpool(
            record_now,
            app,
            actor,
            "moved a newsletter",
            now,
            f"newsletter {newsletter_id} to {day:%Y-%m-%d} {clock} {mode} time",
        )
        return RedirectResponse(f"{BASE}/{newsletter_id}?done=moved", status_code=303)
    except NurtureError as exc:
        return await newsletter_page(
            request, flash=f"Nothing changed: {plain_words(exc, app)}.", flash_kind="warning", status=400
        )


async def newsletter_cancel(request: Request) -> Response:
    return await _act(request, "cancel")


async def newsletter_edit(request: Request) -> Response:
    return await _act(request, "edit")


async def newsletter_reschedule(request: Request) -> Response:
    return await _act(request, "reschedule")
