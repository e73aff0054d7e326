"""/console/series: each series' emails, its changes against the published version with
the publish plan, and for each email a preview (600 and 375 px, HTML and text), the check
findings, editing (the campaign files are the draft) and a test copy.

What a series is under versioned series, and publishing it, is in nurture.series.review.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.content.campaigns import load_campaigns
from nurture.content.rules import Finding
from nurture.errors import NurtureError
from nurture.owners.audit import record_now
from nurture.sending.one_email import send_test_copy
from nurture.series.control import is_paused
from nurture.series.review import (
    SeriesState,
    email_changes,
    ensure_published,
    publish_series,
    series_state,
    waiting_by_key,
)
from nurture.series.structure import is_new_series
from nurture.web.client import client_ip
from nurture.web.console import email_edits
from nurture.web.console.access import read_form
from nurture.web.console.email_view import style_hashes
from nurture.web.console.render import pages_of
from nurture.web.console.words import in_her_words

BASE = "/console/series"
DONE = {
    "saved": ("Draft saved. Nothing goes out until you publish the series.", "ok"),
    "published": ("Published: from the next sending pass on, this series sends the new version.", "ok"),
    "shaped": ("Saved as a draft. The plan below shows what publishing it would change.", "ok"),
    "added": ("Email added to the draft with a starter text: write it below, then publish the series.", "ok"),
    "paused": ("Paused: nobody gets an email of this series until you resume it.", "ok"),
    "resumed": ("Resumed: emails that fell due meanwhile go out at the next sending pass.", "ok"),
    "discarded": ("Draft thrown away: the emails are back as the published version has them.", "ok"),
    "created": ("Series made, as a draft: write its emails, then publish it. Nothing goes out before.", "ok"),
}
EVERYONE, ONLY_AHEAD = "everyone", "ahead"


def _series_list(app: App) -> list[Any]:
    # The files as they are now, each folder a series; a folder that does not load shows as published.
    published = app.catalog.refresh(app.engine, create=False)
    try:
        files = load_campaigns(app.config.campaigns_dir)
    except NurtureError:
        files = {}
    return list({**published, **files}.values())


def _series_states(app: App, campaigns: list[Any]) -> dict[str, str]:
    published = app.catalog.current(app.engine)
    states = {}
    for campaign in campaigns:
        if campaign.slug not in published:
            states[campaign.slug] = "a draft, not published yet"
        elif is_paused(app, campaign.slug):
            states[campaign.slug] = "paused"
        else:
            states[campaign.slug] = f"version {published[campaign.slug].version} going out"
    return states


async def series_list_page(request: Request) -> Response:
    app: App = request.app.state.app
    campaigns = await run_in_threadpool(_series_list, app)
    states = await run_in_threadpool(_series_states, app, campaigns)
    flash = "The unpublished series was deleted." if request.query_params.get("done") == "removed" else None
    return pages_of(request).render(
        request, "series_list.html", title="Series", campaigns=campaigns, states=states, flash=flash
    )


def _broken(request: Request, exc: Exception) -> Response:
    return pages_of(request).render(
        request,
        "message.html",
        status=500,
        title="A series file has a problem",
        paragraphs=[
            "One of this series' files has a mistake, so the series cannot be shown or published "
            "here. The emails already published keep going out meanwhile.",
            "Whoever looks after the practice's email files can find the mistake with the check "
            "that comes with nurture; then reload this page.",
        ],
        back=None,
    )


def _missing(request: Request) -> Response:
    return pages_of(request).render(
        request,
        "message.html",
        status=404,
        title="No such series or email",
        paragraphs=["Pick one from the list."],
        back=BASE,
    )


def _find(app: App, request: Request) -> tuple[SeriesState, int] | None:
    """The series named in the path, and its email number (0 when the path names none)."""
    state = series_state(app, request.path_params["slug"])
    if state is None:
        return None
    number = int(request.path_params.get("step", 0))
    if "step" in request.path_params and not 1 <= number <= len(state.campaign.steps):
        return None
    return state, number


async def _located(request: Request, *, email: bool) -> tuple[SeriesState, int] | Response:
    """The series in the path (and its email, when `email`), or the page saying why not."""
    app: App = request.app.state.app
    try:
        found = await run_in_threadpool(_find, app, request)
    except NurtureError as exc:
        return _broken(request, exc)
    if found is None or (email and not found[1]):
        return _missing(request)
    return found


async def series_page(
    request: Request,
    *,
    flash: str | None = None,
    flash_kind: str = "ok",
    status: int = 200,
    refusals: list[str] | None = None,
) -> Response:
    app: App = request.app.state.app
    found = await _located(request, email=False)
    if isinstance(found, Response):
        return found
    state, _ = found
    waiting = await run_in_threadpool(waiting_by_key, app, state.slug)
    if flash is None and request.query_params.get("done") in DONE:
        flash, flash_kind = DONE[request.query_params["done"]]
    shape = await run_in_threadpool(_shape_facts, app, state)
    changed = (
        {change.key for change in state.plan.diff.changes}
        if state.plan and state.plan.old_version is not None
        else set()
    )
    return pages_of(request).render(
        request,
        "series.html",
        status=status,
        title=state.campaign.title,
        campaign=state.campaign,
        state=state,
        waiting=waiting,
        changed=changed,
        refusals=refusals or [],
        flash=flash,
        flash_kind=flash_kind,
        everyone=EVERYONE,
        only_ahead=ONLY_AHEAD,
        now=request.app.state.clock(),
        **shape,
    )


def _shape_facts(app: App, state: SeriesState) -> dict[str, Any]:
    """Paused or not, made here and never published, and when its files last changed."""
    folder = app.config.campaigns_dir / state.slug
    times = [path.stat().st_mtime for path in folder.iterdir() if path.is_file()] if folder.is_dir() else []
    return {
        "paused": state.published is not None and is_paused(app, state.slug),
        "new_series": is_new_series(folder),
        "draft_saved_at": datetime.fromtimestamp(max(times), UTC) if times else None,
    }


def _step_view(app: App, state: SeriesState, number: int) -> dict[str, Any]:
    step = state.campaign.step(number)
    path = step.email.path
    if path.exists():
        source = path.read_text(encoding="utf-8")
        checked = email_edits.check(app.config, source, path, campaign=state.campaign, step=step)
    else:
        source = ""
        checked = email_edits.Checked(
            None, None, [Finding(path, None, "the file is missing: paste the email below and save it")]
        )
    published = state.published.by_key(step.step_key) if state.published is not None else None
    draft = None if state.load_error is not None else step.email
    return {
        "step": step,
        "source": source,
        "checked": checked,
        "diff": email_changes(published.email if published else None, draft),
        "relative": _relative(app, step),
        "load_error": state.load_error,
    }


def _relative(app: App, step: Any) -> str:
    try:
        return str(step.email.path.relative_to(app.config.base_dir))
    except ValueError:
        return str(step.email.path)


async def step_page(
    request: Request,
    *,
    flash: str | None = None,
    flash_kind: str = "ok",
    status: int = 200,
    typed: str | None = None,
) -> Response:
    """`typed`: what she sent, shown in the form instead of the file when it was refused."""
    app: App = request.app.state.app
    found = await _located(request, email=True)
    if isinstance(found, Response):
        return found
    state, number = found
    view = await run_in_threadpool(_step_view, app, state, number)
    if typed is not None:
        view["source"] = typed
    if flash is None and request.query_params.get("done") == "tested":
        flash = email_edits.test_copy_words(app, request.state.owner.email)
    if flash is None and request.query_params.get("done") in DONE:
        flash, flash_kind = DONE[request.query_params["done"]]
    rendered = view["checked"].rendered
    return pages_of(request).render(
        request,
        "step.html",
        status=status,
        title=f"{state.campaign.title}: email {number}",
        campaign=state.campaign,
        number=number,
        flash=flash,
        flash_kind=flash_kind,
        email_styles=style_hashes(rendered.html) if rendered else None,
        **view,
    )


async def step_action(request: Request) -> Response:
    app: App = request.app.state.app
    found = await _located(request, email=True)
    if isinstance(found, Response):
        return found
    state, number = found
    action = request.path_params["action"]
    form = await read_form(request)
    now = request.app.state.clock()
    actor = request.state.owner.actor(client_ip(request))
    where = f"{state.slug} email {number}"
    back = f"{BASE}/{state.slug}/{number}"
    try:
        if action == "draft":
            path = state.campaign.step(number).email.path
            await run_in_threadpool(ensure_published, app, now)
            await run_in_threadpool(email_edits.write_email, path, str(form.get("source") or ""))
            await run_in_threadpool(record_now, app, actor, "saved a series draft", now, where)
            return RedirectResponse(back + "?done=saved", status_code=303)
        if action == "test":
            view = await run_in_threadpool(_step_view, app, state, number)
            prepared = view["checked"].prepared
            if prepared is None or view["checked"].findings:
                return await step_page(
                    request,
                    flash="No test copy was made: fix what the check found first (listed below).",
                    flash_kind="warning",
                    status=400,
                )
            await run_in_threadpool(
                send_test_copy, app.transport, app.config, prepared, request.state.owner.email
            )
            await run_in_threadpool(record_now, app, actor, "sent a test copy", now, where)
            return RedirectResponse(back + "?done=tested", status_code=303)
    except NurtureError as exc:
        return await step_page(
            request,
            flash=f"Nothing changed: {in_her_words(exc)}.",
            flash_kind="warning",
            status=400,
            typed=str(form.get("source")) if action == "draft" and form.get("source") is not None else None,
        )
    return _missing(request)


async def series_publish(request: Request) -> Response:
    """Publish the series' files as its next version, with the same checks as `nurture campaign publish`."""
    app: App = request.app.state.app
    slug = request.path_params["slug"]
    form = await read_form(request)
    only_ahead = form.get("who") == ONLY_AHEAD
    try:
        expected = int(str(form.get("version") or ""))
    except ValueError:
        return await series_page(
            request,
            flash="Nothing changed: reload the page and publish from the plan it shows.",
            flash_kind="warning",
            status=400,
        )
    now = request.app.state.clock()
    try:
        result, refusals = await run_in_threadpool(
            lambda: publish_series(app, slug, now, only_ahead=only_ahead, expected_version=expected)
        )
    except NurtureError as exc:
        return await series_page(
            request, flash=f"Nothing changed: {in_her_words(exc)}.", flash_kind="warning", status=400
        )
    if result is None:
        return await series_page(
            request,
            flash="Not published: fix what is listed below first. The published version keeps going out.",
            flash_kind="warning",
            status=400,
            refusals=refusals,
        )
    actor = request.state.owner.actor(client_ip(request))
    detail = f"{slug} version {result.new_version}" + (
        " (people already past a new email skip it)" if only_ahead else ""
    )
    await run_in_threadpool(record_now, app, actor, "published a series", now, detail)
    return RedirectResponse(f"{BASE}/{slug}?done=published", status_code=303)
