"""Settings changed in the console: saved with validation and audit, shown beside what
config.yaml says, laid over it for every command (send-due in another process, a running
pass, serve's own pages), fixed where the environment sets them, and never able to stop
sending when a saved value goes bad."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from nurture.config.overrides import ORIGIN
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store import saved_settings
from nurture.store.db import reading, transaction
from nurture.tick import tick
from tests.support.console import console, csrf
from tests.support.factories import active_subscribers, open_app
from tests.support.processes import clean_env, iso, run_nurture


def _form(client):
    """The settings form as the page shows it: every field's value."""
    page = client.get("/console/settings").text
    values = {"csrf_token": csrf(page)}
    for name, value in re.findall(
        r'<input id="([^"]+)" name="[^"]+" type="(?:text|email|time|number)"[^>]*value="([^"]*)"', page
    ):
        values[name] = html.unescape(value)
    for name, text in re.findall(r'<textarea id="([^"]+)"[^>]*>([^<]*)</textarea>', page, re.S):
        values[name] = html.unescape(text)
    if re.search(r'id="delivery.weekdays_only"[^>]*checked', page):
        values["delivery.weekdays_only"] = "yes"
    return values


def _saved(app):
    return {key: item.value for key, item in saved_settings.read_saved(app.engine).items()}


