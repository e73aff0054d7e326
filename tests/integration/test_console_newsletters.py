"""Newsletters in the console: a refused action changes nothing, two schedules at once, findings
that name the email being edited, honest confirmations, no test copy with errors, drafts with
their age and a way to discard them, reopening, moving, and the results page by zone.
Through HTTP against a real server."""

from __future__ import annotations

import html
import re
import sys
import threading
from datetime import timedelta

from sqlalchemy import select

from nurture.provider_events import WebhookReport, store_events
from nurture.providers.base import NormalizedEvent
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import reading, transaction
from tests.support.console import console, csrf
from tests.support.newsletters import add_people

A = "---\nsubject: Winter note\npreheader: A few thoughts.\n---\nHello from the practice.\n"
B = "---\nsubject: Winter note, again\npreheader: Other thoughts.\n---\nA different hello.\n"


def _form(client, site, name, source, *, days=3, time="10:00", mode="practice"):
    page = client.get("/console/newsletters").text
    return {
        "csrf_token": csrf(page),
        "name": name,
        "source": source,
        "date": (site.clock.now + timedelta(days=days)).strftime("%Y-%m-%d"),
        "time": time,
        "mode": mode,
    }


def _letters(app):
    with reading(app.engine) as session:
        return [(row.id, row.status, row.subject) for row in session.scalars(select(m.Newsletter))]


