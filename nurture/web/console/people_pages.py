"""/console/subscribers: find a person, see their record, tag, unsubscribe, export, forget.

The work is done by nurture.audience (the same functions as the CLI); every action
is written to the audit log naming the subscriber by id only.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from nurture.app import App
from nurture.audience import people
from nurture.audience.search import all_tags, email_of, search
from nurture.audience.signup import unsubscribe
from nurture.errors import NotFound, NurtureError
from nurture.owners.audit import record_now
from nurture.store.models import SUBSCRIBER_STATUSES
from nurture.web.client import client_ip
from nurture.web.console.access import read_form
from nurture.web.console.render import pages_of
from nurture.web.console.words import in_her_words

BASE = "/console/subscribers"
DONE = {
    "tagged": "Tag added.",
    "tagged-stopped": "Tag added. The series that stop on this tag have ended for this person.",
    "untagged": "Tag removed.",
    "unsubscribed": "Unsubscribed: this person gets no more emails.",
    "already-unsubscribed": "This person was already unsubscribed; nothing changed.",
    "added-added": "Added: this person is subscribed, with the evidence of their consent below.",
    "added-confirmed": "This person had signed up without confirming: they are subscribed now, "
    "with the evidence of their consent below.",
    "added-already": "This person was already subscribed: nothing changed.",
}


def _actor(request: Request) -> Any:
    return request.state.owner.actor(client_ip(request))


async def subscribers_page(request: Request) -> Response:
    app: App = request.app.state.app
    params = request.query_params
    q, status, tag = params.get("q", "")[:200], params.get("status", ""), params.get("tag", "")[:64]
    problem = None
    try:
        found = await run_in_threadpool(lambda: search(app, q, status=status, tag=tag))
    except NurtureError as exc:
        found, problem = [], in_her_words(exc)
    tags = await run_in_threadpool(all_tags, app)
    if q or status or tag:
        # Who looked for whom is logged, but not what was typed: a name or an address must not
        # outlive the person's erasure in a log that cannot be changed.
        await run_in_threadpool(
            record_now,
            app,
            _actor(request),
            "searched subscribers",
            request.app.state.clock(),
            _search_words(q, status, tag, len(found)),
        )
    return pages_of(request).render(
        request,
        "subscribers.html",
        title="Subscribers",
        found=found,
        q=q,
        status_filter=status,
        tag=tag,
        statuses=SUBSCRIBER_STATUSES,
        tags=tags,
        problem=problem,
        searched=bool(q or status or tag),
        flash="Erased: nothing about that person is left except a keyed hash that keeps them "
        "from being added again."
        if params.get("forgotten")
        else None,
    )


def _search_words(q: str, status: str, tag: str, found: int) -> str:
    by = [
        *(["by address or name"] if q.strip() else []),
        *([f"status {status}"] if status in SUBSCRIBER_STATUSES else []),
        *(["by tag"] if tag else []),
    ]
    return f"{', '.join(by) or 'everyone'}: {found} found"


def _tag_in_audit(app: App, name: str) -> str:
    """A tag as the audit log may name it: a tag the series stop on is the practice's own word
    (like "booked"); any other was typed for one person and could say something about them,
    and the audit log outlives their erasure, so it is not written."""
    tag = name.strip().lower()
    series_tags = {word for campaign in app.campaigns.values() for word in campaign.stop_on_tags}
    return tag if tag in series_tags else "a tag of the owner's own"


async def _person(request: Request) -> tuple[App, int, str]:
    app: App = request.app.state.app
    subscriber_id = int(request.path_params["subscriber_id"])
    try:
        email = await run_in_threadpool(email_of, app, subscriber_id)
    except NotFound:
        raise _Gone() from None
    return app, subscriber_id, email


class _Gone(Exception):
    pass


def _gone(request: Request) -> Response:
    return pages_of(request).render(
        request,
        "message.html",
        status=404,
        title="Not here",
        paragraphs=["This person is not in the list (perhaps they were forgotten)."],
        back=BASE,
    )


async def person_page(request: Request, flash: str | None = None, status: int = 200) -> Response:
    try:
        app, subscriber_id, email = await _person(request)
    except _Gone:
        return _gone(request)
    record = await run_in_threadpool(people.export, app, email)
    if request.method == "GET":
        # Looking at someone's record is access to health-adjacent data: it is logged too.
        await run_in_threadpool(
            record_now,
            app,
            _actor(request),
            "viewed a subscriber",
            request.app.state.clock(),
            f"subscriber {subscriber_id}",
        )
    flash = flash or DONE.get(request.query_params.get("done", ""))
    return pages_of(request).render(
        request,
        "person.html",
        status=status,
        title=f"Subscriber {subscriber_id}",
        subscriber_id=subscriber_id,
        record=record,
        flash=flash,
        when=_parse_iso,
        now=request.app.state.clock(),
    )


def _parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _back(subscriber_id: int, message: str) -> Response:
    # After a POST, a GET: reloading the page does not repeat the action.
    return RedirectResponse(f"{BASE}/{subscriber_id}?done={message}", status_code=303)


async def person_action(request: Request) -> Response:
    try:
        app, subscriber_id, email = await _person(request)
    except _Gone:
        return _gone(request)
    action = request.path_params["action"]
    form = await read_form(request)
    now: datetime = request.app.state.clock()
    actor = _actor(request)
    try:
        if action == "tag":
            name = str(form.get("tag") or "")
            stopped = await run_in_threadpool(people.tag, app, email, name, now)
            await run_in_threadpool(
                record_now,
                app,
                actor,
                "tagged a subscriber",
                now,
                f"subscriber {subscriber_id}: {_tag_in_audit(app, name)}",
            )
            return _back(subscriber_id, "tagged" + ("-stopped" if stopped else ""))
        if action == "untag":
            name = str(form.get("tag") or "")
            await run_in_threadpool(people.untag, app, email, name)
            await run_in_threadpool(
                record_now,
                app,
                actor,
                "untagged a subscriber",
                now,
                f"subscriber {subscriber_id}: {_tag_in_audit(app, name)}",
            )
            return _back(subscriber_id, "untagged")
        if action == "unsubscribe":
            changed = await run_in_threadpool(
                lambda: unsubscribe(
                    app, subscriber_id, now, source="owner console", reason="unsubscribed by the owner"
                )
            )
            await run_in_threadpool(
                record_now, app, actor, "unsubscribed a subscriber", now, f"subscriber {subscriber_id}"
            )
            return _back(subscriber_id, "unsubscribed" if changed else "already-unsubscribed")
        if action == "export":
            data = await run_in_threadpool(people.export, app, email)
            await run_in_threadpool(
                record_now, app, actor, "exported a subscriber's data", now, f"subscriber {subscriber_id}"
            )
            return Response(
                json.dumps(data, indent=2, ensure_ascii=False) + "\n",
                media_type="application/json",
                headers={"Content-Disposition": f'attachment; filename="subscriber-{subscriber_id}.json"'},
            )
        if action == "forget":
            if str(form.get("confirm") or "").strip().casefold() != email.casefold():
                return await person_page(
                    request,
                    flash="Nothing was erased: type the person's email address exactly to confirm.",
                    status=400,
                )
            await run_in_threadpool(people.forget, app, email, now)
            await run_in_threadpool(
                record_now, app, actor, "forgot a subscriber", now, f"subscriber {subscriber_id}"
            )
            return RedirectResponse(f"{BASE}?forgotten=1", status_code=303)
    except NurtureError as exc:
        return await person_page(request, flash=f"Nothing changed: {in_her_words(exc)}.", status=400)
    return _gone(request)
