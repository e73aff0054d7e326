"""/console/deliveries, /console/results and /console/audit: what needs the owner, how
the emails are doing, and who did what."""

from __future__ import annotations

from datetime import datetime, timedelta

from markupsafe import Markup
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.errors import NurtureError
from nurture.owners.audit import read_audit, record_now
from nurture.reporting.report import report_sections
from nurture.sending.deliveries import list_stuck, release
from nurture.store import models as m
from nurture.store.db import reading
from nurture.web.client import client_ip
from nurture.web.console.render import pages_of

PERIODS = {
    "7": ("the last 7 days", 7),
    "30": ("the last 30 days", 30),
    "90": ("the last 90 days", 90),
    "all": ("all time", None),
}
AUDIT_PAGE = 100


def _failures(app: App, now: datetime) -> list[dict[str, object]]:
    with reading(app.engine) as session:
        rows = session.execute(
            select(m.Delivery.id, m.Delivery.stream, m.Delivery.step, m.Delivery.claimed_at, m.Delivery.error)
            .where(
                m.Delivery.status == m.DeliveryStatus.FAILED,
                m.Delivery.claimed_at >= now - timedelta(days=30),
            )
            .order_by(m.Delivery.id.desc())
            .limit(200)
        ).all()
    return [row._asdict() for row in rows]


async def deliveries_page(request: Request) -> Response:
    app: App = request.app.state.app
    now: datetime = request.app.state.clock()
    stuck = await run_in_threadpool(list_stuck, app, now)
    failed = await run_in_threadpool(_failures, app, now)
    released = request.query_params.get("released")
    flash = (
        f"Released {released}: the next sending pass tries again."
        if released and released.isdigit()
        else None
    )
    return pages_of(request).render(
        request, "deliveries.html", title="Deliveries", stuck=stuck, failed=failed, flash=flash
    )


async def release_deliveries(request: Request) -> Response:
    app: App = request.app.state.app
    now: datetime = request.app.state.clock()
    form = await request.form()
    ids = [int(value) for value in form.getlist("id") if isinstance(value, str) and value.isdigit()]
    if not ids:
        return RedirectResponse("/console/deliveries", status_code=303)
    try:
        count = await run_in_threadpool(lambda: release(app, now, ids=ids))
    except NurtureError as exc:
        return pages_of(request).render(
            request,
            "message.html",
            status=400,
            title="Nothing was released",
            paragraphs=[str(exc)],
            back="/console/deliveries",
        )
    detail = "deliveries " + ", ".join(map(str, ids))
    await run_in_threadpool(
        record_now, app, request.state.owner.actor(client_ip(request)), "released deliveries", now, detail
    )
    return RedirectResponse(f"/console/deliveries?released={count}", status_code=303)


async def results_page(request: Request) -> Response:
    app: App = request.app.state.app
    now: datetime = request.app.state.clock()
    period = request.query_params.get("period", "30")
    if period not in PERIODS:
        period = "30"
    words, days = PERIODS[period]
    since = now - timedelta(days=days) if days else None
    sections = await run_in_threadpool(lambda: report_sections(app, since=since))
    return pages_of(request).render(
        request,
        "results.html",
        title="Results",
        sections=[Markup(section) for section in sections],
        period=period,
        periods=PERIODS,
        words=words,
    )


async def audit_page(request: Request) -> Response:
    app: App = request.app.state.app
    raw = request.query_params.get("page", "1")
    page = int(raw) if raw.isdigit() and int(raw) > 0 else 1
    found = await run_in_threadpool(lambda: read_audit(app, offset=(page - 1) * AUDIT_PAGE, limit=AUDIT_PAGE))
    more = found.total > page * AUDIT_PAGE
    return pages_of(request).render(
        request,
        "audit.html",
        title="Audit log",
        entries=found.entries,
        total=found.total,
        page=page,
        more=more,
    )
