"""/console/subscribers/add: add one person with the evidence of their consent, or upload a CSV
file, read the import report (who would be added, which rows are refused and why, who is
already there), and then import it or throw it away.

One person: nurture.audience.by_hand. A file: streamed to disk as it arrives (never held
in memory), refused past console.import_max_mb, checked and imported in a thread
(nurture.web.console.import_jobs) while the page shows a progress bar. The page streams:
the bar is redrawn as the work goes on, with no script and no reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from nurture.app import App
from nurture.audience.by_hand import add_person
from nurture.errors import InputError, NurtureError
from nurture.owners.audit import record_now
from nurture.sending.planning import at_local, zone
from nurture.web.client import client_ip
from nurture.web.console.access import read_form
from nurture.web.console.import_jobs import ImportJob, ImportJobs, Phase
from nurture.web.console.render import page_headers, pages_of
from nurture.web.console.words import in_her_words

BASE = "/console/subscribers"
MB = 1024 * 1024
SLACK = 64 * 1024  # the form's own fields and the multipart framing around the file
DRAIN_LIMIT = 4  # read (and drop) up to this many times the limit, so the browser shows the answer
TICK = 0.4  # seconds between two redraws of the progress bar
MARK = "<!--progress-->"
ZONES = sorted(available_timezones())


class TooLarge(Exception):
    pass


def _jobs(request: Request) -> ImportJobs:
    jobs: ImportJobs = request.app.state.console_imports
    return jobs


def _limit(app: App) -> int:
    return app.config.console.import_max_mb * MB


async def add_page(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    problem: str | None = None,
    upload_problem: str | None = None,
    status: int = 200,
) -> Response:
    app: App = request.app.state.app
    now: datetime = request.app.state.clock()
    shown = {
        "email": "",
        "first_name": "",
        "timezone": "",
        "consented_on": now.astimezone(zone(app.config.delivery.default_timezone)).date().isoformat(),
        "source": "",
        "wording": app.config.consent.wording,
        **(values or {}),
    }
    flash = "That upload was thrown away: nothing was imported." if request.query_params.get("done") else None
    return pages_of(request).render(
        request,
        "add_people.html",
        status=status,
        title="Add people",
        values=shown,
        problem=problem,
        upload_problem=upload_problem,
        zones=ZONES,
        max_mb=app.config.console.import_max_mb,
        flash=flash,
    )


def _consented_at(app: App, raw: str, now: datetime) -> datetime:
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        raise InputError("the date they agreed is not one the calendar has: pick it again") from None
    if day.year < 2000:
        raise InputError("the date they agreed is before 2000: give the date they actually agreed")
    practice = zone(app.config.delivery.default_timezone)
    if day > now.astimezone(practice).date():
        raise InputError("the date they agreed is in the future")
    return min(at_local(day, time(0, 0), practice), now)


async def add_one(request: Request) -> Response:
    app: App = request.app.state.app
    form = await read_form(request)
    values = {
        key: str(form.get(key) or "")
        for key in ("email", "first_name", "timezone", "consented_on", "source", "wording")
    }
    now: datetime = request.app.state.clock()
    try:
        consented_at = _consented_at(app, values["consented_on"], now)
        added = await run_in_threadpool(
            lambda: add_person(
                app,
                values["email"],
                now,
                consented_at=consented_at,
                source=values["source"],
                wording=values["wording"],
                first_name=values["first_name"] or None,
                timezone=values["timezone"] or None,
            )
        )
    except NurtureError as exc:
        return await add_page(
            request, values=values, problem=f"Nobody was added: {in_her_words(exc)}.", status=400
        )
    if added.status != "already":
        actor = request.state.owner.actor(client_ip(request))
        await run_in_threadpool(
            record_now, app, actor, "added a subscriber by hand", now, f"subscriber {added.subscriber_id}"
        )
    return RedirectResponse(f"{BASE}/{added.subscriber_id}?done=added-{added.status}", status_code=303)


# ---------------------------------------------------------------- a file


class _Counted:
    """The request's `receive`, raising TooLarge once more than `limit` bytes have come."""

    def __init__(self, receive: Any, limit: int) -> None:
        self.receive, self.limit, self.size = receive, limit, 0

    async def __call__(self) -> Any:
        message = await self.receive()
        self.size += len(message.get("body", b""))
        if self.size > self.limit:
            raise TooLarge
        return message


