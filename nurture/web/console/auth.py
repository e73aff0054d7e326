"""Signing in and out of the console."""

from __future__ import annotations

from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.owners.accounts import any_owner_has_totp
from nurture.owners.sessions import log_in, log_out
from nurture.web.client import client_ip, user_agent
from nurture.web.console.access import (
    LOGIN,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    clear_cookie,
    new_token,
    read_form,
    set_cookie,
)
from nurture.web.console.paths import PREFIX
from nurture.web.console.render import pages_of

# The same words for a wrong address, a wrong password and a wrong code: none says which.
NO_MATCH = "That did not work: the address, the password or the code is not right. Check them and try again."
THROTTLED = (
    "Too many attempts. For safety, signing in is paused for now; please try again in 15 minutes. "
    "If you have a recovery code, it works in the code field meanwhile."
)


SIGNED_OUT = {
    "signed-out": "You are signed out.",
    "joined": "Your owner account is ready: sign in with your address and the password you chose.",
    "removed": "Your owner account has been removed, and you are signed out.",
}


async def _login_form(
    request: Request,
    *,
    problem: str | None = None,
    email: str = "",
    status: int = 200,
    flash: str | None = None,
) -> Response:
    app: App = request.app.state.app
    token = new_token()
    ask_code = app.config.console.require_totp or await run_in_threadpool(any_owner_has_totp, app)
    response = pages_of(request).render(
        request,
        "login.html",
        status=status,
        title="Sign in",
        problem=problem,
        email=email,
        ask_code=ask_code,
        login_csrf=token,
        flash=flash,
    )
    set_cookie(response, app, LOGIN_CSRF_COOKIE, token)
    return response


async def login_page(request: Request) -> Response:
    if request.method != "POST":
        if request.state.owner is not None:
            return RedirectResponse(PREFIX + "/", status_code=303)
        flash = SIGNED_OUT.get(next(iter(request.query_params), ""))
        return await _login_form(request, flash=flash)
    app: App = request.app.state.app
    form = await read_form(request)
    email = str(form.get("email") or "")[:320]
    password = str(form.get("password") or "")
    code = str(form.get("code") or "")[:20]
    now: datetime = request.app.state.clock()
    result = await run_in_threadpool(
        log_in,
        app,
        email,
        password,
        code,
        ip=client_ip(request) or "unknown",
        now=now,
        old_session_id=request.cookies.get(SESSION_COOKIE),
        user_agent=user_agent(request),
    )
    if result.throttled:
        return await _login_form(request, problem=THROTTLED, email=email, status=429)
    if result.session_id is None:
        return await _login_form(request, problem=NO_MATCH, email=email, status=400)
    target = PREFIX + "/"
    if result.used_recovery_code:
        target = PREFIX + "/account?done=recovery-used"
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, app, SESSION_COOKIE, result.session_id)
    clear_cookie(response, app, LOGIN_CSRF_COOKIE)
    return response


async def logout_page(request: Request) -> Response:
    app: App = request.app.state.app
    session_id = request.state.session_id
    if session_id:
        await run_in_threadpool(
            log_out, app, session_id, ip=client_ip(request), now=request.app.state.clock()
        )
    response = RedirectResponse(LOGIN + "?signed-out=1", status_code=303)
    clear_cookie(response, app, SESSION_COOKIE)
    return response
