"""The shape of a series in the console: a new series, each email's delay and place, adding
and removing an email, throwing the draft away, and pausing or resuming what goes out.

Shape changes write the draft (nurture.series.structure); the series page then shows the
plan, and nothing goes out until she publishes it. Pause and resume act at once on the
published series (nurture.series.control), as `nurture campaign pause` does.
"""

from __future__ import annotations

from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.errors import NotFound, NurtureError
from nurture.owners.audit import Actor, record_now
from nurture.series import control, structure
from nurture.series.review import ensure_published, published_version
from nurture.series.versions import snapshot_of
from nurture.web.client import client_ip
from nurture.web.console.access import read_form
from nurture.web.console.render import pages_of
from nurture.web.console.series_pages import BASE, series_page
from nurture.web.console.words import in_her_words


def _actor(request: Request) -> Actor:
    actor: Actor = request.state.owner.actor(client_ip(request))
    return actor


async def series_create(request: Request) -> Response:
    app: App = request.app.state.app
    form = await read_form(request)
    now: datetime = request.app.state.clock()
    try:
        slug = await run_in_threadpool(
            structure.create_series,
            app,
            str(form.get("slug") or ""),
            str(form.get("title") or ""),
            str(form.get("trigger") or ""),
            str(form.get("subject") or ""),
        )
    except NurtureError as exc:
        return pages_of(request).render(
            request,
            "message.html",
            status=400,
            title="No series was made",
            paragraphs=[f"Nothing changed: {in_her_words(exc)}."],
            back=BASE,
        )
    await run_in_threadpool(record_now, app, _actor(request), "made a series", now, slug)
    return RedirectResponse(f"{BASE}/{slug}?done=created", status_code=303)


async def _refused(request: Request, exc: NurtureError) -> Response:
    return await series_page(
        request, flash=f"Nothing changed: {in_her_words(exc)}.", flash_kind="warning", status=400
    )


async def series_shape(request: Request) -> Response:
    """The emails' delays as typed, and the button pressed: save, move one up or down, or remove one."""
    app: App = request.app.state.app
    slug = request.path_params["slug"]
    form = await read_form(request)
    now: datetime = request.app.state.clock()
    delays = {
        str(name).removeprefix("delay-"): str(value)
        for name, value in form.items()
        if str(name).startswith("delay-") and isinstance(value, str)
    }
    pressed = str(form.get("do") or "save")
    move: tuple[str, int] | None = None
    remove: str | None = None
    if pressed.startswith(("up:", "down:")):
        direction, _, key = pressed.partition(":")
        move = (key, -1 if direction == "up" else 1)
    elif pressed.startswith("remove:"):
        remove = pressed.removeprefix("remove:")
    try:
        # An edit of a series never published is a draft against it as it was: keep that first.
        await run_in_threadpool(ensure_published, app, now)
        await run_in_threadpool(lambda: structure.reshape(app.config, slug, delays, move=move, remove=remove))
    except NurtureError as exc:
        return await _refused(request, exc)
    what = "moved an email" if move else "removed an email" if remove else "changed delays"
    await run_in_threadpool(record_now, app, _actor(request), f"{what} in a series draft", now, slug)
    return RedirectResponse(f"{BASE}/{slug}?done=shaped", status_code=303)


async def series_add(request: Request) -> Response:
    app: App = request.app.state.app
    slug = request.path_params["slug"]
    form = await read_form(request)
    now: datetime = request.app.state.clock()
    try:
        await run_in_threadpool(ensure_published, app, now)
        number = await run_in_threadpool(
            structure.add_email, app, slug, str(form.get("subject") or ""), str(form.get("delay") or "")
        )
    except NurtureError as exc:
        return await _refused(request, exc)
    await run_in_threadpool(
        record_now, app, _actor(request), "added an email to a series draft", now, f"{slug} email {number}"
    )
    return RedirectResponse(f"{BASE}/{slug}/{number}?done=added", status_code=303)


async def series_switch(request: Request) -> Response:
    """Pause or resume the published series."""
    app: App = request.app.state.app
    slug = request.path_params["slug"]
    pausing = request.url.path.endswith("/pause")
    now: datetime = request.app.state.clock()
    try:
        if await run_in_threadpool(published_version, app, slug) is None:
            raise NotFound("this series has not been published yet, so nothing of it goes out to pause")
        switch = control.pause if pausing else control.resume
        changed = await run_in_threadpool(switch, app, slug, now)
    except NurtureError as exc:
        return await _refused(request, exc)
    if changed:
        action = "paused a series" if pausing else "resumed a series"
        await run_in_threadpool(record_now, app, _actor(request), action, now, slug)
    return RedirectResponse(f"{BASE}/{slug}?done={'paused' if pausing else 'resumed'}", status_code=303)


async def series_discard(request: Request) -> Response:
    app: App = request.app.state.app
    slug = request.path_params["slug"]
    now: datetime = request.app.state.clock()
    try:
        live = await run_in_threadpool(published_version, app, slug)
        snapshot = snapshot_of(live) if live is not None else None
        await run_in_threadpool(structure.discard_draft, app, slug, snapshot)
    except NurtureError as exc:
        return await _refused(request, exc)
    await run_in_threadpool(record_now, app, _actor(request), "discarded a series draft", now, slug)
    if live is None:
        return RedirectResponse(f"{BASE}?done=removed", status_code=303)
    return RedirectResponse(f"{BASE}/{slug}?done=discarded", status_code=303)
