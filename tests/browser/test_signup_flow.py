"""A real headless Chromium signs up, confirms from the outbox email, and unsubscribes from the
first series email."""

from __future__ import annotations

import email
import email.policy
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.webserver import live_web

pytestmark = pytest.mark.browser

BROWSER_ZONE = "America/Chicago"
PHONE = {"width": 375, "height": 740}

# WCAG contrast of every piece of text against the background it sits on.
CONTRAST_JS = """
() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const worst = [];
  for (const el of document.querySelectorAll('h1, p, label, button, a, span.error, span.hint')) {
    if (el.closest('[aria-hidden="true"]') || !el.textContent.trim()) continue;
    const fg = lum(rgb(getComputedStyle(el).color).slice(0, 3));
    const bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    worst.push([ratio, el.tagName + ' ' + el.textContent.trim().slice(0, 30)]);
  }
  worst.sort((a, b) => a[0] - b[0]);
  return worst;
}
"""

UNLABELLED_JS = """
() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter((el) => el.type !== 'hidden' && el.labels.length === 0 && !el.getAttribute('aria-label'))
  .map((el) => el.name)
"""


def check_phone_page(page, console_errors: list[str]) -> None:
    assert page.evaluate("window.innerWidth") == PHONE["width"]
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], (
        "no horizontal scroll at 375 px"
    )
    assert page.evaluate(UNLABELLED_JS) == [], "every input has a label"
    ratios = page.evaluate(CONTRAST_JS)
    assert ratios, "the page has text"
    assert ratios[0][0] >= 4.5, f"low contrast: {ratios[0]}"
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 16
    assert console_errors == [], console_errors  # a CSP violation (inline CSS or script refused) shows here


def shot(page, artifacts_dir: Path, name: str) -> None:
    path = artifacts_dir / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000


def wait_for_file(folder: Path, pattern: str, timeout: float = 10.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.glob(pattern)) if folder.exists() else []
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {pattern} in {folder} after {timeout} s")


