"""The preference center in a real headless Chromium, with no JavaScript needed: open it from
a sent email's footer, change choices, pause, see a mistake explained, answer a re-permission
email; and the console's Inbox, Quiet readers and Today (with a hold) pages. Every page is
checked by tests.support.walk: axe-core at 1280 and 375 px, no word split at 375 px, nothing
fetched from elsewhere."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from nurture.deliverability.doctor import DoctorOptions
from nurture.sending import holds
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import reading, transaction
from tests.support.console import OWNER, PASSWORD, console
from tests.support.dns_standin import dns_standin
from tests.support.factories import active_subscribers
from tests.support.walk import Walk

pytestmark = pytest.mark.browser


def test_a_reader_chooses_fewer_emails_pauses_and_answers(
    page: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    with (
        dns_standin({}) as dns,
        console(
            tmp_path, app_options={"doctor": DoctorOptions(nameservers=(dns.address,), timeout=1)}
        ) as site,
    ):
        app = site.app
        [reader] = active_subscribers(app, 1, site.clock.now - timedelta(days=1))
        send_due(app, site.clock.now)
        [eml] = app.config.outbox_dir.glob("*.eml")
        message = message_from_bytes(eml.read_bytes(), policy=default_policy)
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        url = re.search(r"a pause\): (\S+)", text)
        assert url
        walk = Walk(page, site.web.url, artifacts_dir)
        walk.expected_statuses.add(400)  # the form with a mistake is answered 400 on purpose
        page.goto(url.group(1))
        expect(page.get_by_role("heading", name="Your email choices")).to_be_visible()
        walk.check("preferences")

        page.get_by_label(re.compile("^The email series")).uncheck()
        page.get_by_label("At most one email a week").check()
        page.get_by_label(re.compile("^First name")).fill("Sam\u0007")
        with page.expect_navigation():
            page.get_by_role("button", name="Save my choices").click()
        expect(page.get_by_text("Please fix the first name")).to_be_visible()
        walk.check("preferences-error")
        page.get_by_label(re.compile("^First name")).fill("Sam")
        page.get_by_label(re.compile("^The email series")).uncheck()
        page.get_by_label("At most one email a week").check()
        page.get_by_label(re.compile("^Time zone")).select_option("Europe/Lisbon")
        with page.expect_navigation():
            page.get_by_role("button", name="Save my choices").click()
        expect(page.get_by_text("Saved. Your choices count from the next email on.")).to_be_visible()
        with reading(app.engine) as session:
            stored = session.get(m.Subscriber, reader)
            assert stored is not None
            assert (stored.series_off, stored.frequency, stored.timezone) == (True, "weekly", "Europe/Lisbon")

        page.get_by_label("60 days").check()
        with page.expect_navigation():
            page.get_by_role("button", name="Pause my emails").click()
        expect(page.get_by_role("heading", name="Your emails are paused")).to_be_visible()
        walk.check("preferences-paused")

        # A re-permission question is open: the page and the email's "keep" link offer the answer.
        with transaction(app.engine) as session:
            session.add(
                m.RepermissionAsk(
                    subscriber_id=reader, round=1, created_at=site.clock.now, quiet_since=site.clock.now
                )
            )
        page.goto(url.group(1) + "/keep")
        expect(page.get_by_role("heading", name="Keep getting our emails?")).to_be_visible()
        walk.check("preferences-keep")
        with page.expect_navigation():
            page.get_by_role("button", name="Keep me on the list").click()
        expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
        with reading(app.engine) as session:
            outcome = session.scalar(select(m.RepermissionAsk.outcome))
        assert outcome == m.AskOutcome.KEPT

        # The owner's side: a hold on Today, the Inbox checks, the quiet readers.
        with transaction(app.engine) as session:
            holds.place(
                session,
                m.HoldKind.NEWSLETTERS,
                "spam complaints: 2 of 400 emails sent in 7 days",
                site.clock.now,
            )
        page.goto(site.web.url + "/console/login")
        page.get_by_label("Email address").fill(OWNER)
        page.get_by_label("Password").fill(PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Newsletters are held")).to_be_visible()
        walk.check("console-today-hold")
        with page.expect_navigation():
            page.get_by_role("link", name="Inbox").click()
        expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
        walk.check("console-inbox")
        with page.expect_navigation():
            page.get_by_role("link", name=re.compile("^Quiet readers")).click()
        walk.check("console-quiet")
        page.goto(f"{site.web.url}/console/subscribers/{reader}")
        expect(page.get_by_text("series off, newsletter on, at most one email a week")).to_be_visible()
        walk.check("console-person-choices")

        assert walk.outside == []
        assert walk.problems == []  # a CSP refusal would be one
        assert len(walk.checked) == 8
