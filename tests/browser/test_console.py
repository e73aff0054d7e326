"""The owner's day in a real headless Chromium: sign in; preview and edit email 3, see a
check finding, fix it, publish; compose, test and schedule a newsletter in subscriber
time; find a subscriber and tag them booked, unsubscribe another, export a third; open
results, deliveries and the audit log; sign out.

Every page is checked by tests.support.walk: axe-core at 1280 and 375 px, nothing fetched
from outside the server, the CSP blocks nothing, the page fits a 375 px screen without
splitting a word; screenshots at both widths go to test-artifacts/.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.console import OWNER, PASSWORD, console
from tests.support.factories import active_subscribers
from tests.support.walk import Walk

pytestmark = pytest.mark.browser


def test_the_owners_day(page: Any, tmp_path: Path, artifacts_dir: Path) -> None:
    with console(tmp_path, https=True) as site:
        ids = active_subscribers(site.app, 3, site.clock.now - timedelta(days=2))
        walk = Walk(page, site.web.url, artifacts_dir)

        page.goto(site.web.url + "/console/")
        assert page.url.endswith("/console/login")
        walk.check("login")
        page.get_by_label("Email address").fill(OWNER)
        page.get_by_label("Password").fill(PASSWORD)
        walk.submit(page.get_by_role("button", name="Sign in"))
        page.wait_for_url("**/console/")
        expect(page.get_by_role("heading", name="Today")).to_be_visible()
        walk.check("today")

        # Series: email 3, a finding, the fix, the plan, publish.
        walk.submit(page.get_by_role("link", name="Series", exact=True))
        walk.check("series-list")
        walk.submit(page.get_by_role("link", name="Getting to know ketamine-assisted psychotherapy"))
        walk.check("series")
        walk.submit(page.get_by_role("link", name="Email 3"))
        expect(page.locator("iframe.w600")).to_be_visible()
        expect(page.locator("iframe.w375")).to_be_visible()
        expect(page.frame_locator("iframe.w600").get_by_text("Safety is often").first).to_be_visible()
        walk.check("series-email")
        source = page.locator("#source")
        original = source.input_value()
        source.fill(
            original.replace("Safety is often", "Read http://example.com/safety first. Safety is often")
        )
        walk.submit(page.get_by_role("button", name="Save as draft and check"))
        expect(page.get_by_text("uses http://").first).to_be_visible()
        walk.check("series-email-finding")
        page.locator("#source").fill(
            page.locator("#source").input_value().replace("http://example.com", "https://example.com")
        )
        walk.submit(page.get_by_role("button", name="Save as draft and check"))
        expect(page.get_by_text("No problems found")).to_be_visible()
        walk.submit(page.get_by_role("button", name="Send me a test copy"))
        expect(page.get_by_text("Test copy made")).to_be_visible()  # the outbox: a file, not an email
        expect(page.get_by_text("Changes since it was published")).to_be_visible()
        walk.submit(page.get_by_role("link", name="See the plan and publish the series"))
        plan = page.get_by_label("The plan: version 2")
        expect(plan).to_contain_text("version 1 -> 2; 3 people in the series")
        expect(plan).to_contain_text("3 people who have not had it get the new version")
        walk.check("series-plan")
        walk.submit(page.get_by_role("button", name="Publish version 2"))
        expect(page.get_by_text("Published: from the next sending pass on")).to_be_visible()
        expect(page.get_by_text("Version 2 is what goes out")).to_be_visible()
        published = site.app.catalog.refresh(site.app.engine)["kap-intro"]
        assert published.version == 2 and "https://example.com/safety" in published.step(3).email.body

        # A newsletter: write, test, schedule in each reader's own time.
        walk.submit(page.get_by_role("link", name="Newsletters"))
        walk.check("newsletters")
        page.locator("#name").fill("2026-12-hello")
        page.get_by_label("Date", exact=True).fill((site.clock.now + timedelta(days=5)).strftime("%Y-%m-%d"))
        page.get_by_label("Time", exact=True).fill("10:00")
        page.get_by_label("At that time in each reader’s own time zone").check()
        walk.submit(page.get_by_role("button", name="Preview and check"))
        walk.check("newsletter-preview")
        walk.submit(page.get_by_role("button", name="Send me a test copy"))
        expect(page.get_by_text("Test copy made")).to_be_visible()
        walk.submit(page.get_by_role("button", name="Schedule it"))
        expect(page.get_by_text("Scheduled: it goes out on")).to_be_visible()
        expect(page.get_by_text("in each reader’s own time zone").first).to_be_visible()
        walk.check("newsletters-scheduled")

        # Subscribers: tag one booked, unsubscribe another, export a third.
        walk.submit(page.get_by_role("link", name="Subscribers"))
        walk.check("subscribers")
        page.get_by_label("Address or first name").fill("person0")
        walk.submit(page.get_by_role("button", name="Search"))
        walk.submit(page.get_by_role("link", name="person0@example.com"))
        walk.check("person")
        page.get_by_label("Tag", exact=True).fill("booked")
        walk.submit(page.get_by_role("button", name="Add tag"))
        expect(page.get_by_text("Tag added")).to_be_visible()
        page.goto(f"{site.web.url}/console/subscribers/{ids[1]}")
        walk.submit(page.get_by_role("button", name="Unsubscribe"))
        expect(page.get_by_text("Unsubscribed: this person gets no more emails")).to_be_visible()
        page.goto(f"{site.web.url}/console/subscribers/{ids[2]}")
        with page.expect_download() as download:
            page.get_by_role("button", name="Download everything held (JSON)").click()
        exported = json.loads(Path(download.value.path()).read_text())
        assert exported["subscriber"]["email"] == "person2@example.com"

        for name, link in (("results", "Results"), ("deliveries", "Deliveries"), ("audit", "Audit log")):
            walk.submit(page.get_by_role("link", name=link))
            walk.check(name)
        expect(page.get_by_role("cell", name="published a series", exact=True)).to_be_visible()

        walk.submit(page.get_by_role("button", name="Sign out"))
        expect(page.get_by_text("You are signed out.")).to_be_visible()
        page.goto(site.web.url + "/console/subscribers")
        assert page.url.endswith("/console/login")

        assert walk.outside == []
        assert walk.problems == []
        assert len(walk.checked) == 15
