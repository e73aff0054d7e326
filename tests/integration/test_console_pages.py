"""The owner console's pages doing their jobs, through HTTP against a real server."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import reading, transaction
from tests.support.console import OWNER, console, csrf
from tests.support.factories import active_subscribers


def _post(client, page_url, action_url, data=None):
    token = csrf(client.get(page_url).text)
    return client.post(action_url, data={"csrf_token": token, **(data or {})})


def _audit_details(app):
    with reading(app.engine) as session:
        return [
            (row.action, row.detail)
            for row in session.scalars(select(m.OwnerAuditEntry).order_by(m.OwnerAuditEntry.id))
        ]


def test_today_shows_what_goes_out_the_last_pass_and_the_warnings(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        empty = client.get("/console/").text
        assert "Nothing is due in the next 24 hours" in empty
        assert "No sending pass has ever run" in empty
        active_subscribers(site.app, 3, site.clock.now - timedelta(days=1))
        page = client.get("/console/").text
        assert "What is ketamine-assisted psychotherapy" in page or "email 1" in page
        assert '<td class="num">3</td>' in page
        assert "3 new signups in the last 7 days" in page
        send_due(site.app, site.clock.now)
        page = client.get("/console/").text
        assert "No sending pass" not in page
        assert "ok; sent" in page


def test_find_a_person_tag_untag_unsubscribe_export_and_forget(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        assert "Nobody has signed up yet" in client.get("/console/subscribers").text
        ids = active_subscribers(site.app, 3, site.clock.now)
        found = client.get("/console/subscribers", params={"q": "person1@"}).text
        assert "person1@example.com" in found and "person2@example.com" not in found
        by_name = client.get("/console/subscribers", params={"q": "p2"}).text
        assert "person2@example.com" in by_name and "person1@example.com" not in by_name
        assert "Nobody matches" in client.get("/console/subscribers", params={"q": "nobody-like-this"}).text

        person = f"/console/subscribers/{ids[0]}"
        assert "kap-intro" in client.get(person).text
        answer = _post(client, person, person + "/tag", {"tag": "booked"})
        assert answer.status_code == 303
        page = client.get(answer.headers["location"]).text
        assert "The series that stop on this tag have ended" in page
        assert "booked" in client.get("/console/subscribers", params={"tag": "booked"}).text
        assert _post(client, person, person + "/untag", {"tag": "booked"}).status_code == 303
        assert "Remove tag “booked”" not in client.get(person).text

        second = f"/console/subscribers/{ids[1]}"
        assert _post(client, second, second + "/unsubscribe").status_code == 303
        with reading(site.app.engine) as session:
            assert session.get(m.Subscriber, ids[1]).status == "unsubscribed"

        third = f"/console/subscribers/{ids[2]}"
        download = _post(client, third, third + "/export")
        assert download.headers["content-disposition"] == f'attachment; filename="subscriber-{ids[2]}.json"'
        assert json.loads(download.text)["subscriber"]["email"] == "person2@example.com"

        wrong = _post(client, third, third + "/forget", {"confirm": "someone else"})
        assert wrong.status_code == 400 and "Nothing was erased" in wrong.text
        assert _post(client, third, third + "/forget", {"confirm": "PERSON2@example.com"}).status_code == 303
        assert client.get(third).status_code == 404

        details = _audit_details(site.app)
        assert ("viewed a subscriber", f"subscriber {ids[0]}") in details
        assert ("searched subscribers", "by address or name: 1 found") in details
        looked = ("viewed a subscriber", "searched subscribers")
        assert [action for action, _ in details[1:] if action not in looked] == [
            "tagged a subscriber",
            "untagged a subscriber",
            "unsubscribed a subscriber",
            "exported a subscriber's data",
            "forgot a subscriber",
        ]
        assert all("@" not in (detail or "") for _, detail in details)
        assert OWNER not in client.get("/console/audit").text.replace(f'<th scope="row">{OWNER}</th>', "")


def test_stuck_and_failed_deliveries_can_be_released(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        assert "Nothing is stuck" in client.get("/console/deliveries").text
        (subscriber_id,) = active_subscribers(site.app, 1, site.clock.now)
        with transaction(site.app.engine) as session:
            stuck = m.Delivery(
                subscriber_id=subscriber_id,
                stream="kap-intro",
                step=1,
                status="claimed",
                worker="host-1",
                claimed_at=site.clock.now - timedelta(hours=1),
            )
            failed = m.Delivery(
                subscriber_id=subscriber_id,
                stream="kap-intro",
                step=2,
                status="failed",
                claimed_at=site.clock.now - timedelta(hours=2),
                error="550 mailbox unavailable",
            )
            session.add_all([stuck, failed])
            session.flush()
            stuck_id, failed_id = stuck.id, failed.id
        page = client.get("/console/deliveries").text
        assert "host-1" in page and "550 mailbox unavailable" in page
        answer = client.post(
            "/console/deliveries/release",
            data={"csrf_token": csrf(page), "id": [str(stuck_id), str(failed_id)]},
        )
        assert answer.status_code == 303
        assert "Released 2" in client.get(answer.headers["location"]).text
        with reading(site.app.engine) as session:
            assert (
                session.scalar(select(m.Delivery.id).where(m.Delivery.id.in_([stuck_id, failed_id]))) is None
            )


def test_results_chart_the_rates_when_all_are_zero(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        assert client.get("/console/results").text.count("Nothing to show yet") >= 1
        active_subscribers(site.app, 2, site.clock.now - timedelta(days=1))
        send_due(site.app, site.clock.now)
        page = client.get("/console/results", params={"period": "7"}).text
        rates = page[page.index('id="rates"') :]
        rates = rates[: rates.index("</section>")]
        assert "Nothing to show yet" not in rates and 'class="bar"' in rates


def test_compose_check_test_schedule_and_cancel_a_newsletter(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        page = client.get("/console/newsletters").text
        assert "No newsletters yet" in page
        source = (
            "---\nsubject: Spring note\npreheader: A few thoughts for spring.\ncta: More\n"
            "cta_url: http://example.com/spring\n---\nHello from the practice.\n"
        )
        day = (site.clock.now + timedelta(days=3)).strftime("%Y-%m-%d")
        form = {
            "csrf_token": csrf(page),
            "name": "2027-spring",
            "source": source,
            "date": day,
            "time": "10:00",
            "mode": "subscriber",
        }
        preview = client.post("/console/newsletters/compose", data={**form, "do": "preview"})
        assert "uses http://" in preview.text and 'srcdoc="' in preview.text
        assert "'unsafe-hashes' 'sha256-" in preview.headers["content-security-policy"]
        refused = client.post("/console/newsletters/compose", data={**form, "do": "schedule"})
        assert refused.status_code == 400 and "Not scheduled" in refused.text
        form["source"] = source.replace("http://", "https://")
        tested = client.post("/console/newsletters/compose", data={**form, "do": "test"})
        # The outbox transport writes files: the page says so rather than "sent to" her inbox.
        assert "Test copy made" in tested.text and "nothing reaches your inbox" in tested.text
        assert any(
            "[TEST] Spring note" in path.read_text() for path in site.app.config.outbox_dir.glob("*.eml")
        )
        scheduled = client.post("/console/newsletters/compose", data={**form, "do": "schedule"})
        assert scheduled.status_code == 303
        listed = client.get(scheduled.headers["location"]).text
        assert "Spring note" in listed and "in each reader’s own time" in listed
        assert (site.app.config.campaigns_dir / "newsletters" / "2027-spring.md").exists()
        with reading(site.app.engine) as session:
            newsletter_id = session.scalar(select(m.Newsletter.id))
        cancelled = client.post(
            f"/console/newsletters/{newsletter_id}/cancel", data={"csrf_token": csrf(listed)}
        )
        assert cancelled.status_code == 303
        with reading(site.app.engine) as session:
            assert session.get(m.Newsletter, newsletter_id).status == "cancelled"


def test_the_daily_cap_warning_names_people_with_a_series_email_that_day(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        active_subscribers(site.app, 2, site.clock.now)  # email 1 due now
        page = client.get("/console/newsletters").text
        form = {
            "csrf_token": csrf(page),
            "name": "today-note",
            "source": page and "---\nsubject: Hi\npreheader: A short hello.\n---\nHello.\n",
            "date": site.clock.now.strftime("%Y-%m-%d"),
            "time": "23:59",
            "mode": "practice",
            "do": "preview",
        }
        answer = client.post("/console/newsletters/compose", data=form)
        assert "2 people also have a series email due that day" in answer.text


def _versions(app, slug="kap-intro"):
    with reading(app.engine) as session:
        return list(
            session.scalars(
                select(m.SeriesVersion.version)
                .where(m.SeriesVersion.campaign == slug)
                .order_by(m.SeriesVersion.version)
            )
        )


def test_edit_a_series_email_see_a_finding_fix_it_and_publish_with_the_plan(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        active_subscribers(site.app, 2, site.clock.now)
        send_due(site.app, site.clock.now)  # both have email 1, so the plan has people to speak of
        series = client.get("/console/series/kap-intro").text
        assert "Is ketamine-assisted psychotherapy safe?" in series
        assert "there is nothing to publish" in series and "Publish version" not in series
        step_url = "/console/series/kap-intro/3"
        page = client.get(step_url)
        assert page.text.count("<iframe") == 2 and "No problems found" in page.text
        live = site.app.config.campaigns_dir / "kap-intro" / "03-is-kap-safe.md"
        original = live.read_text()
        broken = original.replace("Safety is often", "See http://example.com/safety first. Safety is often")
        saved = client.post(step_url + "/draft", data={"csrf_token": csrf(page.text), "source": broken})
        assert saved.status_code == 303
        drafted = client.get(saved.headers["location"]).text
        assert (
            "uses http://" in drafted
            and "Draft saved" in drafted
            and "Changes since it was published" in drafted
        )
        assert live.read_text() == broken  # the file is the draft; the published version is in the store
        assert not (live.parent / "drafts").exists()
        assert _versions(site.app) == [1]
        series = client.get("/console/series/kap-intro").text
        assert "Problems to fix before publishing" in series and "uses http://" in series
        assert "version 1 -&gt; 2; 2 people in the series" in series and "edited" in series
        assert "Publish version 2" not in series  # no button while a check fails
        refused = client.post(
            "/console/series/kap-intro/publish", data={"csrf_token": csrf(series), "version": "2"}
        )
        assert (
            refused.status_code == 400
            and "Why it was not published" in refused.text
            and "uses http://" in refused.text
        )
        assert _versions(site.app) == [1]
        fixed = broken.replace("http://", "https://")
        client.post(step_url + "/draft", data={"csrf_token": csrf(drafted), "source": fixed})
        tested = client.post(step_url + "/test", data={"csrf_token": csrf(drafted)})
        assert tested.status_code == 303
        series = client.get("/console/series/kap-intro").text
        assert "Problems to fix" not in series and "Publish version 2" in series
        assert "2 people who have not had it get the new version; 0 had it" in series
        stale = client.post(
            "/console/series/kap-intro/publish", data={"csrf_token": csrf(series), "version": "3"}
        )
        assert stale.status_code == 400 and _versions(site.app) == [
            1
        ]  # the plan she saw is not the one that would run
        published = client.post(
            "/console/series/kap-intro/publish",
            data={"csrf_token": csrf(series), "version": "2", "who": "everyone"},
        )
        assert published.status_code == 303 and _versions(site.app) == [1, 2]
        after = client.get(published.headers["location"]).text
        assert (
            "Published" in after
            and "Version 2 is what goes out" in after
            and "there is nothing to publish" in after
        )
        assert live.read_text() == fixed
        assert (
            "https://example.com/safety"
            in site.app.catalog.refresh(site.app.engine)["kap-intro"].step(3).email.body
        )
        details = _audit_details(site.app)
        assert [action for action, _ in details[-4:]] == [
            "saved a series draft",
            "saved a series draft",
            "sent a test copy",
            "published a series",
        ]
        assert details[-1][1] == "kap-intro version 2"


def test_adding_an_email_offers_the_only_ahead_choice_in_plain_words(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        active_subscribers(site.app, 1, site.clock.now)
        send_due(site.app, site.clock.now)
        folder = site.app.config.campaigns_dir / "kap-intro"
        # A new first email: the subscriber who had email 1 is already past it.
        (folder / "00-a-new-email.md").write_text(
            (folder / "01-what-is-kap.md").read_text().replace("subject:", "subject: New -", 1)
        )
        settings = folder / "campaign.yaml"
        settings.write_text(
            settings.read_text().replace(
                "steps:\n", "steps:\n  - file: 00-a-new-email.md\n    delay_days: 0\n"
            )
        )
        page = client.get("/console/series/kap-intro").text
        assert (
            "People who are already past a new email" in page
            and "Let them skip it" in page
            and "(1 email skipped in all)" in page
        )
        answer = client.post(
            "/console/series/kap-intro/publish",
            data={"csrf_token": csrf(page), "version": "2", "who": "ahead"},
        )
        assert answer.status_code == 303 and _versions(site.app) == [1, 2]
        assert _audit_details(site.app)[-1] == (
            "published a series",
            "kap-intro version 2 (people already past a new email skip it)",
        )


def test_the_deliveries_page_says_what_each_stuck_row_waits_for_and_counts_stray_events(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        (subscriber_id,) = active_subscribers(site.app, 1, site.clock.now)
        handed_at = site.clock.now - timedelta(hours=1)
        with transaction(site.app.engine) as session:
            session.add_all(
                [
                    m.Delivery(
                        subscriber_id=subscriber_id,
                        stream="kap-intro",
                        step=1,
                        step_key="one",
                        status="claimed",
                        worker="host-1",
                        claimed_at=handed_at,
                        message_key="k0000000000000001-1",
                        provider="sendgrid",
                        submitted_at=handed_at,
                    ),
                    m.Delivery(
                        subscriber_id=subscriber_id,
                        stream="kap-intro",
                        step=2,
                        step_key="two",
                        status="claimed",
                        worker="host-1",
                        claimed_at=handed_at,
                        message_key="k0000000000000001-2",
                    ),
                    m.ProviderEvent(
                        provider="sendgrid",
                        provider_event_id="stray-1",
                        kind="delivered",
                        raw_event="delivered",
                        occurred_at=handed_at,
                        received_at=handed_at,
                        address_mismatch=True,
                    ),
                ]
            )
        page = client.get("/console/deliveries").text
        assert "never handed to the provider" in page  # waits for its worker: released after reconcile_after
        assert "1 provider event named an email but another address" in page
