"""/console/account: her own account. The code app (set up with a confirming code, replace,
remove), recovery codes (shown once), her password (changing it ends her other sessions),
and her sessions (see them, end them).

Every change that could lock her out or let someone else in asks for her password again
(counted like a sign-in attempt), and is written to the audit log.
"""

from __future__ import annotations

from datetime import datetime

import segno
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.errors import NurtureError
from nurture.owners.audit import record_now
from nurture.owners.codeapp import (
    PENDING_FOR,
    SetupRefused,
    confirm_setup,
    pending_setup,
    recovery_codes_left,
    remove_code_app,
    replace_recovery_codes,
    start_setup,
)
from nurture.owners.sessions import (
    OwnerSessionInfo,
    change_password,
    check_password_again,
    end_sessions,
    list_sessions,
)
from nurture.store import models as m
from nurture.store.db import reading
from nurture.web.client import client_ip
from nurture.web.console.access import read_form
from nurture.web.console.agents import describe_agent
from nurture.web.console.render import pages_of

BASE = "/console/account"
DONE = {
    "password": "Password changed. Every other session of yours has ended; this one goes on.",
    "ended-one": "That session has ended: whoever used it must sign in again.",
    "ended-others": "Every other session of yours has ended; this one goes on.",
    "code-app-removed": "The code app is removed: signing in now asks for your password only.",
    "recovery-used": "You signed in with a recovery code, and it cannot be used again. "
    "If your phone is lost, set up the code app on a new one below (the lost one then stops working).",
}


def _owner(request: Request) -> OwnerSessionInfo:
    owner: OwnerSessionInfo = request.state.owner
    return owner


def _has_code_app(app: App, owner_id: int) -> bool:
    with reading(app.engine) as session:
        owner = session.get(m.Owner, owner_id)
        return owner is not None and owner.totp_sealed is not None


async def account_page(
    request: Request, *, problem: str | None = None, status: int = 200, focus: str | None = None
) -> Response:
    app: App = request.app.state.app
    owner = _owner(request)
    now: datetime = request.app.state.clock()
    sessions = await run_in_threadpool(list_sessions, app, owner.owner_id, request.state.session_id, now)
    has_code_app = await run_in_threadpool(_has_code_app, app, owner.owner_id)
    codes_left = await run_in_threadpool(recovery_codes_left, app, owner.owner_id) if has_code_app else 0
    pending = await run_in_threadpool(pending_setup, app, owner.owner_id, now)
    flash = DONE.get(request.query_params.get("done", "")) if problem is None else None
    return pages_of(request).render(
        request,
        "account.html",
        status=status,
        title="Your account",
        sessions=sessions,
        describe=describe_agent,
        has_code_app=has_code_app,
        codes_left=codes_left,
        pending=pending is not None,
        require_totp=app.config.console.require_totp,
        problem=problem,
        focus=focus,
        flash=flash,
    )


def _form_text(form: FormData, name: str, limit: int = 1024) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def change_password_page(request: Request) -> Response:
    app: App = request.app.state.app
    owner = _owner(request)
    form = await read_form(request)
    now: datetime = request.app.state.clock()
    new, again = _form_text(form, "new_password"), _form_text(form, "new_password_again")
    if new != again:
        return await account_page(
            request,
            problem="Nothing changed: the two new passwords are not the same. Type it twice, the same way.",
            status=400,
            focus="password",
        )
    try:
        await run_in_threadpool(
            change_password,
            app,
            owner.owner_id,
            request.state.session_id,
            _form_text(form, "current_password"),
            new,
            client_ip(request),
            now,
        )
    except NurtureError as exc:
        return await account_page(request, problem=f"Nothing changed: {exc}.", status=400, focus="password")
    await run_in_threadpool(record_now, app, owner.actor(client_ip(request)), "changed the password", now)
    return RedirectResponse(BASE + "?done=password", status_code=303)


async def end_sessions_page(request: Request) -> Response:
    app: App = request.app.state.app
    owner = _owner(request)
    form = await read_form(request)
    which = _form_text(form, "session", 64)
    handle = None if which == "others" else which
    ended = await run_in_threadpool(
        lambda: end_sessions(app, owner.owner_id, request.state.session_id, handle=handle)
    )
    now: datetime = request.app.state.clock()
    action = "ended a session" if handle else "ended the other sessions"
    await run_in_threadpool(record_now, app, owner.actor(client_ip(request)), action, now, f"{ended} ended")
    return RedirectResponse(BASE + ("?done=ended-one" if handle else "?done=ended-others"), status_code=303)


