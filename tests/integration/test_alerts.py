"""The alerts that guard the practice's name with mailbox providers, through real passes:
spam complaints past 0.1% warn and past 0.3% hold newsletters until the owner confirms;
bounces past 2% warn and past 5% pause all sending. Each alert goes out once, says what
to do, and stops exactly what it says; the Today page shows it."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from nurture.app import App
from nurture.newsletters import schedule
from nurture.reporting.today import today
from nurture.sending import holds
from nurture.store import models as m
from nurture.store.db import reading, transaction
from nurture.tick import tick
from tests.support.factories import SECRET, active_subscribers, at, make_app
from tests.support.newsletters import WINTER, newsletter_file

NOW = at("2026-12-01 15:00")  # Tuesday 10:00 in New York: inside the send window
DAY = timedelta(days=1)
OWNER = {"practice.owner_email": "owner@example.com"}


def events(app: App, kind: str, count: int, when: datetime, start: int = 0) -> None:
    """`count` provider events of `kind`, each about a different email sent at NOW, stored as the
    webhook stores them (without the suppression it also does, which its own tests cover)."""
    with reading(app.engine) as session:
        deliveries = list(
            session.scalars(
                select(m.Delivery.id)
                .where(m.Delivery.status == m.DeliveryStatus.SENT)
                .order_by(m.Delivery.id)
            )
        )[start : start + count]
    with transaction(app.engine) as session:
        for delivery_id in deliveries:
            session.add(
                m.ProviderEvent(
                    provider="sendgrid",
                    provider_event_id=f"{kind}-{delivery_id}",
                    kind=kind,
                    raw_event=kind,
                    delivery_id=delivery_id,
                    stream="kap-intro",
                    step=1,
                    occurred_at=when,
                    received_at=when,
                )
            )


def sent(app: App, *, newsletter: bool) -> int:
    with reading(app.engine) as session:
        query = select(func.count()).select_from(m.Delivery).where(m.Delivery.status == m.DeliveryStatus.SENT)
        query = query.where(
            m.Delivery.newsletter_id.is_not(None) if newsletter else m.Delivery.newsletter_id.is_(None)
        )
        return int(session.scalar(query) or 0)


def subjects(app: App) -> list[str]:
    return [
        line.removeprefix("Subject: ")
        for path in sorted(app.config.outbox_dir.glob("*.eml"))
        for line in path.read_text().splitlines()
        if line.startswith("Subject: ") and "owner@example.com" in path.read_text()
    ]


@pytest.fixture
def app(tmp_path: Path) -> App:
    return make_app(tmp_path, **OWNER)


def test_complaints_warn_once_then_hold_newsletters_until_the_owner_confirms(app: App) -> None:
    active_subscribers(app, 400, NOW - timedelta(minutes=5))
    letter = schedule(app, newsletter_file(app, WINTER), "2026-12-02 10:00", "subscriber", NOW - DAY)
    assert tick(app, NOW, weekly=False).summary.sent == 400

    events(app, m.EventKind.COMPLAINED, 1, NOW + timedelta(minutes=10))  # 0.25%
    assert tick(app, NOW + timedelta(minutes=15), weekly=False).notices == ["alert (complaints-warn)"]
    assert tick(app, NOW + timedelta(hours=2), weekly=False).notices == [], "each alert once"
    assert "Spam complaints: 1 of 400" in "\n".join(today(app, NOW + timedelta(hours=2)).warnings)

    events(app, m.EventKind.COMPLAINED, 1, NOW + timedelta(hours=3), start=1)  # 0.5%: past the stop line
    assert tick(app, NOW + timedelta(hours=3, minutes=1), weekly=False).notices == ["alert (complaints-stop)"]
    [hold] = holds.read_holds(app.engine)
    assert hold.kind == m.HoldKind.NEWSLETTERS and "2 of 400" in hold.reason
    info = today(app, NOW + timedelta(hours=4))
    assert [h.id for h in info.holds] == [hold.id]
    assert not any("Spam complaints" in w for w in info.warnings), "shown as the hold, not twice"

    # The newsletter's day comes and goes: it waits. The series goes on.
    for day in range(1, 5):
        done = tick(app, NOW + day * DAY, weekly=False)
        assert any("newsletters (" in line for line in done.summary.held)
        assert done.notices == []
    assert sent(app, newsletter=True) == 0
    assert sent(app, newsletter=False) == 800, "email 2 of the series went out on day 3"

    holds.lift(app.engine, hold.id, NOW + 4 * DAY + timedelta(hours=1), "owner@example.com")
    done = tick(app, NOW + 4 * DAY + timedelta(hours=2), weekly=False)
    assert done.notices == [], "judged afresh after the owner confirmed: no new hold at once"
    assert holds.read_holds(app.engine) == []
    # (The events here are stored directly: suppressing who complained is the webhook's part.)
    assert sent(app, newsletter=True) == 400
    with reading(app.engine) as session:
        assert session.get(m.Newsletter, letter).status == m.NewsletterStatus.SENT  # type: ignore[union-attr]
    assert subjects(app).count("Newsletters held: too many spam complaints") == 1
    assert subjects(app).count("Action needed: spam complaints are rising") == 1


def test_bounces_warn_then_pause_all_sending_and_say_why(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    active_subscribers(app, 100, NOW - timedelta(minutes=5))
    tick(app, NOW, weekly=False)
    events(app, m.EventKind.BOUNCED, 3, NOW + timedelta(minutes=5))  # 3%
    assert tick(app, NOW + timedelta(minutes=10), weekly=False).notices == ["alert (bounces-warn)"]
    events(app, m.EventKind.BOUNCED, 3, NOW + timedelta(minutes=20), start=3)  # 6%
    assert tick(app, NOW + timedelta(minutes=25), weekly=False).notices == ["alert (bounces-pause)"]
    [hold] = holds.read_holds(app.engine)
    assert hold.kind == m.HoldKind.ALL

    # Email 2 is due on day 3: nothing goes out, and the pass says why.
    done = tick(app, NOW + 3 * DAY, weekly=False)
    assert done.summary.sent == 0 and done.notices == []
    assert done.summary.held == [f"all sending ({hold.reason})"]
    assert "held: all sending (bounces: 6 of 100" in done.summary.line()
    message = [p for p in sorted(app.config.outbox_dir.glob("*.eml")) if "Sending paused" in p.read_text()]
    assert len(message) == 1
    text = message[0].read_text()
    assert "What to do:" in text and "nurture doctor" in text

    # The command line shows the hold and lifts it.
    monkeypatch.setenv("NURTURE_SECRET_KEY", SECRET)
    runner = CliRunner()
    from nurture.cli.main import cli

    listed = runner.invoke(cli, ["--config", str(app.config.path), "holds"])
    assert listed.exit_code == 0 and f"{hold.id:>4}  all sending held since" in listed.output
    lifted = runner.invoke(cli, ["--config", str(app.config.path), "holds", "lift", str(hold.id)])
    assert lifted.exit_code == 0, lifted.output
    again = runner.invoke(cli, ["--config", str(app.config.path), "holds", "lift", str(hold.id)])
    assert again.exit_code == 1 and "not in place" in again.stderr and "Traceback" not in again.output
    assert tick(app, NOW + 3 * DAY + timedelta(hours=1), weekly=False).summary.sent == 100


def test_a_hold_is_placed_even_when_nobody_can_be_told(tmp_path: Path) -> None:
    app = make_app(tmp_path)  # no practice.owner_email
    active_subscribers(app, 10, NOW - timedelta(minutes=5))
    tick(app, NOW, weekly=False)
    events(app, m.EventKind.BOUNCED, 1, NOW + timedelta(minutes=5))  # 10%
    assert tick(app, NOW + timedelta(minutes=10), weekly=False).notices == []
    assert [hold.kind for hold in holds.read_holds(app.engine)] == [m.HoldKind.ALL]
    assert tick(app, NOW + 3 * DAY, weekly=False).summary.sent == 0
