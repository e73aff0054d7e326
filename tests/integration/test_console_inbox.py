"""The console's part of staying in the inbox, through HTTP with a signed-in owner: the Inbox
page (the doctor's findings), holds on Today and the button that lifts them, the Quiet readers
page, each reader's choices on their page and the counts per choice on Results."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from nurture.audience import preferences
from nurture.audience.repermission import daily_review
from nurture.deliverability.doctor import DoctorOptions
from nurture.sending import holds
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import reading, transaction
from tests.support.console import console, csrf
from tests.support.dns_standin import dns_standin
from tests.support.factories import active_subscribers
from tests.support.newsletters import add_people

ZONE = {"example.com": [("TXT", '"v=spf1 ~all"'), ("MX", "10 mx.example.com.")]}


def test_the_inbox_page_shows_each_finding_with_the_record_to_publish(tmp_path: Path) -> None:
    with dns_standin(ZONE) as dns:
        options = {"doctor": DoctorOptions(nameservers=(dns.address,), timeout=1)}
        with console(tmp_path, app_options=options) as site:
            page = site.login().get("/console/inbox")
    assert page.status_code == 200
    assert "Fix this" in page.text and "has no DMARC record" in page.text
    assert "_dmarc.example.com TXT &#34;v=DMARC1; p=none; rua=mailto:hello@example.com&#34;" in page.text
    assert "must be https" in page.text  # the test server is plain http
    assert ("_dmarc.example.com", "TXT") in dns.queries


def test_a_hold_shows_on_today_and_the_owner_lifts_it(tmp_path: Path) -> None:
    with console(tmp_path) as site:
        with transaction(site.app.engine) as session:
            hold_id = holds.place(
                session, m.HoldKind.ALL, "bounces: 6 of 100 emails sent in 7 days", site.clock.now
            )
        client = site.login()
        today = client.get("/console/")
        assert "All sending is held" in today.text and "bounces: 6 of 100" in today.text
        answer = client.post(f"/console/holds/{hold_id}/lift", data={"csrf_token": csrf(today.text)})
        assert answer.status_code == 303 and answer.headers["location"] == "/console/?done=lifted"
        assert "Hold lifted" in client.get(answer.headers["location"]).text
        assert holds.read_holds(site.app.engine) == []
        again = client.post(f"/console/holds/{hold_id}/lift", data={"csrf_token": csrf(today.text)})
        assert again.status_code == 400 and "not in place" in again.text
        with reading(site.app.engine) as session:
            entry = session.scalar(
                select(m.OwnerAuditEntry).where(m.OwnerAuditEntry.action == "lifted a sending hold")
            )
            assert entry is not None and entry.detail == f"hold {hold_id}: all sending"
            lifted = session.get(m.SendingHold, hold_id)
            assert lifted is not None and lifted.lifted_by == "anna@riverbend.example"


def test_quiet_readers_page_person_choices_and_results_counts(tmp_path: Path) -> None:
    # Off: the page still shows who is quiet (who would be asked), and the asks of the
    # re-permission tests are shown by the same overview (tests/integration/test_repermission.py).
    settings = {"sunset.quiet_for": "30d", "sunset.min_emails": 2}
    with console(tmp_path, **settings) as site:
        app, start = site.app, site.clock.now - timedelta(days=40)
        quiet, weekly = add_people(app, "America/New_York", 2, start, prefix="reader", enroll_them=True)
        moment = start
        while moment < site.clock.now - timedelta(days=1):
            send_due(app, moment, review=daily_review(app.config))
            moment += timedelta(hours=6)
        preferences.save(
            app,
            weekly,
            preferences.Choices(False, True, m.Frequency.WEEKLY, "Robin", None),
            site.clock.now - timedelta(hours=1),
        )
        client = site.login()
        page = client.get("/console/quiet")
        assert page.status_code == 200
        assert "Re-permission is off" in page.text
        assert "reader0@example.com" in page.text, "quiet for 30 days with 5 emails"
        assert "reader1@example.com" not in page.text, "a change of choices is a sign of life"
        assert "Nobody has been asked yet." in page.text
        person = client.get(f"/console/subscribers/{weekly}")
        assert "series off, newsletter on, at most one email a week" in person.text
        assert "series: off" in person.text and "preference center" in person.text
        results = client.get("/console/results")
        assert "Readers’ choices" in results.text
        assert '<th scope="row">Series turned off</th><td class="num">1</td>' in results.text
        assert '<th scope="row">At most one email a week</th><td class="num">1</td>' in results.text
        assert quiet


def test_paused_readers_count_as_subscribed_on_today(tmp_path: Path) -> None:
    with console(tmp_path) as site:
        first, _ = active_subscribers(site.app, 2, site.clock.now)
        preferences.pause(site.app, first, 30, site.clock.now)
        text = site.login().get("/console/").text
        assert '<p class="big">2</p>' in text and "1 of them paused for now (still subscribed)" in text
