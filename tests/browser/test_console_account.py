"""Her own account and the owners, in a real headless Chromium: set up the code app from the
QR code's key and confirm it with a code, keep the recovery codes, see her sessions, change
the password (the other session ends), invite a second owner who joins through the emailed
link, and the console's own pages for a missing page and for stuck deliveries.

Every page is checked by tests.support.walk (axe-core at 1280 and 375 px, nothing fetched
from elsewhere, no word split at 375 px, screenshots in test-artifacts/).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import expect

from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.console import OWNER, PASSWORD, console, invitation_links
from tests.support.factories import active_subscribers
from tests.support.walk import Walk

pytestmark = pytest.mark.browser

GUEST = "sam@riverbend.example"
NEW_PASSWORD = "a different long passphrase"


def _sign_in(page: Any, walk: Walk, email: str, password: str, code: str | None = None) -> None:
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    if code is not None:
        page.get_by_label("Six-digit code").fill(code)
    walk.submit(page.get_by_role("button", name="Sign in"))


def _stuck_and_failed(site: Any, subscriber_id: int) -> None:
    with transaction(site.app.engine) as session:
        session.add_all(
            [
                m.Delivery(
                    subscriber_id=subscriber_id,
                    stream="kap-intro",
                    step=1,
                    status="claimed",
                    worker="mail-host-1",
                    claimed_at=site.clock.now - timedelta(hours=1),
                ),
                m.Delivery(
                    subscriber_id=subscriber_id,
                    stream="kap-intro",
                    step=2,
                    status="failed",
                    claimed_at=site.clock.now - timedelta(hours=2),
                    error="550 5.1.1 mailbox unavailable",
                    provider_message_id="14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
                ),
            ]
        )


def test_her_account_and_the_owners(page: Any, browser: Any, tmp_path: Path, artifacts_dir: Path) -> None:
    with console(tmp_path, https=True) as site:
        (subscriber_id,) = active_subscribers(site.app, 1, site.clock.now - timedelta(days=2))
        _stuck_and_failed(site, subscriber_id)
        walk = Walk(page, site.web.url, artifacts_dir)
        walk.expected_statuses = {400, 404}  # the wrong code, the missing page
        page.goto(site.web.url + "/console/login")
        _sign_in(page, walk, OWNER, PASSWORD)
        page.wait_for_url("**/console/")

        # The code app: set up from the key under the QR code, confirmed with a code.
        walk.submit(page.get_by_role("link", name="Your account"))
        expect(page.get_by_role("heading", name="Your account")).to_be_visible()
        walk.check("account")
        walk.submit(page.get_by_role("button", name="Set up a code app"))
        expect(page.get_by_role("img", name="QR code to scan with the code app")).to_be_visible()
        walk.check("code-app")
        secret = page.locator("code.secret").inner_text().replace(" ", "")
        page.get_by_label("Six-digit code").fill(
            "000000" if pyotp.TOTP(secret).at(site.clock.now) != "000000" else "1"
        )
        walk.submit(page.get_by_role("button", name="Confirm"))
        expect(page.get_by_role("alert")).to_contain_text("did not match")
        walk.check("code-app-wrong-code")
        page.get_by_label("Six-digit code").fill(pyotp.TOTP(secret).at(site.clock.now))
        walk.submit(page.get_by_role("button", name="Confirm"))
        expect(page.get_by_role("heading", name="The code app is set up")).to_be_visible()
        codes = page.get_by_role("list", name="Recovery codes").locator("code").all_inner_texts()
        assert len(codes) == 10
        walk.check("recovery-codes")
        walk.submit(page.get_by_role("link", name="I have kept them"))
        expect(page.get_by_text("10 recovery codes left")).to_be_visible()

        # A second session (her phone), seen from the laptop, then ended by a new password.
        site.clock.advance(seconds=30)
        phone = browser.new_context(viewport={"width": 375, "height": 800})
        try:
            other = phone.new_page()
            other.goto(site.web.url + "/console/login")
            other_walk = Walk(other, site.web.url, artifacts_dir)
            other_walk.check("login-with-code")
            _sign_in(other, other_walk, OWNER, PASSWORD, pyotp.TOTP(secret).at(site.clock.now))
            other.wait_for_url("**/console/")
            page.reload()
            sessions = page.get_by_role("region", name="Your sessions")
            expect(sessions.get_by_role("row")).to_have_count(3)  # the header and two sessions
            walk.check("account-sessions")
            page.get_by_label("Current password").fill(PASSWORD)
            page.locator("#new-password").fill(NEW_PASSWORD)
            page.get_by_label("New password again").fill(NEW_PASSWORD)
            walk.submit(page.get_by_role("button", name="Change the password"))
            expect(page.get_by_text("Password changed. Every other session")).to_be_visible()
            other.reload()
            assert other.url.endswith("/console/login")
            assert other_walk.outside == [] and other_walk.problems == []
        finally:
            phone.close()

        # Owners: invite Sam; Sam joins through the link in the email.
        walk.submit(page.get_by_role("link", name="Owners"))
        walk.check("owners")
        page.get_by_label("Their email address").fill(GUEST)
        walk.submit(page.get_by_role("button", name="Send the invitation"))
        expect(page.get_by_text("Invitation sent.")).to_be_visible()
        expect(page.get_by_role("region", name="Open invitations")).to_contain_text(GUEST)
        walk.check("owners-invited")
        (token,) = invitation_links(site.app)
        guest_context = browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            guest = guest_context.new_page()
            guest_walk = Walk(guest, site.web.url, artifacts_dir)
            guest_walk.expected_statuses = {410}  # the used link
            guest.goto(f"{site.web.url}/console/join/{token}")
            expect(guest.get_by_role("heading", name="Accept the invitation")).to_be_visible()
            guest_walk.check("join")
            guest.locator("#password").fill("sam's own long passphrase")
            guest.get_by_label("The same password again").fill("sam's own long passphrase")
            guest_walk.submit(guest.get_by_role("button", name="Make my account"))
            expect(guest.get_by_text("Your owner account is ready")).to_be_visible()
            _sign_in(guest, guest_walk, GUEST, "sam's own long passphrase", "")
            guest.wait_for_url("**/console/")
            guest.goto(f"{site.web.url}/console/join/{token}")  # the link again
            expect(guest.get_by_text("used already")).to_be_visible()
            guest_walk.check("join-used")
            assert guest_walk.outside == [] and guest_walk.problems == []
        finally:
            guest_context.close()
        page.reload()
        expect(page.get_by_role("region", name="Owner accounts")).to_contain_text(GUEST)
        walk.check("owners-two")

        # The console's own pages: a missing page, and stuck or failed emails with whom they are for.
        page.goto(site.web.url + "/console/no-such-page")
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        walk.check("not-found")
        walk.submit(page.get_by_role("link", name="Deliveries"))
        expect(page.get_by_role("region", name="Failed deliveries")).to_contain_text("person0@example.com")
        walk.check("deliveries")
        walk.submit(page.get_by_role("link", name="Audit log"))
        expect(page.get_by_role("cell", name="set up a code app", exact=True)).to_be_visible()
        walk.check("audit")

        assert walk.outside == [] and walk.problems == []
        assert len(walk.checked) == 11
