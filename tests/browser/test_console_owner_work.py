"""The owner's first week without a terminal, in a real headless Chromium: set the sender and
the sending window; upload a list, read its report and import it; add a person by hand;
make a series, add an email, reorder and re-time it, publish it, pause and resume it;
write, schedule, move and cancel newsletters and read one's results; discard a draft.

Every page on the way: axe-core finds no WCAG violation at 1280 or at 375 px, the page
fits a 375 px screen, nothing is fetched from elsewhere, and screenshots at both widths go
to test-artifacts/. And defect 1: the results page shows each chart once, at both widths.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from nurture.sending.sendpass import send_due
from tests.support.console import OWNER, PASSWORD, console
from tests.support.factories import active_subscribers
from tests.support.walk import Walk

pytestmark = pytest.mark.browser

PEOPLE = """email,first_name,timezone,consented_at,consent_source
noa@example.com,Noa,America/New_York,2026-11-28,open day sign-up sheet
raj@example.com,Raj,America/Chicago,2026-11-28,open day sign-up sheet
lou@example.com,,America/New_York,2026-11-28,open day sign-up sheet
not-an-address,,,2026-11-28,open day sign-up sheet
"""


def _sign_in(walk: Walk, page: Any) -> None:
    walk.go("/console/login")
    page.get_by_label("Email address").fill(OWNER)
    page.get_by_label("Password").fill(PASSWORD)
    walk.submit(page.get_by_role("button", name="Sign in"))
    expect(page.get_by_role("heading", name="Today")).to_be_visible()


def test_the_owners_first_week_without_a_terminal(page: Any, tmp_path: Path, artifacts_dir: Path) -> None:
    with console(tmp_path, https=True) as site:
        walk = Walk(page, site.web.url, artifacts_dir)
        _sign_in(walk, page)

        # Settings: who the emails come from, and when they go out.
        walk.submit(page.get_by_role("link", name="Settings"))
        walk.check("settings")
        page.get_by_label("Sender name").fill("Anna Lee at Riverbend")
        page.get_by_label("Sending starts at").fill("08:30")
        page.get_by_label("Weekdays only").check()
        walk.submit(page.get_by_role("button", name="Save settings"))
        expect(page.get_by_text("Saved. Emails use the new settings")).to_be_visible()
        expect(page.get_by_text("The configuration file says: 09:00")).to_be_visible()
        walk.check("settings-saved")
        assert site.app.config.sender.from_name == "Anna Lee at Riverbend"

        # People: a list from a file, its report, then the import.
        walk.submit(page.get_by_role("link", name="Subscribers"))
        walk.check("subscribers")
        walk.submit(page.get_by_role("link", name="Add people", exact=True))
        walk.check("add-people")
        people = tmp_path / "open-day.csv"
        people.write_text(PEOPLE, encoding="utf-8")
        page.get_by_label("The CSV file").set_input_files(str(people))
        walk.submit(page.get_by_role("button", name="Upload and check it"))
        expect(page.get_by_role("heading", name="What importing it would do")).to_be_visible(timeout=20_000)
        expect(page.get_by_text("Line 5, email:")).to_be_visible()
        walk.check("import-report")
        walk.submit(page.get_by_role("button", name="Import 3 people, skip the refused rows"))
        expect(page.get_by_text("Imported. 3 people were added")).to_be_visible(timeout=20_000)
        walk.check("import-done")

        # One person by hand, with the evidence of their consent.
        walk.go("/console/subscribers/add")
        page.get_by_label("Email address").fill("mia@example.com")
        page.get_by_label("First name").fill("Mia")
        page.get_by_label("Where they agreed").fill("paper form at the clinic's front desk")
        walk.submit(page.get_by_role("button", name="Add this person"))
        expect(page.get_by_text("Added: this person is subscribed")).to_be_visible()
        expect(page.get_by_role("cell", name="paper form at the clinic's front desk")).to_be_visible()
        walk.check("person-added")

        # A new series: made, given a second email, reordered and re-timed, published.
        walk.submit(page.get_by_role("link", name="Series", exact=True))
        walk.check("series-list")
        page.get_by_label("Title").fill("After the open day")
        page.get_by_label("Short name").fill("after-open-day")
        page.get_by_label("Subject of its first email").fill("Thank you for coming")
        walk.submit(page.get_by_role("button", name="Make the series"))
        expect(page.get_by_text("Series made, as a draft")).to_be_visible()
        walk.check("series-new")
        page.get_by_text("Add an email at the end").click()
        page.get_by_label("Subject").fill("A few things to read")
        page.get_by_label("Days after the one before", exact=True).fill("2")
        walk.submit(page.get_by_role("button", name="Add the email"))
        expect(page.get_by_text("Email added to the draft")).to_be_visible()
        walk.check("series-email-added")
        walk.go("/console/series/after-open-day")
        walk.submit(page.get_by_role("button", name="Move email 2 up"))
        page.get_by_label("Email 2: days after the one before").fill("3")
        walk.submit(page.get_by_role("button", name="Save the delays"))
        plan = page.get_by_label("The plan: version 1")
        expect(plan).to_contain_text("1. A few things to read")
        expect(plan).to_contain_text("2. Thank you for coming")
        walk.check("series-shape")
        walk.submit(page.get_by_role("button", name="Publish version 1"))
        expect(page.get_by_text("Version 1 is what goes out")).to_be_visible()
        walk.submit(page.get_by_role("button", name="Pause this series"))
        expect(page.get_by_text("Paused.", exact=True)).to_be_visible()
        walk.check("series-paused")
        walk.submit(page.get_by_role("button", name="Resume this series"))
        expect(page.get_by_text("Resumed: emails that fell due")).to_be_visible()

        # A newsletter: written, scheduled, moved, sent, and its results read.
        walk.submit(page.get_by_role("link", name="Newsletters"))
        walk.check("newsletters")
        page.locator("#name").fill("2026-12-hello")
        page.get_by_label("Date", exact=True).fill((site.clock.now + timedelta(days=1)).strftime("%Y-%m-%d"))
        page.get_by_label("Time", exact=True).fill("10:00")
        walk.submit(page.get_by_role("button", name="Schedule it"))
        expect(page.get_by_text("Scheduled: it goes out on")).to_be_visible()
        walk.check("newsletter-scheduled")
        later = (site.clock.now + timedelta(days=2)).strftime("%Y-%m-%d")
        page.get_by_label("Date", exact=True).fill(later)
        walk.submit(page.get_by_role("button", name="Move it"))
        expect(page.get_by_text(f"Moved: it goes out on {later}")).to_be_visible()
        assert send_due(site.app, site.clock.now + timedelta(days=3, hours=2)).sent >= 1
        page.reload()
        expect(page.get_by_role("heading", name="Sent")).to_be_visible()
        walk.check("newsletter-results")

        # A second one is cancelled before it goes out.
        walk.go("/console/newsletters")
        page.locator("#name").fill("2026-12-second")
        page.get_by_label("The newsletter").fill(
            "---\nsubject: A second note\npreheader: Another short note.\n---\nHello again.\n"
        )
        page.get_by_label("Date", exact=True).fill((site.clock.now + timedelta(days=9)).strftime("%Y-%m-%d"))
        walk.submit(page.get_by_role("button", name="Schedule it"))
        walk.submit(page.get_by_role("button", name="Cancel this newsletter"))
        expect(page.get_by_text("Cancelled: it will not go out.")).to_be_visible()

        # A draft, its age, and throwing it away.
        walk.go("/console/newsletters")
        page.locator("#name").fill("an-idea")
        walk.submit(page.get_by_role("button", name="Preview and check"))
        expect(page.get_by_text("Draft saved and checked")).to_be_visible()
        walk.submit(page.get_by_role("link", name="Drafts"))
        expect(page.get_by_role("cell", name="just now")).to_be_visible()
        walk.check("drafts")
        walk.submit(page.get_by_role("button", name="Discard “an-idea”"))
        expect(page.get_by_text("Draft discarded.")).to_be_visible()
        expect(page.get_by_text("No newsletter drafts.")).to_be_visible()

        walk.submit(page.get_by_role("button", name="Sign out"))
        expect(page.get_by_text("You are signed out.")).to_be_visible()
        assert walk.outside == [] and walk.problems == []
        assert len(walk.checked) == 16


def test_the_results_page_shows_each_chart_once_at_both_widths(page: Any, tmp_path: Path) -> None:
    """Defect 1: each chart comes in a wide and a narrow layout; the console showed both."""
    with console(tmp_path, https=True) as site:
        active_subscribers(site.app, 2, site.clock.now)
        send_due(site.app, site.clock.now)
        walk = Walk(page, site.web.url, tmp_path)
        _sign_in(walk, page)
        walk.go("/console/results?period=all")
        charts = page.locator("section.chart figure")
        assert charts.count() >= 3
        for width, shown, hidden in (
            (1280, ".chart-wide", ".chart-narrow"),
            (375, ".chart-narrow", ".chart-wide"),
        ):
            page.set_viewport_size({"width": width, "height": 800})
            for index in range(charts.count()):
                figure = charts.nth(index)
                assert figure.locator(shown).is_visible(), (width, index)
                assert not figure.locator(hidden).is_visible(), (width, index)


def test_refusals_are_clear_and_accessible(page: Any, tmp_path: Path, artifacts_dir: Path) -> None:
    """The pages that say no: each message in the owner's words, each page passing axe."""
    with console(tmp_path, https=True) as site:
        walk = Walk(page, site.web.url, artifacts_dir)
        _sign_in(walk, page)

        walk.go("/console/settings")
        page.get_by_label("Sending stops at").fill("07:00")
        walk.submit(page.get_by_role("button", name="Save settings"))
        expect(page.get_by_text("Nothing was saved: fix what is marked below.")).to_be_visible()
        expect(page.get_by_text("must be later than start").first).to_be_visible()
        walk.check("settings-refused")

        walk.go("/console/subscribers/add")
        page.get_by_label("Email address").fill("kim@example.com")
        # The browser asks for a required field itself; spaces get past it to the server's check.
        page.get_by_label("Where they agreed").fill("   ")
        walk.submit(page.get_by_role("button", name="Add this person"))
        expect(page.get_by_text("Nobody was added: say where this person agreed")).to_be_visible()
        walk.check("add-person-refused")

        bad = tmp_path / "contacts.csv"
        bad.write_text("name,phone\nKim,555\n", encoding="utf-8")
        page.get_by_label("The CSV file").set_input_files(str(bad))
        walk.submit(page.get_by_role("button", name="Upload and check it"))
        expect(
            page.get_by_text("Nothing was imported: contacts.csv, line 1: missing column(s)")
        ).to_be_visible(timeout=20_000)
        walk.check("import-refused")

        walk.go("/console/series/kap-intro")
        page.get_by_label("Email 3: days after the one before").fill("-2")
        walk.submit(page.get_by_role("button", name="Save the delays"))
        expect(
            page.get_by_text("Nothing changed: email 3: the delay must be from 0 to 365 days")
        ).to_be_visible()
        walk.check("series-refused")

        walk.go("/console/newsletters")
        page.locator("#name").fill("2026-12-link")
        page.get_by_label("The newsletter").fill(
            "---\nsubject: A link\npreheader: See this.\ncta: Read\ncta_target: url\n"
            "cta_url: javascript:alert(1)\n---\nHello.\n"
        )
        walk.submit(page.get_by_role("button", name="Send me a test copy"))
        expect(page.get_by_text("No test copy was made: fix what the check found first")).to_be_visible()
        walk.check("newsletter-refused")
        # Each refusal answers 400 (or 413), which the browser notes; nothing else may go wrong.
        assert walk.outside == []
        assert [
            problem for problem in walk.problems if "server responded with a status of 4" not in problem
        ] == []