def _tree(folder):
    """Every file under `folder` with its text: what is on disk."""
    return {
        str(path.relative_to(folder)): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _schedule(client, site, name, source, **options):
    form = {**_form(client, site, name, source, **options), "do": "schedule"}
    answer = client.post("/console/newsletters/compose", data=form)
    assert answer.status_code == 303, answer.text
    with reading(site.app.engine) as session:
        return session.scalar(select(m.Newsletter.id).order_by(m.Newsletter.id.desc()).limit(1))


# ---------------------------------------------------------------- defect 2: a refusal changes nothing


def test_a_refused_schedule_leaves_the_newsletter_file_and_the_store_as_they_were(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        first = _schedule(client, site, "winter", A)
        folder = site.app.config.campaigns_dir / "newsletters"
        before, rows = _tree(folder), _letters(site.app)
        # Another text under the same name, at a time that has passed: refused.
        form = _form(client, site, "winter", B, days=-1)
        refused = client.post("/console/newsletters/compose", data={**form, "do": "schedule"})
        assert refused.status_code == 400
        assert _tree(folder) == before  # winter.md still holds what newsletter 1 approved
        assert (folder / "winter.md").read_text() == A
        assert _letters(site.app) == rows
        # The same name at a good time is refused too: the file belongs to newsletter 1.
        taken = client.post(
            "/console/newsletters/compose", data={**_form(client, site, "winter", B), "do": "schedule"}
        )
        assert taken.status_code == 400 and f"already used by newsletter {first}" in taken.text
        assert _tree(folder) == before and _letters(site.app) == rows


# ---------------------------------------------------------------- defect 4: two schedules at once


def test_two_schedule_submissions_at_once_one_wins_and_the_other_is_told_why(tmp_path, monkeypatch):
    """The first submission is held inside its check until the second has scheduled the same
    newsletter; then it goes on. Exactly one newsletter is stored; the other answer says why."""
    with console(tmp_path, https=True) as site:
        client, other = site.login(), site.login()
        form = {**_form(client, site, "double", A), "do": "schedule"}
        second_form = {**form, "csrf_token": csrf(other.get("/console/newsletters").text)}
        held, go_on = threading.Event(), threading.Event()
        first_call = threading.Lock()

        import nurture.content.checks as checks

        original = checks.check_email

        def held_once(*args, **kwargs):
            if first_call.acquire(blocking=False):  # only the first submission's first check waits
                held.set()
                assert go_on.wait(20), "the second submission did not finish"
            return original(*args, **kwargs)

        for module in list(sys.modules.values()):
            if (
                getattr(module, "__name__", "").startswith("nurture")
                and getattr(module, "check_email", None) is original
            ):
                monkeypatch.setattr(module, "check_email", held_once)
        answers = {}
        first = threading.Thread(
            target=lambda: answers.update(first=client.post("/console/newsletters/compose", data=form))
        )
        first.start()
        assert held.wait(20)
        answers["second"] = other.post("/console/newsletters/compose", data=second_form)
        go_on.set()
        first.join(30)
        statuses = sorted(answer.status_code for answer in answers.values())
        assert statuses == [303, 400], {name: answer.status_code for name, answer in answers.items()}
        loser = next(answer for answer in answers.values() if answer.status_code == 400)
        assert "already used by newsletter" in loser.text or "has exactly this text" in loser.text
        assert len(_letters(site.app)) == 1
        assert (site.app.config.campaigns_dir / "newsletters" / "double.md").read_text() == A


# ---------------------------------------------------------------- defect 8: findings name her email


def test_check_findings_name_the_newsletter_being_edited_not_its_draft(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        broken = "subject: no front matter lines\nHello.\n"
        answer = client.post(
            "/console/newsletters/compose", data={**_form(client, site, "spring", broken), "do": "preview"}
        )
        findings = answer.text[answer.text.index('<ul class="findings">') :]
        findings = findings[: findings.index("</ul>")]
        assert "spring.md, line 1" in findings
        assert "drafts" not in findings and str(tmp_path) not in findings


# ---------------------------------------------------------------- defect 9: honest confirmations


def test_confirmations_say_what_happened_and_no_more(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        # A test copy through the outbox is a file on the server, not an email in her inbox.
        tested = client.post(
            "/console/newsletters/compose", data={**_form(client, site, "note", A), "do": "test"}
        )
        assert "Test copy made" in tested.text and "sent to" not in tested.text
        # A confirmation is read from the store, never from the address bar alone.
        assert "Scheduled." not in client.get("/console/newsletters", params={"done": "scheduled"}).text
        newsletter_id = _schedule(client, site, "note", A)
        page = client.get(f"/console/newsletters/{newsletter_id}", params={"done": "scheduled"}).text
        assert "Scheduled: it goes out on" in page
        # Stopping one that is already going out says who got it and what may still arrive.
        add_people(site.app, "America/New_York", 2, site.clock.now, prefix="reader")
        site.clock.advance(days=4)  # 10:00 in New York, past 10:00 in the practice's Los Angeles
        send_due(site.app, site.clock.now, limit=1)
        with reading(site.app.engine) as session:
            assert session.get(m.Newsletter, newsletter_id).status == "sending"
        client = site.login()  # four days on: a new session
        page = client.get(f"/console/newsletters/{newsletter_id}").text
        stop = client.post(f"/console/newsletters/{newsletter_id}/cancel", data={"csrf_token": csrf(page)})
        stopped = client.get(stop.headers["location"]).text
        assert "Stopped: nobody else will get it. 1 person got it before" in stopped
        assert "Cancelled: it will not go out" not in stopped


# ---------------------------------------------------------------- defect 10: no test copy with errors


def test_a_test_copy_with_check_errors_is_refused_and_the_finding_shown(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        bad = (
            "---\nsubject: Click\npreheader: A link.\ncta: Go\ncta_target: url\n"
            "cta_url: javascript:alert(1)\n---\nHello.\n"
        )
        answer = client.post(
            "/console/newsletters/compose", data={**_form(client, site, "bad", bad), "do": "test"}
        )
        assert answer.status_code == 400
        assert "No test copy was made" in answer.text and "javascript:" in answer.text
        outbox = site.app.config.outbox_dir
        assert not outbox.exists() or list(outbox.glob("*.eml")) == []


# ---------------------------------------------------------------- defect 17: drafts


def test_drafts_are_listed_with_their_age_and_can_be_discarded(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        client.post("/console/newsletters/compose", data={**_form(client, site, "idea", A), "do": "preview"})
        draft = site.app.config.campaigns_dir / "newsletters" / "drafts" / "idea.md"
        assert draft.exists()
        page = client.get("/console/newsletters").text
        assert "Winter note" in page and "just now" in page
        discarded = client.post(
            "/console/newsletters/drafts/discard", data={"csrf_token": csrf(page), "name": "idea"}
        )
        assert discarded.status_code == 303 and not draft.exists()
        assert "No drafts" in client.get(discarded.headers["location"]).text
        again = client.post(
            "/console/newsletters/drafts/discard", data={"csrf_token": csrf(page), "name": "idea"}
        )
        assert again.status_code == 400 and "not there any more" in again.text


# ---------------------------------------------------------------- reopen, move, cancel


def test_reopen_a_scheduled_newsletter_edit_it_and_schedule_it_in_its_place(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        first = _schedule(client, site, "winter", A)
        page = client.get(f"/console/newsletters/{first}").text
        opened = client.post(f"/console/newsletters/{first}/edit", data={"csrf_token": csrf(page)})
        assert opened.status_code == 303
        draft_page = client.get(opened.headers["location"]).text
        assert f"This is an edit of newsletter {first}" in draft_page and "Winter note" in draft_page
        assert _letters(site.app) == [(first, "scheduled", "Winter note")]  # still going out as it was
        edited = A.replace("Hello from the practice.", "Hello again from the practice.")
        second = _schedule(client, site, "winter", edited)
        assert _letters(site.app) == [
            (first, "cancelled", "Winter note"),
            (second, "scheduled", "Winter note"),
        ]
        assert (site.app.config.campaigns_dir / "newsletters" / "winter.md").read_text() == edited
        assert not (site.app.config.campaigns_dir / "newsletters" / "drafts" / "winter.md").exists()


def test_move_a_scheduled_newsletter_and_a_time_gone_by_is_refused_in_her_words(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        newsletter_id = _schedule(client, site, "winter", A)
        url = f"/console/newsletters/{newsletter_id}"
        later = (site.clock.now + timedelta(days=9)).strftime("%Y-%m-%d")
        moved = client.post(
            url + "/reschedule",
            data={
                "csrf_token": csrf(client.get(url).text),
                "date": later,
                "time": "08:30",
                "mode": "subscriber",
            },
        )
        assert moved.status_code == 303
        assert f"Moved: it goes out on {later} at 08:30 in each reader's own time" in html.unescape(
            client.get(moved.headers["location"]).text
        )
        with reading(site.app.engine) as session:
            row = session.get(m.Newsletter, newsletter_id)
            assert (row.send_at_local, row.timezone_mode) == (f"{later}T08:30:00", "subscriber")
        gone = (site.clock.now - timedelta(days=1)).strftime("%Y-%m-%d")
        refused = client.post(
            url + "/reschedule",
            data={
                "csrf_token": csrf(client.get(url).text),
                "date": gone,
                "time": "08:30",
                "mode": "practice",
            },
        )
        assert refused.status_code == 400
        assert "that time has already passed in the practice's time zone" in html.unescape(refused.text)
        assert "--at" not in refused.text and "nurture" not in refused.text.lower().replace(
            "nurture_console", ""
        )
        odd = client.post(
            url + "/reschedule",
            data={
                "csrf_token": csrf(client.get(url).text),
                "date": later,
                "time": "25:61",
                "mode": "practice",
            },
        )
        assert odd.status_code == 400 and "the time is not one the clock has" in odd.text
        far = client.post(
            url + "/reschedule",
            data={
                "csrf_token": csrf(client.get(url).text),
                "date": "9999-12-31",
                "time": "08:30",
                "mode": "practice",
            },
        )
        assert far.status_code == 400 and "more than two years away" in far.text


# ---------------------------------------------------------------- results


def test_a_newsletters_results_page_counts_by_the_readers_time_zones(tmp_path):
    with console(tmp_path, https=True, **{"delivery.tracking": "per_person"}) as site:
        client = site.login()
        add_people(site.app, "America/New_York", 3, site.clock.now, prefix="east")
        add_people(site.app, "Europe/London", 2, site.clock.now, prefix="uk")
        newsletter_id = _schedule(client, site, "winter", A, mode="practice", days=1, time="09:30")
        assert "Nothing has gone out yet" in client.get(f"/console/newsletters/{newsletter_id}").text
        site.clock.advance(days=2)
        send_due(site.app, site.clock.now)
        client = site.login()  # two days on: a new session
        with reading(site.app.engine) as session:
            sent = {
                row.id: (row.subscriber_id, row.stream, row.message_key)
                for row in session.scalars(
                    select(m.Delivery).where(m.Delivery.newsletter_id == newsletter_id)
                )
            }
            emails = {row.id: row.email for row in session.scalars(select(m.Subscriber))}
        assert len(sent) == 5
        events = []
        for number, (delivery_id, (subscriber_id, stream, key)) in enumerate(sorted(sent.items())):
            kinds = ["delivered"] if number != 4 else ["bounced_hard"]
            if number == 0:
                kinds += ["clicked", "clicked"]
            for kind in kinds:
                events.append(
                    NormalizedEvent(
                        f"evt-{delivery_id}-{kind}-{len(events)}",
                        m.EventKind(kind),
                        kind,
                        key,  # the message key the provider echoes
                        stream,
                        1,
                        site.clock.now,
                        None,
                        m.ConsentKind.BOUNCE if kind == "bounced_hard" else None,
                        email=emails[subscriber_id],
                    )
                )
        store_events(site.app, WebhookReport("test", received=len(events)), events, site.clock.now)
        page = client.get(f"/console/newsletters/{newsletter_id}").text
        results = page[page.index("<h2>Results</h2>") :]
        assert '<h3>Sent</h3><p class="big">5</p>' in results
        assert '<h3>Delivered</h3><p class="big">4</p>' in results
        assert '<h3>Bounced</h3><p class="big">1</p>' in results
        assert '<h3>Clicks</h3><p class="big">1</p>' in results  # unique per reader
        rows = results[results.index("<tbody>") : results.index("</tbody>")]
        assert rows.index("America/New_York") < rows.index("Europe/London")  # the larger group first
        cells = re.sub(r' data-label="[^"]*"', "", rows)
        assert '<th scope="row">America/New_York</th><td class="num">3</td>' in cells
        assert (
            '<th scope="row">Europe/London</th><td class="num">2</td>'
            '<td class="num">1</td><td class="num">1</td>' in cells
        )
        with transaction(site.app.engine) as session:
            assert (
                session.scalar(select(m.Subscriber.status).where(m.Subscriber.email == "uk1@example.com"))
                == "bounced"
            )
