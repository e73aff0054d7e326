"""/console/settings: the sender, postal address, sending window and cap, the practice's time
zone, the consent wording and the alert address, changed without touching the server.

The work (validation, the wording version, the audit entry) is nurture.practice_settings;
what overrides what is nurture.config.overrides.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import available_timezones

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.errors import InputError
from nurture.practice_settings import SettingsRefused, reset_setting, save_settings, settings_view, shown
from nurture.web.client import client_ip
from nurture.web.console.access import read_form
from nurture.web.console.render import pages_of

BASE = "/console/settings"
ZONES = sorted(available_timezones())
DONE = {
    "saved": "Saved. Emails use the new settings from the next sending pass on.",
    "unchanged": "Nothing was changed: every value was already as shown.",
    "reset": "That setting uses the configuration file's value again.",
}


async def settings_page(
    request: Request,
    *,
    typed: dict[str, str] | None = None,
    problems: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    app: App = request.app.state.app
    views = await run_in_threadpool(settings_view, app)
    values = {view.spec.key: shown(view.value) for view in views}
    values.update(typed or {})
    done = request.query_params.get("done", "")
    return pages_of(request).render(
        request,
        "settings.html",
        status=status,
        title="Settings",
        views={view.spec.key: view for view in views},
        values=values,
        problems=problems or {},
        shown=shown,
        zones=ZONES,
        consent_version=app.config.consent.version,
        flash=("Nothing was saved: fix what is marked below." if problems else DONE.get(done)),
        flash_kind="warning" if problems else "ok",
    )


async def settings_save(request: Request) -> Response:
    app: App = request.app.state.app
    form = await read_form(request)
    now: datetime = request.app.state.clock()
    actor = request.state.owner.actor(client_ip(request))
    reset = str(form.get("reset") or "")
    if reset:
        try:
            await run_in_threadpool(reset_setting, app, reset, actor, now)
        except InputError:
            return await settings_page(request, problems={"": "That setting cannot be reset."}, status=400)
        return RedirectResponse(BASE + "?done=reset", status_code=303)
    submitted = {str(key): str(value) for key, value in form.items() if isinstance(value, str)}
    try:
        changed = await run_in_threadpool(save_settings, app, submitted, actor, now)
    except SettingsRefused as exc:
        return await settings_page(request, typed=submitted, problems=exc.problems, status=400)
    return RedirectResponse(BASE + ("?done=saved" if changed else "?done=unchanged"), status_code=303)
