"""/console/inbox, /console/holds/<id>/lift and /console/quiet: staying in the inbox.

The Inbox page runs `nurture doctor`'s checks (DNS, https, one-click, webhook) and shows
each finding with the record to publish; the holds an alert placed are on Today, with
the button that lifts them; the Quiet readers page shows who is quiet, who was asked
if they still want the emails, and how it ended (nurture.audience.repermission).
"""

from __future__ import annotations

from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.audience.repermission import overview
from nurture.deliverability.doctor import DoctorOptions, run_doctor
from nurture.errors import NurtureError
from nurture.owners.audit import record_now
from nurture.sending.holds import lift
from nurture.store.db import reading
from nurture.web.client import client_ip
from nurture.web.console.render import pages_of
from nurture.web.console.words import in_her_words


async def inbox_page(request: Request) -> Response:
    app: App = request.app.state.app
    now: datetime = request.app.state.clock()
    options: DoctorOptions = request.app.state.doctor_options
    report = await run_in_threadpool(run_doctor, app, now, options)
    return pages_of(request).render(
        request,
        "inbox.html",
        title="Inbox",
        report=report,
        transport=app.config.delivery.transport,
    )


async def lift_hold(request: Request) -> Response:
    app: App = request.app.state.app
    now: datetime = request.app.state.clock()
    hold_id = int(request.path_params["hold_id"])
    owner = request.state.owner
    try:
        hold = await run_in_threadpool(lift, app.engine, hold_id, now, owner.email)
    except NurtureError as exc:
        return pages_of(request).render(
            request,
            "message.html",
            status=400,
            title="Nothing changed",
            paragraphs=[in_her_words(exc)],
            back="/console/",
        )
    await run_in_threadpool(
        record_now,
        app,
        owner.actor(client_ip(request)),
        "lifted a sending hold",
        now,
        f"hold {hold.id}: {hold.what}",
    )
    return RedirectResponse("/console/?done=lifted", status_code=303)


async def quiet_page(request: Request) -> Response:
    app: App = request.app.state.app
    now: datetime = request.app.state.clock()

    def read() -> object:
        with reading(app.engine) as session:
            return overview(session, app.config, now)

    info = await run_in_threadpool(read)
    return pages_of(request).render(
        request, "quiet.html", title="Quiet readers", info=info, sunset=app.config.sunset
    )