def test_save_validate_audit_show_and_reset(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        page = client.get("/console/settings").text
        assert page.count("As in the configuration file.") >= 10
        form = _form(client)
        assert (
            form["delivery.send_window.start"] == "09:00" and form["sender.from_email"] == "hello@example.com"
        )
        answer = client.post(
            "/console/settings",
            data={
                **form,
                "delivery.send_window.start": "08:00",
                "delivery.weekdays_only": "yes",
                "sender.from_name": "Dr. Lee",
            },
        )
        assert answer.status_code == 303
        page = html.unescape(client.get(answer.headers["location"]).text)
        assert "Saved." in page and "Changed here on" in page and "The configuration file says: 09:00" in page
        assert _saved(site.app) == {
            "delivery.send_window.start": "08:00",
            "delivery.weekdays_only": True,
            "sender.from_name": "Dr. Lee",
        }
        assert site.app.config.delivery.send_window.start.hour == 8
        assert site.app.config.where("delivery", "send_window", "start") == ORIGIN
        with reading(site.app.engine) as session:
            entry = session.scalars(
                select(m.OwnerAuditEntry).where(m.OwnerAuditEntry.action == "changed settings")
            ).one()
        assert "Sending starts at: 08:00" in entry.detail and "Weekdays only: yes" in entry.detail
        assert "Sender name" in entry.detail and "Dr. Lee" not in entry.detail
        # Wrong values: nothing is saved, each field says what to fix.
        form = _form(client)
        for field, bad, words in (
            ("delivery.send_window.end", "07:00", "must be later than start"),
            ("sender.from_email", "not an address", "is not a valid email address"),
            ("delivery.max_emails_per_day", "0", "greater than or equal to 1"),
            ("delivery.max_emails_per_day", "two", "write a whole number"),
            ("delivery.default_timezone", "Mars/Base", "is not an IANA time zone"),
            ("delivery.send_window.start", "25:00", "is not a time of day"),
        ):
            refused = client.post("/console/settings", data={**form, field: bad})
            assert refused.status_code == 400 and "Nothing was saved" in refused.text, field
            assert words in html.unescape(refused.text), (field, words)
            assert 'aria-invalid="true"' in refused.text
        assert len(_saved(site.app)) == 3
        # A value typed back to the file's is no longer kept; "Use the file's value" drops one.
        client.post(
            "/console/settings", data={**_form(client), "sender.from_name": "Riverbend Integrative Therapy"}
        )
        assert "sender.from_name" not in _saved(site.app)
        reset = client.post(
            "/console/settings",
            data={"csrf_token": form["csrf_token"], "reset": "delivery.send_window.start"},
        )
        assert reset.status_code == 303 and "configuration file" in html.unescape(
            client.get(reset.headers["location"]).text
        )
        assert _saved(site.app) == {"delivery.weekdays_only": True}
        assert site.app.config.delivery.send_window.start.hour == 9


def test_the_environment_fixes_a_setting_and_the_page_says_so(tmp_path):
    with console(tmp_path, https=True, environ={"NURTURE_DELIVERY__MAX_EMAILS_PER_DAY": "2"}) as site:
        client = site.login()
        page = client.get("/console/settings").text
        assert "Fixed by the way this server is set up: 2" in page
        assert 'name="delivery.max_emails_per_day"' not in page
        form = _form(client)
        client.post(
            "/console/settings",
            data={**form, "delivery.max_emails_per_day": "5", "delivery.weekdays_only": "yes"},
        )
        assert "delivery.max_emails_per_day" not in _saved(site.app)
        assert site.app.config.delivery.max_emails_per_day == 2


def test_saved_settings_reach_send_due_in_another_process_and_a_running_pass(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        active_subscribers(site.app, 2, site.clock.now)  # New York; email 1 due now (10:00 there)
        # An app opened before the change, as `nurture run` would be.
        running = open_app(site.app.file_config)
        form = _form(client)
        assert (
            client.post("/console/settings", data={**form, "delivery.send_window.start": "11:00"}).status_code
            == 303
        )
        env = clean_env()
        early = run_nurture(tmp_path, "send-due", "--now", iso(site.clock.now), env=env)
        assert early.returncode == 0, early.stderr
        assert "sent 0" in early.stdout  # 10:00 in New York: before the window saved in the console
        assert tick(running, site.clock.now, weekly=False).summary.sent == 0
        site.clock.advance(hours=1, minutes=30)
        later = tick(running, site.clock.now, weekly=False)
        assert later.summary.sent == 2


def test_sender_and_postal_address_saved_here_are_in_the_emails(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        active_subscribers(site.app, 1, site.clock.now)
        form = _form(client)
        client.post(
            "/console/settings",
            data={
                **form,
                "sender.from_name": "Anna at Riverbend",
                "practice.postal_address": "9 New Road, Portland, OR 97202",
            },
        )
        assert send_due(site.app, site.clock.now).sent == 1
        (email,) = site.app.config.outbox_dir.glob("*.eml")
        text = email.read_text()
        assert "From: Anna at Riverbend <hello@example.com>" in text
        assert "9 New Road, Portland, OR 97202" in text


def test_a_new_consent_wording_gets_a_new_version_and_the_signup_page_shows_it(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        file_version = site.app.config.consent.version
        form = _form(client)
        wording = (
            "Yes, send me the practice's introduction to KAP and its newsletter. I can leave at any time."
        )
        client.post("/console/settings", data={**form, "consent.wording": wording})
        new_version = site.app.config.consent.version
        assert new_version != file_version and new_version.endswith("-console")
        signup = site.client().get("/subscribe").text
        assert html.escape(wording, quote=False).replace("'", "&#39;") in signup or wording in html.unescape(
            signup
        )
        assert f'value="{new_version}"' in signup
        with reading(site.app.engine) as session:
            assert session.get(m.ConsentWording, new_version).wording == wording
        # The file's words again: its version again, nothing kept.
        client.post(
            "/console/settings",
            data={**_form(client), "consent.wording": site.app.file_config.consent.wording},
        )
        assert site.app.config.consent.version == file_version and "consent.wording" not in _saved(site.app)
        # The console's words again: their version again.
        client.post("/console/settings", data={**_form(client), "consent.wording": wording})
        assert site.app.config.consent.version == new_version


def test_a_bad_saved_value_never_stops_sending_and_is_shown(tmp_path):
    with console(tmp_path, https=True) as site:
        active_subscribers(site.app, 2, site.clock.now)
        with transaction(site.app.engine) as session:
            # As if edited by hand, or the zone vanished from the time zone database.
            saved_settings.save(
                session, "delivery.default_timezone", "Mars/Olympus_Mons", site.clock.now, "someone"
            )
            saved_settings.save(session, "delivery.send_window.end", "08:00", site.clock.now, "someone")
        done = run_nurture(tmp_path, "send-due", "--now", iso(site.clock.now), env=clean_env())
        assert done.returncode == 0, done.stderr
        assert "sent 2" in done.stdout
        assert "warning: the setting 'Practice time zone' saved in the console cannot be used" in done.stderr
        assert "Mars" not in done.stderr  # the value is for the console, not the log
        client = site.login()
        today = html.unescape(client.get("/console/").text)
        assert "Practice time zone: the value saved in the console cannot be used" in today
        assert "Sending stops at: the value saved in the console cannot be used" in today
        settings = html.unescape(client.get("/console/settings").text)
        assert "The value saved here cannot be used ('Mars/Olympus_Mons' is not an IANA time zone" in settings
        assert site.app.config.delivery.default_timezone == site.app.file_config.delivery.default_timezone