# ---------------------------------------------------------------- the code app


def qr_code(uri: str) -> Markup:
    """The otpauth:// link as an inline SVG QR code: drawn here, nothing fetched from anywhere."""
    svg = segno.make(uri, error="m").svg_inline(
        scale=5, border=4, dark="#000", light="#fff", svgclass="qr", omitsize=False
    )
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="QR code to scan with the code app" ', 1))


def _grouped(secret: str) -> str:
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


async def code_app_page(request: Request, *, problem: str | None = None, status: int = 200) -> Response:
    app: App = request.app.state.app
    owner = _owner(request)
    setup = await run_in_threadpool(pending_setup, app, owner.owner_id, request.app.state.clock())
    if setup is None:
        return RedirectResponse(BASE, status_code=303)
    return pages_of(request).render(
        request,
        "code_app.html",
        status=status,
        title="Set up the code app",
        qr=qr_code(setup.uri),
        secret=_grouped(setup.secret),
        minutes=int(PENDING_FOR.total_seconds() // 60),
        replacing=await run_in_threadpool(_has_code_app, app, owner.owner_id),
        problem=problem,
    )


async def code_app_start(request: Request) -> Response:
    app: App = request.app.state.app
    await run_in_threadpool(start_setup, app, _owner(request).owner_id, request.app.state.clock())
    return RedirectResponse(BASE + "/code-app", status_code=303)


def _codes_page(request: Request, codes: list[str], *, title: str, lead: str) -> Response:
    return pages_of(request).render(request, "recovery_codes.html", title=title, codes=codes, lead=lead)


async def code_app_confirm(request: Request) -> Response:
    app: App = request.app.state.app
    owner = _owner(request)
    form = await read_form(request)
    now: datetime = request.app.state.clock()
    try:
        codes = await run_in_threadpool(confirm_setup, app, owner.owner_id, _form_text(form, "code", 20), now)
    except SetupRefused as exc:
        still = await run_in_threadpool(pending_setup, app, owner.owner_id, now)
        if still is None:
            return await account_page(request, problem=f"The code app was not set up: {exc}.", status=400)
        return await code_app_page(request, problem=f"Not yet set up: {exc}.", status=400)
    await run_in_threadpool(record_now, app, owner.actor(client_ip(request)), "set up a code app", now)
    return _codes_page(
        request,
        codes,
        title="The code app is set up",
        lead="From now on, signing in asks for a code from the app. If the phone is ever lost, "
        "each of these recovery codes works once in place of a code:",
    )


async def _with_password(request: Request) -> str | None:
    """None when the password typed is hers; else what to tell her."""
    app: App = request.app.state.app
    form = await read_form(request)
    try:
        await run_in_threadpool(
            check_password_again,
            app,
            _owner(request).owner_id,
            _form_text(form, "password"),
            client_ip(request),
            request.app.state.clock(),
        )
    except NurtureError as exc:
        return str(exc)
    return None


async def code_app_remove(request: Request) -> Response:
    app: App = request.app.state.app
    owner = _owner(request)
    problem = await _with_password(request)
    if problem is None:
        try:
            await run_in_threadpool(remove_code_app, app, owner.owner_id)
        except NurtureError as exc:
            problem = str(exc)
    if problem is not None:
        return await account_page(
            request, problem=f"Nothing changed: {problem}.", status=400, focus="code-app"
        )
    now: datetime = request.app.state.clock()
    await run_in_threadpool(record_now, app, owner.actor(client_ip(request)), "removed the code app", now)
    return RedirectResponse(BASE + "?done=code-app-removed", status_code=303)


async def recovery_codes_page(request: Request) -> Response:
    app: App = request.app.state.app
    owner = _owner(request)
    now: datetime = request.app.state.clock()
    problem = await _with_password(request)
    codes: list[str] = []
    if problem is None:
        try:
            codes = await run_in_threadpool(replace_recovery_codes, app, owner.owner_id, now)
        except NurtureError as exc:
            problem = str(exc)
    if problem is not None:
        return await account_page(
            request, problem=f"Nothing changed: {problem}.", status=400, focus="recovery"
        )
    await run_in_threadpool(record_now, app, owner.actor(client_ip(request)), "made new recovery codes", now)
    return _codes_page(
        request,
        codes,
        title="New recovery codes",
        lead="Your earlier recovery codes no longer work. Each of these works once in place of a "
        "code from the app:",
    )