async def _drain(receive: Any, budget: int) -> None:
    """Read what is left of the body (up to `budget` bytes), so the browser reads the answer
    instead of a broken connection; past that, the connection is let go."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _store(upload: UploadFile, path: Path) -> int:
    size = 0
    with path.open("wb") as out:
        while chunk := await upload.read(MB):
            size += len(chunk)
            await run_in_threadpool(out.write, chunk)
    return size


async def upload(request: Request) -> Response:
    app: App = request.app.state.app
    now: datetime = request.app.state.clock()
    limit = _limit(app)
    too_large = (
        f"The file is larger than {app.config.console.import_max_mb} MB, the most this page takes. "
        "Split it into smaller files (each with the header line) and upload them one after the other."
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + SLACK:
        await _drain(request.receive, DRAIN_LIMIT * limit)
        return await add_page(request, upload_problem=too_large, status=413)
    jobs = _jobs(request)
    path = await run_in_threadpool(jobs.new_path)
    counted = _Counted(request.receive, limit + SLACK)
    try:
        async with Request(request.scope, counted).form(max_files=1, max_fields=4) as form:
            sent = form.get("file")
            if not isinstance(sent, UploadFile) or not sent.filename:
                return await add_page(
                    request, upload_problem="Choose a CSV file to upload first.", status=400
                )
            name = Path(sent.filename).name[:120] or "the file"
            size = await _store(sent, path)
    except TooLarge:
        path.unlink(missing_ok=True)
        await _drain(request.receive, DRAIN_LIMIT * limit)
        return await add_page(request, upload_problem=too_large, status=413)
    except ClientDisconnect:
        path.unlink(missing_ok=True)
        return Response(status_code=400)
    if size == 0:
        path.unlink(missing_ok=True)
        return await add_page(request, upload_problem="That file is empty.", status=400)
    owner = request.state.owner.email
    job = await run_in_threadpool(jobs.start_check, app, path, name, owner, now)
    return RedirectResponse(f"{BASE}/import/{job.token}", status_code=303)


def _job(request: Request) -> ImportJob | None:
    return _jobs(request).get(request.path_params["token"], request.state.owner.email)


def _gone(request: Request) -> Response:
    return pages_of(request).render(
        request,
        "message.html",
        status=404,
        title="This upload is not here",
        paragraphs=[
            "It was imported or thrown away already, or it was left for more than a day, or the "
            "server restarted since. Upload the file again to see its report."
        ],
        back=BASE + "/add",
    )


async def import_page(request: Request) -> Response:
    job = _job(request)
    if job is None:
        return _gone(request)
    pages = pages_of(request)
    context: dict[str, Any] = {"job": job, "Phase": Phase, "title": "Import a list"}
    if not job.busy:
        return pages.render(request, "import.html", progress=None, **context)
    head = _text(pages.render(request, "import.html", progress=MARK, **context)).partition(MARK)[0]

    async def stream() -> AsyncIterator[str]:
        yield head
        while job.busy:
            yield _bar(job)
            await asyncio.sleep(TICK)
        yield _bar(job)
        # The finished page, below the bar (the bar's log is closed first).
        done = _text(pages.render(request, "import.html", progress="", **context))
        yield "</div>" + done.partition('<div id="after-progress"></div>')[2]

    return StreamingResponse(stream(), media_type="text/html; charset=utf-8", headers=page_headers())


def _text(response: Response) -> str:
    return bytes(response.body).decode("utf-8")


def _bar(job: ImportJob) -> str:
    percent = round(job.share * 100)
    doing = {Phase.CHECKING: "Checking", Phase.IMPORTING: "Importing"}.get(job.phase, "Done")
    return (
        f'<div class="step"><progress max="100" value="{percent}" aria-label="{doing}: {percent}%">'
        f"{percent}%</progress> <span>{doing}: {percent}%</span></div>\n"
    )


async def import_act(request: Request) -> Response:
    app: App = request.app.state.app
    job = _job(request)
    if job is None:
        return _gone(request)
    now: datetime = request.app.state.clock()
    actor = request.state.owner.actor(client_ip(request))
    if request.path_params["action"] == "commit":
        started = await run_in_threadpool(_jobs(request).start_import, app, job, now)
        if started:
            await run_in_threadpool(record_now, app, actor, "imported a list", now, f"{job.rows} rows")
        return RedirectResponse(f"{BASE}/import/{job.token}", status_code=303)
    if request.path_params["action"] == "discard":
        if not await run_in_threadpool(_jobs(request).discard, job):
            return RedirectResponse(f"{BASE}/import/{job.token}", status_code=303)
        return RedirectResponse(f"{BASE}/add?done=discarded", status_code=303)
    return _gone(request)
