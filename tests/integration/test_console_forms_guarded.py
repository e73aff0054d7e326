"""Every form of the console needs the session's CSRF token and the console's own Origin,
every page a session and a strict CSP: checked over the whole route list, so a page or form
added later is covered by itself. A refused POST changes nothing, in the store or on disk."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from starlette.routing import Mount

from nurture.store import models as m
from nurture.store.db import reading
from nurture.web.console.access import is_public
from nurture.web.site import create_app
from tests.support.console import console, csrf
from tests.support.factories import active_subscribers

SAMPLES = {
    "subscriber_id": "1",
    "newsletter_id": "1",
    "slug": "kap-intro",
    "step": "1",
    "action": "commit",
    "token": "an-upload",
    "owner_id": "1",
    "invite_id": "1",
    "hold_id": "1",
}
# Form fields enough for each form to act, were it let through.
FIELDS = {
    "tag": "booked",
    "name": "a-note",
    "source": "---\nsubject: Hi\npreheader: Hello.\n---\nHello.\n",
    "do": "schedule",
    "date": "2026-12-20",
    "time": "10:00",
    "mode": "practice",
    "subject": "Another email",
    "delay": "2",
    "title": "A series",
    "trigger": "manual",
    "sender.from_name": "Someone else",
    "email": "new@example.com",
    "consented_on": "2026-11-01",
    "wording": "Yes, email me about the practice.",
    "version": "2",
}


def _routes(app):
    site = create_app(app)
    (mount,) = [route for route in site.routes if isinstance(route, Mount) and route.path == "/console"]
    for route in mount.routes:
        path = "/console" + re.sub(r"\{(\w+)(:\w+)?\}", lambda found: SAMPLES[found.group(1)], route.path)
        for method in sorted(route.methods - {"HEAD"}):
            yield method, path


def _state(app, campaigns):
    with reading(app.engine) as session:
        counts = tuple(
            int(session.scalar(select(func.count()).select_from(table)))
            for table in (
                m.Subscriber,
                m.Newsletter,
                m.SeriesVersion,
                m.SavedSetting,
                m.OwnerAuditEntry,
                m.CampaignState,
                m.Owner,
                m.OwnerInvite,
                m.OwnerRecoveryCode,
            )
        )
    files = {
        str(path.relative_to(campaigns)): path.read_bytes() for path in campaigns.rglob("*") if path.is_file()
    }
    return counts, files


def test_every_console_form_refuses_a_post_without_the_token_or_from_another_site(tmp_path):
    with console(tmp_path, https=True) as site:
        active_subscribers(site.app, 1, site.clock.now)
        client = site.login()
        token = csrf(client.get("/console/").text)
        posts = [
            path for method, path in _routes(site.app) if method == "POST" and path not in ("/console/login",)
        ]
        assert len(posts) >= 20  # the enumeration found the forms
        before = _state(site.app, site.app.config.campaigns_dir)
        for path in posts:
            for data, headers in (
                (FIELDS, {}),
                ({**FIELDS, "csrf_token": "wrong"}, {}),
                ({**FIELDS, "csrf_token": token}, {"Origin": "https://evil.example"}),
            ):
                answer = client.post(path, data=data, headers=headers)
                assert answer.status_code == 403, (path, data.get("csrf_token"), headers, answer.status_code)
        assert _state(site.app, site.app.config.campaigns_dir) == before
        assert client.get("/console/").status_code == 200  # still signed in: the session was not the problem


def test_every_console_page_needs_a_session_and_has_a_strict_csp(tmp_path):
    with console(tmp_path, https=True) as site:
        active_subscribers(site.app, 1, site.clock.now)
        client = site.login()
        stranger = site.client()
        pages = [path for method, path in _routes(site.app) if method == "GET" and "{" not in path]
        assert len(pages) >= 15
        for path in pages:
            if is_public(path):  # the way in, its style sheet, invitation links
                continue
            assert stranger.get(path).headers.get("location") == "/console/login", path
            answer = client.get(path)
            if answer.status_code == 303:  # a step with nothing to show yet (setting up a code app)
                assert answer.headers["location"].startswith("/console/"), path
                assert answer.headers["location"] != "/console/login", path
                answer = client.get(answer.headers["location"])
            assert answer.status_code in (200, 404), (path, answer.status_code)
            csp = answer.headers["content-security-policy"]
            assert "unsafe-inline" not in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
            assert (
                answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"
            )
