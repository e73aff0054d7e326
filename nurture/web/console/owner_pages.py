"""/console/owners: who may sign in, inviting another owner (a one-time link by email that
expires), cancelling an invitation, removing an owner (never the last one); and
/console/join/<token>, where the invited person chooses a password (no session yet:
its form carries the double-submit token, like the sign-in form)."""

from __future__ import annotations

from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.errors import NurtureError
from nurture.owners.accounts import list_owners, remove_owner_by_id
from nurture.owners.audit import Actor, record_now
from nurture.owners.invites import (
    INVITE_FOR,
    InviteUnusable,
    accept_invitation,
    cancel_invitation,
    invite_owner,
    open_invitations,
    read_invitation,
)
from nurture.owners.sessions import OwnerSessionInfo
from nurture.web.client import client_ip
from nurture.web.console.access import (
    LOGIN,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    clear_cookie,
    new_token,
    read_form,
    set_cookie,
)
from nurture.web.console.render import pages_of

BASE = "/console/owners"
DONE = {
    "invited": "Invitation sent. The link in it works once, for {days} days.",
    "cancelled": "Invitation cancelled: its link no longer works.",
    "removed": "Owner removed: that account can no longer sign in, and its sessions have ended.",
}


def _owner(request: Request) -> OwnerSessionInfo:
    owner: OwnerSessionInfo = request.state.owner
    return owner


async def owners_page(
    request: Request, *, problem: str | None = None, invite_email: str = "", status: int = 200
) -> Response:
    app: App = request.app.state.app
    now: datetime = request.app.state.clock()
    owners = await run_in_threadpool(list_owners, app)
    invitations = await run_in_threadpool(open_invitations, app, now)
    done = DONE.get(request.query_params.get("done", ""))
    return pages_of(request).render(
        request,
        "owners.html",
        status=status,
        title="Owners",
        owners=owners,
        invitations=invitations,
        me=_owner(request).owner_id,
        problem=problem,
        invite_email=invite_email,
        days=INVITE_FOR.days,
        flash=done.format(days=INVITE_FOR.days) if done and problem is None else None,
    )


async def invite_page(request: Request) -> Response:
    app: App = request.app.state.app
    owner = _owner(request)
    form = await read_form(request)
    email = str(form.get("email") or "")[:320].strip()
    now: datetime = request.app.state.clock()
    try:
        invitation = await run_in_threadpool(invite_owner, app, owner.email, email, now)
    except NurtureError as exc:
        return await owners_page(
            request, problem=f"No invitation was sent: {exc}.", invite_email=email, status=400
        )
    await run_in_threadpool(
        record_now,
        app,
        owner.actor(client_ip(request)),
        "invited an owner",
        now,
        f"invitation {invitation.id} to {invitation.email}",
    )
    return RedirectResponse(BASE + "?done=invited", status_code=303)


async def cancel_invite_page(request: Request) -> Response:
    app: App = request.app.state.app
    invite_id = int(request.path_params["invite_id"])
    now: datetime = request.app.state.clock()
    try:
        email = await run_in_threadpool(cancel_invitation, app, invite_id, now)
    except NurtureError as exc:
        return await owners_page(request, problem=f"Nothing changed: {exc}.", status=400)
    await run_in_threadpool(
        record_now,
        app,
        _owner(request).actor(client_ip(request)),
        "cancelled an invitation",
        now,
        f"invitation {invite_id} to {email}",
    )
    return RedirectResponse(BASE + "?done=cancelled", status_code=303)


async def remove_owner_page(request: Request) -> Response:
    app: App = request.app.state.app
    owner = _owner(request)
    owner_id = int(request.path_params["owner_id"])
    now: datetime = request.app.state.clock()
    try:
        email = await run_in_threadpool(remove_owner_by_id, app, owner_id)
    except NurtureError as exc:
        return await owners_page(request, problem=f"Nothing changed: {exc}.", status=400)
    await run_in_threadpool(
        record_now,
        app,
        owner.actor(client_ip(request)),
        "removed an owner",
        now,
        f"owner {owner_id} ({email})",
    )
    if owner_id == owner.owner_id:  # she removed herself: her session went with the account
        response = RedirectResponse(LOGIN + "?removed=1", status_code=303)
        clear_cookie(response, app, SESSION_COOKIE)
        return response
    return RedirectResponse(BASE + "?done=removed", status_code=303)


# ---------------------------------------------------------------- accepting an invitation


async def _join_form(
    request: Request, token: str, email: str, *, problem: str | None = None, status: int = 200
) -> Response:
    app: App = request.app.state.app
    csrf = new_token()
    response = pages_of(request).render(
        request,
        "join.html",
        status=status,
        title="Accept the invitation",
        email=email,
        token=token,
        problem=problem,
        login_csrf=csrf,
    )
    set_cookie(response, app, LOGIN_CSRF_COOKIE, csrf)
    return response


def _unusable(request: Request, exc: InviteUnusable) -> Response:
    return pages_of(request).render(
        request,
        "message.html",
        status=410,
        title="This invitation cannot be used",
        paragraphs=[str(exc)[:1].upper() + str(exc)[1:]],
        back=None,
    )


async def join_page(request: Request) -> Response:
    app: App = request.app.state.app
    token = request.path_params["token"]
    now: datetime = request.app.state.clock()
    try:
        invitation = await run_in_threadpool(read_invitation, app, token, now)
    except InviteUnusable as exc:
        return _unusable(request, exc)
    if request.method != "POST":
        return await _join_form(request, token, invitation.email)
    form = await read_form(request)
    password, again = str(form.get("password") or ""), str(form.get("password_again") or "")
    if password != again:
        return await _join_form(
            request,
            token,
            invitation.email,
            problem="The two passwords are not the same: type it twice, the same way.",
            status=400,
        )
    try:
        info = await run_in_threadpool(accept_invitation, app, token, password, now)
    except InviteUnusable as exc:
        return _unusable(request, exc)
    except NurtureError as exc:
        message = str(exc)
        return await _join_form(
            request, token, invitation.email, problem=message[:1].upper() + message[1:] + ".", status=400
        )
    await run_in_threadpool(
        record_now,
        app,
        Actor(info.email, client_ip(request)),
        "accepted an invitation",
        now,
        f"invitation {invitation.id} from {invitation.invited_by}",
    )
    response = RedirectResponse(LOGIN + "?joined=1", status_code=303)
    clear_cookie(response, app, LOGIN_CSRF_COOKIE)
    return response
