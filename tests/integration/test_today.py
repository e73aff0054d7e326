"""The console's Today page data: what goes out, and each warning's threshold."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from nurture.reporting.today import today
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import reading, transaction
from tests.support.factories import active_subscribers, at, make_app

NOW = at("2026-12-01 15:00")  # 10:00 in New York: inside the send window


def _events(app, kind, count, now):
    with reading(app.engine) as session:
        delivery_ids = list(
            session.scalars(select(m.Delivery.id).where(m.Delivery.status == "sent").limit(count))
        )
    with transaction(app.engine) as session:
        for index, delivery_id in enumerate(delivery_ids):
            session.add(
                m.ProviderEvent(
                    provider="sendgrid",
                    provider_event_id=f"{kind}-{index}",
                    kind=kind,
                    raw_event=kind,
                    delivery_id=delivery_id,
                    occurred_at=now,
                    received_at=now,
                )
            )


def _warnings(app, now):
    return "\n".join(today(app, now).warnings)


def test_upcoming_sends_and_the_pass_warnings(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 4, NOW)
    info = today(app, NOW)
    assert [(item.what, item.count) for item in info.upcoming] == [
        ("Series “Getting to know ketamine-assisted psychotherapy”, email 1", 4)
    ]
    assert "No sending pass has ever run" in _warnings(app, NOW)
    send_due(app, NOW)
    info = today(app, NOW + timedelta(minutes=9))
    assert info.last_pass is not None and info.last_pass.sent == 4
    assert [(item.what, item.count) for item in info.upcoming] == []  # email 2 is 3 days away
    assert "sending pass" not in _warnings(app, NOW + timedelta(minutes=9))
    assert "No sending pass has run in the last 10 minutes" in _warnings(app, NOW + timedelta(minutes=11))


def test_complaint_bounce_and_webhook_warnings(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 100, NOW)
    send_due(app, NOW)
    later = NOW + timedelta(minutes=5)
    assert "no delivery events came back" in _warnings(app, later)
    _events(app, "delivered", 100, later)
    _events(app, "bounced_hard", 1, later)
    assert _warnings(app, later) == ""  # 1% bounces, no complaints
    _events(app, "complained", 1, later)
    assert "Spam complaints: 1 of 100 emails sent in 7 days (1.00%" in _warnings(app, later)
    with transaction(app.engine) as session:
        for index in range(1, 3):
            session.add(
                m.ProviderEvent(
                    provider="sendgrid",
                    provider_event_id=f"bounced-more-{index}",
                    kind="bounced_hard",
                    raw_event="bounce",
                    occurred_at=later,
                    received_at=later,
                )
            )
    assert "Bounces: 3 of 100 emails sent in 7 days (3.0%" in _warnings(app, later)
