"""/console/series: each series' steps, and for each email a preview (600 and 375 px,
HTML and text), the check findings, editing as a draft, a test copy, and publishing.

Drafts and publishing live in nurture.web.console.drafts (the hook for versioned series).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.web.console import drafts
from nurture.content.campaigns import Campaign, load_campaigns
from nurture.errors import NurtureError
from nurture.owners.audit import record_now
from nurture.store import models as m
from nurture.store.db import reading
from nurture.web.console.email_view import style_hashes
from nurture.web.console.render import pages_of
from nurture.web.guards import client_ip

BASE = "/console/series"
DONE = {
    "saved": ("Draft saved. Nothing goes out until you publish it.", "ok"),
    "tested": ("Test copy sent to your address.", "ok"),
    "published": ("Published: the next emails of this step use the new version.", "ok"),
    "discarded": ("Draft discarded.", "ok"),
}


def _campaigns(app: App) -> dict[str, Campaign]:
    # Read fresh: the files change under the console's own edits.
    return load_campaigns(app.config.campaigns_dir)


def _waiting(app: App, slug: str) -> dict[int, int]:
    with reading(app.engine) as session:
        rows = session.execute(
            select(m.Enrollment.next_step, func.count())
            .where(m.Enrollment.campaign == slug, m.Enrollment.status == m.EnrollmentStatus.ACTIVE)
            .group_by(m.Enrollment.next_step)
        ).all()
    return {int(step): int(count) for step, count in rows}


async def series_list_page(request: Request) -> Response:
    app: App = request.app.state.app
    try:
        campaigns = await run_in_threadpool(_campaigns, app)
    except NurtureError as exc:
        return _broken(request, exc)
    return pages_of(request).render(request, "series_list.html", title="Series", campaigns=list(campaigns.values()))


def _broken(request: Request, exc: Exception) -> Response:
    return pages_of(request).render(
        request, "message.html", status=500, title="A series file has a problem", paragraphs=[str(exc), "Fix the file named above (or run `nurture check`), then reload."], back=None
    )


def _find(app: App, request: Request) -> tuple[Campaign, int] | None:
    """The series named in the path, and its email number (0 when the path names none)."""
    campaigns = _campaigns(app)
    campaign = campaigns.get(request.path_params["slug"])
    if campaign is None:
        return None
    number = int(request.path_params.get("step", 0))
    if "step" in request.path_params and not 1 <= number <= len(campaign.steps):
        return None
    return campaign, number


def _missing(request: Request) -> Response:
    return pages_of(request).render(request, "message.html", status=404, title="No such series or email", paragraphs=["Pick one from the list."], back=BASE)


async def series_page(request: Request) -> Response:
    app: App = request.app.state.app
    try:
        found = await run_in_threadpool(_find, app, request)
    except NurtureError as exc:
        return _broken(request, exc)
    if found is None:
        return _missing(request)
    campaign, _ = found
    waiting = await run_in_threadpool(_waiting, app, campaign.slug)
    drafted = {step.number for step in campaign.steps if drafts.draft_path(step.email.path).exists()}
    return pages_of(request).render(request, "series.html", title=campaign.title, campaign=campaign, waiting=waiting, drafted=drafted)


def _step_view(app: App, campaign: Campaign, number: int) -> dict[str, Any]:
    step = campaign.step(number)
    live = step.email.path
    draft = drafts.draft_path(live)
    has_draft = draft.exists()
    shown = draft if has_draft else live
    checked = drafts.check(app.config, shown, live, campaign=campaign, step=step)
    base = app.config.base_dir
    return {
        "step": step,
        "has_draft": has_draft,
        "source": shown.read_text(encoding="utf-8"),
        "checked": checked,
        "diff": drafts.diff(live),
        "relative": _relative(live, base),
    }


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


async def step_page(request: Request, *, flash: str | None = None, flash_kind: str = "ok", status: int = 200) -> Response:
    app: App = request.app.state.app
    try:
        found = await run_in_threadpool(_find, app, request)
    except NurtureError as exc:
        return _broken(request, exc)
    if found is None or not found[1]:
        return _missing(request)
    campaign, number = found
    view = await run_in_threadpool(_step_view, app, campaign, number)
    if flash is None and request.query_params.get("done") in DONE:
        flash, flash_kind = DONE[request.query_params["done"]]
    rendered = view["checked"].rendered
    return pages_of(request).render(
        request, "step.html", status=status, title=f"{campaign.title}: email {number}", campaign=campaign, number=number, flash=flash, flash_kind=flash_kind,
        email_styles=style_hashes(rendered.html) if rendered else None, **view,
    )


async def step_action(request: Request) -> Response:
    app: App = request.app.state.app
    found = await run_in_threadpool(_find, app, request)
    if found is None or not found[1]:
        return _missing(request)
    campaign, number = found
    step = campaign.step(number)
    live = step.email.path
    action = request.path_params["action"]
    form = await request.form()
    now: datetime = request.app.state.clock()
    actor = request.state.owner.actor(client_ip(request))
    where = f"{campaign.slug} email {number}"
    back = f"{BASE}/{campaign.slug}/{number}"
    try:
        if action == "draft":
            text = str(form.get("source") or "")
            await run_in_threadpool(drafts.write_draft, live, text)
            await run_in_threadpool(record_now, app, actor, "saved a series draft", now, where)
            return RedirectResponse(back + "?done=saved", status_code=303)
        if action == "discard":
            await run_in_threadpool(drafts.discard_draft, live)
            await run_in_threadpool(record_now, app, actor, "discarded a series draft", now, where)
            return RedirectResponse(back + "?done=discarded", status_code=303)
        if action == "test":
            view = await run_in_threadpool(_step_view, app, campaign, number)
            prepared = view["checked"].prepared
            if prepared is None:
                return await step_page(request, flash="No test copy: the email cannot be built yet (see the findings).", flash_kind="warning", status=400)
            await run_in_threadpool(drafts.send_test_copy, app, prepared, request.state.owner.email)
            await run_in_threadpool(record_now, app, actor, "sent a test copy", now, where)
            return RedirectResponse(back + "?done=tested", status_code=303)
        if action == "publish":
            findings = await run_in_threadpool(lambda: drafts.publish_draft(app.config, live, campaign=campaign, step=step))
            if findings:
                return await step_page(request, flash="Not published: fix the findings listed below first.", flash_kind="warning", status=400)
            app.__dict__.pop("campaigns", None)  # this process's cached series: read again when next needed
            await run_in_threadpool(record_now, app, actor, "published a series email", now, where)
            return RedirectResponse(back + "?done=published", status_code=303)
    except NurtureError as exc:
        return await step_page(request, flash=f"Nothing changed: {exc}", flash_kind="warning", status=400)
    return _missing(request)
