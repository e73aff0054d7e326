"""/console/deliveries, /console/results and /console/audit: what needs the owner, how
the emails are doing, and who did what."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.audience.preferences import choice_counts
from nurture.errors import InputError, NurtureError
from nurture.owners.audit import read_audit, record_now
from nurture.provider_events import count_mismatched
from nurture.reporting.report import report_sections
from nurture.sending.deliveries import list_stuck, release
from nurture.store import models as m
from nurture.store.db import reading
from nurture.web.client import client_ip
from nurture.web.console.access import read_form
from nurture.web.console.render import pages_of

PERIODS = {
    "7": ("the last 7 days", 7),
    "30": ("the last 30 days", 30),
    "90": ("the last 90 days", 90),
    "all": ("all time", None),
}
AUDIT_PAGE = 100
MAX_AUDIT_PAGE = 10**9  # far past any log's end, and an offset any store takes


MAX_ID = 10**18 - 1  # ids in forms and pages: what fits the store's 64-bit ids (and the routes' `id`)


def whole_number(text: str) -> int | None:
    """A positive whole number written in ASCII digits ("²" and "٣" are digits to str.isdigit),
    small enough for the store; None for anything else."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def _failures(app: App, now: datetime) -> list[dict[str, object]]:
    with reading(app.engine) as session:
        rows = session.execute(
            select(
                m.Delivery.id,
                m.Delivery.stream,
                m.Delivery.step,
                m.Delivery.claimed_at,
                m.Delivery.error,
                m.Delivery.subscriber_id,
                m.Delivery.provider_message_id,
                m.Subscriber.email.label("recipient"),
            )
            .outerjoin(m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id)
            .where(
                m.Delivery.status == m.DeliveryStatus.FAILED,
                m.Delivery.claimed_at >= now - timedelta(days=30),
            )
            .order_by(m.Delivery.id.desc())
            .limit(200)
        ).all()
    return [row._asdict() for row in rows]


def _with_recipients(app: App, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each stuck delivery with whom it is for and the provider's id for it (if it gave one)."""
    ids = [row["id"] for row in rows]
    if not ids:
        return rows
    with reading(app.engine) as session:
        found = {
            delivery_id: (subscriber_id, email, message_id)
            for delivery_id, subscriber_id, email, message_id in session.execute(
                select(
                    m.Delivery.id,
                    m.Delivery.subscriber_id,
                    m.Subscriber.email,
                    m.Delivery.provider_message_id,
                )
                .outerjoin(m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id)
                .where(m.Delivery.id.in_(ids))
            )
        }
    return [
        {
            **row,
            "subscriber_id": found.get(row["id"], (None, None, None))[0],
            "recipient": found.get(row["id"], (None, None, None))[1],
            "provider_message_id": found.get(row["id"], (None, None, None))[2],
        }
        for row in rows
    ]


async def deliveries_page(request: Request) -> Response:
    app: App = request.app.state.app
    now: datetime = request.app.state.clock()
    stuck = await run_in_threadpool(list_stuck, app, now)
    stuck = await run_in_threadpool(_with_recipients, app, stuck)
    failed = await run_in_threadpool(_failures, app, now)
    mismatched = await run_in_threadpool(count_mismatched, app)
    released = request.query_params.get("released")
    flash = (
        f"Released {released}: the next sending pass tries again."
        if released and released.isdigit()
        else None
    )
    return pages_of(request).render(
        request,
        "deliveries.html",
        title="Deliveries",
        stuck=stuck,
        failed=failed,
        flash=flash,
        mismatched=mismatched,
    )


async def release_deliveries(request: Request) -> Response:
    app: App = request.app.state.app
    now: datetime = request.app.state.clock()
    form = await read_form(request)
    chosen = [whole_number(value) if isinstance(value, str) else None for value in form.getlist("id")]
    ids = [number for number in chosen if number is not None]
    if not chosen:
        return RedirectResponse("/console/deliveries", status_code=303)
    try:
        if len(ids) != len(chosen):
            raise InputError("not a delivery of this list")
        count = await run_in_threadpool(lambda: release(app, now, ids=ids))
    except NurtureError:
        return pages_of(request).render(
            request,
            "message.html",
            status=400,
            title="Nothing was released",
            paragraphs=[
                "Some of the emails you chose are not stuck or failed any more (perhaps they were "
                "released already, or an answer from the provider settled them), so nothing was "
                "released. Reload the list and choose again."
            ],
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
    choices = await run_in_threadpool(choice_counts, app, now, since)
    return pages_of(request).render(
        request,
        "results.html",
        title="Results",
        sections=[Markup(section) for section in sections],
        period=period,
        periods=PERIODS,
        words=words,
        choices=choices,
    )


async def audit_page(request: Request) -> Response:
    app: App = request.app.state.app
    page = min(whole_number(request.query_params.get("page", "1")) or 1, MAX_AUDIT_PAGE)
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
