"""Adding people in the console: one by hand with the evidence of their consent, and a CSV
file streamed in, checked (the report before anything is kept), then imported or thrown
away, with its size limit, its progress page and its CSRF check. Against a real server."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from nurture.audience.people import forget
from nurture.audience.signup import unsubscribe_email
from nurture.store import models as m
from nurture.store.db import reading
from tests.support.console import console, csrf
from tests.support.factories import active_subscribers

HEADER = "email,first_name,timezone,consented_at,consent_source\n"


def _people(app):
    with reading(app.engine) as session:
        return int(session.scalar(select(func.count()).select_from(m.Subscriber)))


def _add(client, **fields):
    page = client.get("/console/subscribers/add").text
    form = {
        "csrf_token": csrf(page),
        "email": "sam@example.com",
        "first_name": "Sam",
        "timezone": "America/Chicago",
        "consented_on": "2026-11-20",
        "source": "paper sign-up sheet, autumn open day",
        "wording": "Yes, send me the practice's emails about KAP. I can leave at any time.",
    }
    form.update(fields)
    return client.post("/console/subscribers/add", data=form)


def test_add_one_person_with_the_evidence_of_their_consent(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        answer = _add(client)
        assert answer.status_code == 303
        page = client.get(answer.headers["location"]).text
        assert "Added: this person is subscribed" in page
        assert "paper sign-up sheet, autumn open day" in page and "I can leave at any time" in page
        with reading(site.app.engine) as session:
            person = session.scalar(select(m.Subscriber))
            assert (person.status, person.first_name, person.timezone) == ("active", "Sam", "America/Chicago")
            event = session.scalar(select(m.ConsentEvent).where(m.ConsentEvent.subscriber_id == person.id))
            assert event.kind == "added" and event.source == "paper sign-up sheet, autumn open day"
            assert event.occurred_at.date().isoformat() == "2026-11-20"
            assert session.get(m.ConsentWording, event.wording_version).wording.startswith("Yes, send me")
            assert (
                session.scalar(select(m.Enrollment.campaign).where(m.Enrollment.subscriber_id == person.id))
                == "kap-intro"
            )
            audit = session.scalars(
                select(m.OwnerAuditEntry).where(m.OwnerAuditEntry.action == "added a subscriber by hand")
            ).one()
            assert audit.detail == f"subscriber {person.id}"
        again = _add(client)
        assert "already subscribed: nothing changed" in client.get(again.headers["location"]).text


def test_who_cannot_be_added_by_hand_and_missing_evidence(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        active_subscribers(site.app, 2, site.clock.now)
        unsubscribe_email(site.app, "person0@example.com", site.clock.now)
        forget(site.app, "person1@example.com", site.clock.now)
        before = _people(site.app)
        cases = {
            "person0@example.com": ("email", "this person unsubscribed"),
            "person1@example.com": ("email", "erased at the person's request"),
        }
        for address, (field, words) in cases.items():
            answer = _add(client, **{field: address})
            assert answer.status_code == 400 and words in answer.text.replace("&#39;", "'"), address
        for fields, words in (
            ({"source": " "}, "say where this person agreed"),
            ({"wording": "ok"}, "give the words the person agreed to"),
            ({"consented_on": (site.clock.now + timedelta(days=2)).date().isoformat()}, "in the future"),
            ({"consented_on": "1999-12-31"}, "before 2000"),
            ({"consented_on": "2026-02-30"}, "not one the calendar has"),
            ({"email": "not an address"}, "is not a valid email address"),
        ):
            answer = _add(client, **{"email": "new@example.com", **fields})
            assert answer.status_code == 400 and "Nobody was added" in answer.text and words in answer.text, (
                fields
            )
        assert _people(site.app) == before


def _upload(client, text, *, name="people.csv", token=None):
    page = client.get("/console/subscribers/add").text
    return client.post(
        "/console/subscribers/import",
        data={"csrf_token": token if token is not None else csrf(page)},
        files={"file": (name, text.encode("utf-8"), "text/csv")},
    )


def test_upload_a_list_read_the_report_then_import_it(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        active_subscribers(site.app, 2, site.clock.now)
        unsubscribe_email(site.app, "person1@example.com", site.clock.now)
        rows = [
            "ana@example.com,Ana,Europe/Lisbon,2026-10-01,clinic sign-up sheet",
            "ben@example.com,,,2026-10-02,clinic sign-up sheet",
            "ANA@example.com,Ana,,2026-10-01,clinic sign-up sheet",  # the same person again
            "person0@example.com,,,2026-10-01,clinic sign-up sheet",  # already subscribed
            "person1@example.com,,,2026-10-01,clinic sign-up sheet",  # left: not brought back
            "not-an-address,,,2026-10-01,clinic sign-up sheet",
            "cy@example.com,,,,clinic sign-up sheet",  # no date
        ]
        before = _people(site.app)
        uploaded = _upload(client, HEADER + "\n".join(rows) + "\n")
        assert uploaded.status_code == 303, uploaded.text
        url = uploaded.headers["location"]
        report = client.get(url).text
        assert _people(site.app) == before  # a report only: nothing kept
        figures = dict(
            (label, int(count))
            for label, count in __import__("re").findall(
                r'<th scope="row">([^<]+)</th><td class="num">(\d+)</td>', report
            )
        )
        assert figures["New people"] == 2
        assert figures["Already on the list, or a repeated line"] == 2
        assert figures["Left the list before (not brought back)"] == 1
        assert figures["Refused rows"] == 2
        assert "Line 7, email:" in report and "Line 8, consented_at: missing" in report
        assert "Import 2 people, skip the refused rows" in report
        committed = client.post(url + "/commit", data={"csrf_token": csrf(report)})
        assert committed.status_code == 303
        done = client.get(url).text
        assert "Imported. 2 people were added" in done
        assert _people(site.app) == before + 2
        with reading(site.app.engine) as session:
            new = select(m.Subscriber.id).where(
                m.Subscriber.email.in_(["ana@example.com", "ben@example.com"])
            )
            details = set(
                session.scalars(select(m.ConsentEvent.detail).where(m.ConsentEvent.subscriber_id.in_(new)))
            )
            assert details == {"imported from people.csv"}
        # A second click on the button imports nothing more.
        assert client.post(url + "/commit", data={"csrf_token": csrf(report)}).status_code == 303
        assert _people(site.app) == before + 2


def test_the_page_streams_a_progress_bar_while_the_file_is_checked(tmp_path, monkeypatch):
    import nurture.web.console.import_jobs as jobs

    reading_started, go_on = threading.Event(), threading.Event()
    original = jobs.check_csv

    def slow_check(*args, **kwargs):
        assert go_on.wait(20)
        return original(*args, **kwargs)

    monkeypatch.setattr(jobs, "check_csv", slow_check)
    with console(tmp_path, https=True) as site:
        client = site.login()
        uploaded = _upload(client, HEADER + "dee@example.com,,,2026-10-01,open day\n")
        with client.stream("GET", uploaded.headers["location"]) as answer:
            chunks = answer.iter_text()
            first = next(chunks)
            while "<progress" not in first:
                first += next(chunks)
            reading_started.set()
            assert 'class="progress-log"' in first and "Checking: 0%" in first
            go_on.set()
            rest = "".join(chunks)
        assert (
            "Done: 100%" in rest
            and "What importing it would do" in rest
            and rest.rstrip().endswith("</html>")
        )


def test_a_file_over_the_limit_is_refused_before_it_is_kept(tmp_path):
    with console(tmp_path, https=True, **{"console.import_max_mb": 1}) as site:
        client = site.login()
        big = HEADER + "".join(f"p{i:07d}@example.com,,,2026-10-01,open day\n" for i in range(40_000))
        assert len(big) > 1024 * 1024
        answer = _upload(client, big)
        assert answer.status_code == 413
        assert "The file is larger than 1 MB" in answer.text and "Split it into smaller files" in answer.text
        assert _people(site.app) == 0


def test_a_file_that_is_not_a_list_says_why_without_server_paths(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        uploaded = _upload(client, "name,phone\nAna,123\n", name="contacts.csv")
        page = client.get(uploaded.headers["location"]).text
        assert (
            "Nothing was imported: contacts.csv, line 1: "
            "missing column(s) email, consented_at, consent_source" in page
        )
        assert "/tmp" not in page and "nurture-uploads" not in page
        gone = client.post(uploaded.headers["location"] + "/discard", data={"csrf_token": csrf(page)})
        assert gone.headers["location"] == "/console/subscribers/add?done=discarded"
        assert client.get(uploaded.headers["location"]).status_code == 404


def test_an_upload_needs_the_csrf_token_first_and_a_session(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        text = HEADER + "eve@example.com,,,2026-10-01,open day\n"
        assert _upload(client, text, token="not-the-token").status_code == 403
        page = client.get("/console/subscribers/add").text
        # The token after the file: refused before the file is read.
        late = client.post(
            "/console/subscribers/import",
            files=[("file", ("people.csv", text.encode(), "text/csv")), ("csrf_token", (None, csrf(page)))],
        )
        assert late.status_code == 403
        # A body that is not a form at all, or a first part with no name: refused, never a crash.
        for body in (b"--b\r\n\r\nx\r\n--b--\r\n", b"--b\r\nX: y\r\n\r\nx\r\n--b--\r\n", b"junk"):
            odd = client.post(
                "/console/subscribers/import",
                content=body,
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            )
            assert odd.status_code == 403, body
        stranger = site.client()
        answer = stranger.post(
            "/console/subscribers/import",
            data={"csrf_token": csrf(page)},
            files={"file": ("p.csv", text.encode())},
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/console/login"
        assert _people(site.app) == 0