def read_eml(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def text_part(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def inside_send_window(zone_name: str, after: datetime) -> datetime:
    """The next local noon after `after`: always inside the default 09:00-17:00 window."""
    zone = ZoneInfo(zone_name)
    local = after.astimezone(zone)
    noon = local.replace(hour=12, minute=0, second=0, microsecond=0)
    if noon <= local:
        noon = (local + timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    return noon.astimezone(UTC)


def store(app):
    with transaction(app.engine) as session:
        person = session.scalar(select(m.Subscriber))
        consent = session.scalars(select(m.ConsentEvent).order_by(m.ConsentEvent.id)).all()
        enrollments = session.scalars(select(m.Enrollment)).all()
        deliveries = session.scalars(select(m.Delivery)).all()
    return person, consent, enrollments, deliveries


def test_signup_confirm_and_unsubscribe_in_a_real_browser(browser, artifacts_dir, tmp_path):
    context = browser.new_context(viewport=PHONE, timezone_id=BROWSER_ZONE)
    page = context.new_page()
    console_errors: list[str] = []
    page.on(
        "console", lambda message: console_errors.append(message.text) if message.type == "error" else None
    )
    try:
        with live_web(tmp_path) as web:
            app = web.app
            outbox = app.config.outbox_dir

            # 1. The signup form, as a phone shows it.
            page.goto(f"{web.url}/subscribe")
            check_phone_page(page, console_errors)
            assert page.input_value("#timezone") == BROWSER_ZONE  # filled in by the page's script
            assert app.config.consent.wording in page.inner_text("#consent-wording")
            shot(page, artifacts_dir, "1-signup-form")

            page.fill("#email", "River.Reader@example.com")
            page.fill("#first_name", "Robin")
            page.click("button[type=submit]")
            page.wait_for_selector("h1:has-text('Check your inbox')")
            check_phone_page(page, console_errors)
            shot(page, artifacts_dir, "2-check-your-inbox")

            # 2. The confirmation email in the outbox; the store has a pending subscriber.
            confirmation = read_eml(wait_for_file(outbox, "*-confirm-*.eml"))
            assert confirmation["To"].addresses[0].addr_spec == "River.Reader@example.com"
            assert "List-Unsubscribe" not in confirmation  # transactional
            confirm_url = re.search(rf"{re.escape(web.url)}/confirm/\S+", text_part(confirmation)).group(0)
            person, consent, _, _ = store(app)
            assert (person.status, person.first_name, person.timezone) == (
                m.SubscriberStatus.PENDING,
                "Robin",
                BROWSER_ZONE,
            )
            assert [(e.kind, e.source, e.wording_version, e.ip) for e in consent] == [
                (m.ConsentKind.OPT_IN, "web form", app.config.consent.version, "127.0.0.1")
            ]
            assert "HeadlessChrome" in consent[0].user_agent or "Chrome" in consent[0].user_agent

            # 3. Following the link only shows a button; pressing it confirms.
            page.goto(confirm_url)
            page.wait_for_selector("h1:has-text('Confirm your subscription')")
            check_phone_page(page, console_errors)
            shot(page, artifacts_dir, "3-confirm")
            assert store(app)[0].status == m.SubscriberStatus.PENDING
            page.click("button[type=submit]")
            page.wait_for_selector("h1:has-text('You are subscribed')")
            check_phone_page(page, console_errors)
            shot(page, artifacts_dir, "4-confirmed")
            person, consent, enrollments, _ = store(app)
            assert person.status == m.SubscriberStatus.ACTIVE
            assert [e.kind for e in consent] == [m.ConsentKind.OPT_IN, m.ConsentKind.CONFIRM]
            assert [(e.campaign, e.status, e.next_step) for e in enrollments] == [
                ("kap-intro", m.EnrollmentStatus.ACTIVE, 1)
            ]

            # 4. A sending pass inside their send window sends the first series email.
            summary = send_due(app, inside_send_window(BROWSER_ZONE, datetime.now(UTC)))
            assert summary.sent == 1, summary.line()
            _, _, enrollments, deliveries = store(app)
            assert [(d.stream, d.step, d.status) for d in deliveries] == [
                ("kap-intro", 1, m.DeliveryStatus.SENT)
            ]
            assert enrollments[0].next_step == 2
            first = read_eml(wait_for_file(outbox, f"*-kap-intro-step1-{deliveries[0].id}.eml"))
            header = first["List-Unsubscribe"]
            unsubscribe_url = re.search(r"<(http[^>]+)>", header).group(1)
            assert unsubscribe_url.startswith(f"{web.url}/unsubscribe/")
            assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert unsubscribe_url in text_part(first)  # the visible link is the same URL

            # 5. The unsubscribe page changes nothing until the button is pressed.
            page.goto(unsubscribe_url)
            page.wait_for_selector("h1:has-text('Unsubscribe')")
            assert app.config.practice.name in page.inner_text("main")
            check_phone_page(page, console_errors)
            shot(page, artifacts_dir, "5-unsubscribe")
            assert store(app)[0].status == m.SubscriberStatus.ACTIVE
            page.click("button[type=submit]")
            page.wait_for_selector("h1:has-text('You are unsubscribed')")
            assert "Robin" not in page.content() and "River.Reader" not in page.content()
            check_phone_page(page, console_errors)
            shot(page, artifacts_dir, "6-unsubscribed")

            person, consent, enrollments, deliveries = store(app)
            assert person.status == m.SubscriberStatus.UNSUBSCRIBED
            assert [(e.kind, e.source) for e in consent] == [
                (m.ConsentKind.OPT_IN, "web form"),
                (m.ConsentKind.CONFIRM, "web"),
                (m.ConsentKind.UNSUBSCRIBE, "web unsubscribe page"),
            ]
            assert consent[-1].detail == "from kap-intro"
            assert [e.status for e in enrollments] == [m.EnrollmentStatus.STOPPED]
            assert [d.status for d in deliveries] == [m.DeliveryStatus.SENT]

            # 6. And the next pass sends nothing.
            later = send_due(app, inside_send_window(BROWSER_ZONE, datetime.now(UTC) + timedelta(days=4)))
            assert later.sent == 0
    finally:
        context.close()

    assert sorted(p.name for p in artifacts_dir.glob("*.png")) == [
        "1-signup-form.png",
        "2-check-your-inbox.png",
        "3-confirm.png",
        "4-confirmed.png",
        "5-unsubscribe.png",
        "6-unsubscribed.png",
    ]
