"""Owners in the console: inviting one by email (a one-time link that expires), accepting,
listing, cancelling, removing (never the last owner). Against a real server; the
invitation goes out through the outbox transport, as any email does."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from nurture.content.checks import check_email
from nurture.content.prepared import Recipient
from nurture.owners.accounts import LastOwner, add_owner, list_owners, remove_owner_by_id
from nurture.owners.invites import INVITE_FOR, invite_body, join_url
from nurture.store import models as m
from nurture.store.db import reading
from tests.support.console import OWNER, PASSWORD, console, csrf, invitation_links
from tests.support.factories import at, make_app

GUEST = "sam@riverbend.example"
GUEST_PASSWORD = "sam's own long passphrase"
NOW = at("2026-12-01 15:00")


def _owners(app) -> list[str]:
    with reading(app.engine) as session:
        return list(session.scalars(select(m.Owner.email).order_by(m.Owner.id)))


def _invite(site, client, email: str = GUEST):
    token = csrf(client.get("/console/owners").text)
    return client.post("/console/owners/invite", data={"csrf_token": token, "email": email})


def _join(site, token: str, password: str = GUEST_PASSWORD, again: str | None = None):
    guest = site.client()
    page = guest.get(f"/console/join/{token}")
    if page.status_code != 200:
        return page
    return guest.post(
        f"/console/join/{token}",
        data={"csrf_token": csrf(page.text), "password": password, "password_again": again or password},
    )


def test_an_owner_invites_another_who_joins_with_a_one_time_link(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        answer = _invite(site, client)
        assert answer.status_code == 303
        page = client.get(answer.headers["location"]).text
        assert "Invitation sent" in page and GUEST in page  # listed as open
        (token,) = invitation_links(site.app)
        with reading(site.app.engine) as session:
            row = session.scalar(select(m.OwnerInvite))
        assert token not in row.token_hash and row.expires_at == site.clock.now + INVITE_FOR
        join = site.client().get(f"/console/join/{token}")
        assert join.status_code == 200 and GUEST in join.text and 'name="password_again"' in join.text
        mismatch = _join(site, token, again="not the same one")
        assert mismatch.status_code == 400 and "not the same" in mismatch.text
        short = _join(site, token, password="short")
        assert short.status_code == 400 and "too short" in short.text
        joined = _join(site, token)
        assert joined.status_code == 303 and joined.headers["location"] == "/console/login?joined=1"
        assert _owners(site.app) == [OWNER, GUEST]
        site.login(email=GUEST, password=GUEST_PASSWORD)
        # One use only.
        again = _join(site, token, password="yet another passphrase")
        assert again.status_code == 410 and "used already" in again.text
        assert _owners(site.app) == [OWNER, GUEST]
        with reading(site.app.engine) as session:
            actions = [row.action for row in session.scalars(select(m.OwnerAuditEntry))]
        assert "invited an owner" in actions and "accepted an invitation" in actions


def test_an_invitation_link_expires(tmp_path):
    with console(tmp_path, https=True) as site:
        _invite(site, site.login())
        (token,) = invitation_links(site.app)
        site.clock.advance(days=INVITE_FOR.days, seconds=1)
        expired = _join(site, token)
        assert expired.status_code == 410 and "expired" in expired.text
        assert _owners(site.app) == [OWNER]


def test_a_cancelled_or_superseded_invitation_no_longer_works(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        _invite(site, client)
        _invite(site, client)  # sent again: only the newest link works
        first, second = invitation_links(site.app)
        assert _join(site, first).status_code == 410
        with reading(site.app.engine) as session:
            open_id = session.scalar(
                select(m.OwnerInvite.id).where(m.OwnerInvite.expires_at > site.clock.now)
            )
        token = csrf(client.get("/console/owners").text)
        cancelled = client.post(f"/console/owners/invitations/{open_id}/cancel", data={"csrf_token": token})
        assert cancelled.status_code == 303
        assert "no longer works" in client.get(cancelled.headers["location"]).text
        assert _join(site, second).status_code == 410
        assert _owners(site.app) == [OWNER]


def test_made_up_or_cut_short_links_say_so(tmp_path):
    with console(tmp_path, https=True) as site:
        _invite(site, site.login())
        (token,) = invitation_links(site.app)
        for wrong in (token[:-3], "x" * 43, "a"):
            answer = site.client().get(f"/console/join/{wrong}")
            assert answer.status_code == 410 and "not valid" in answer.text


def test_the_join_form_needs_its_token(tmp_path):
    with console(tmp_path, https=True) as site:
        _invite(site, site.login())
        (token,) = invitation_links(site.app)
        guest = site.client()
        guest.get(f"/console/join/{token}")
        form = {"password": GUEST_PASSWORD, "password_again": GUEST_PASSWORD}
        assert guest.post(f"/console/join/{token}", data=form).status_code == 403
        assert guest.post(f"/console/join/{token}", data={**form, "csrf_token": "forged"}).status_code == 403
        assert _owners(site.app) == [OWNER]


def test_inviting_an_existing_owner_or_a_bad_address_sends_nothing(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        for email, words in (
            (OWNER, "already has an owner account"),
            ("not an address", "No invitation was sent"),
        ):
            answer = _invite(site, client, email)
            assert answer.status_code == 400 and words in answer.text
        assert invitation_links(site.app) == []
        with reading(site.app.engine) as session:
            assert session.scalars(select(m.OwnerInvite)).all() == []


def test_an_invitation_that_cannot_be_sent_leaves_nothing_behind(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        outbox = site.app.transport.directory  # the outbox transport, made now
        shutil.rmtree(outbox)
        outbox.write_text("a file where the outbox folder was")  # nothing can be written in it
        answer = _invite(site, client)
        assert answer.status_code == 400 and "could not be sent" in answer.text
        with reading(site.app.engine) as session:
            assert session.scalars(select(m.OwnerInvite)).all() == []


def test_the_last_owner_cannot_be_removed_and_another_can(tmp_path):
    with console(tmp_path) as site:
        client = site.login()
        token = csrf(client.get("/console/owners").text)
        with reading(site.app.engine) as session:
            me = session.scalar(select(m.Owner.id))
        alone = client.post(f"/console/owners/{me}/remove", data={"csrf_token": token})
        assert alone.status_code == 400 and "only owner account" in alone.text
        assert _owners(site.app) == [OWNER]
        other = add_owner(site.app, GUEST, GUEST_PASSWORD, site.clock.now)
        guest = site.login(email=GUEST, password=GUEST_PASSWORD)
        removed = client.post(f"/console/owners/{other.id}/remove", data={"csrf_token": token})
        assert removed.status_code == 303 and _owners(site.app) == [OWNER]
        assert guest.get("/console/").headers["location"] == "/console/login"  # her session ended too
        gone = client.post(f"/console/owners/{other.id}/remove", data={"csrf_token": token})
        assert gone.status_code == 400 and "not there any more" in gone.text


def test_an_owner_can_remove_herself_when_another_remains(tmp_path):
    with console(tmp_path) as site:
        add_owner(site.app, GUEST, GUEST_PASSWORD, site.clock.now)
        client = site.login()
        token = csrf(client.get("/console/owners").text)
        with reading(site.app.engine) as session:
            me = session.scalar(select(m.Owner.id).where(m.Owner.email == OWNER))
        answer = client.post(f"/console/owners/{me}/remove", data={"csrf_token": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/console/login?removed=1"
        assert _owners(site.app) == [GUEST]
        assert client.get("/console/").headers["location"] == "/console/login"


@pytest.mark.postgres
def test_two_owners_removing_each_other_at_once_leave_one(tmp_path, postgres_url):
    """The last-owner rule holds under concurrency: each removal locks every owner row first."""
    app = make_app(tmp_path, database_url=postgres_url)
    for round_ in range(5):
        first = add_owner(app, f"a{round_}@riverbend.example", PASSWORD, NOW)
        second = add_owner(app, f"b{round_}@riverbend.example", PASSWORD, NOW)
        for owner in list_owners(app):
            if owner.id not in (first.id, second.id):
                remove_owner_by_id(app, owner.id)
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(lambda owner_id: _removed(app, owner_id), [first.id, second.id]))
        assert sorted(outcomes) == [False, True]
        assert len(_owners(app)) == 1


def _removed(app, owner_id: int) -> bool:
    try:
        remove_owner_by_id(app, owner_id)
    except LastOwner:
        return False
    return True


def test_the_invitation_email_passes_the_checks_every_email_passes(tmp_path):
    app = make_app(tmp_path, **{"web.public_base_url": "https://mail.riverbend.example"})
    url = join_url(app, "t" * 43)
    body = invite_body(app, OWNER, url, NOW + INVITE_FOR)
    prepared = app.renderer.prepare_notice("owner-invite", "You are invited", "Choose a password", body)
    assert check_email(app.config, app.renderer, None, prepared) == []
    text = prepared.render(Recipient(GUEST, None)).text
    assert url in text and "works once" in text
