"""A subscriber-time newsletter claimed zone by zone by overlapping `nurture send-due`
processes, on SQLite and PostgreSQL: everyone gets it once, in their own zone's pass."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture.app import App
from nurture.newsletters import schedule
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import at
from tests.support.processes import Project
from tests.support.sendgrid_standin import SendGridStandIn

BEFORE = at("2026-11-25 12:00")
ZONES: dict[str | None, datetime] = {  # zone -> when 09:00 on Dec 1 comes there (UTC)
    "Pacific/Auckland": at("2026-11-30 20:00"),
    "Europe/London": at("2026-12-01 09:00"),
    None: at("2026-12-01 17:00"),  # no zone given: delivery.default_timezone, Los Angeles
}
PER_ZONE = 250


@pytest.fixture
def database_url(both_stores: str) -> str:
    """Each zone's claims on both stores."""
    return both_stores


def readers(app: App, zone_name: str | None, count: int, prefix: str) -> None:
    """Active, confirmed subscribers in one zone, in no series."""
    with transaction(app.engine) as session:
        session.execute(
            m.Subscriber.__table__.insert(),
            [
                {
                    "email": f"{prefix}{i}@example.com",
                    "email_key": f"{prefix}{i}@example.com",
                    "first_name": None,
                    "timezone": zone_name,
                    "status": m.SubscriberStatus.ACTIVE,
                    "source": "test",
                    "created_at": BEFORE,
                    "confirmed_at": BEFORE,
                    "status_changed_at": BEFORE,
                    "confirm_nonce": 0,
                }
                for i in range(count)
            ],
        )


def test_overlapping_passes_send_a_subscriber_time_newsletter_once_to_each_reader_in_their_zones_pass(
    tmp_path: Path, database_url: str, standin: SendGridStandIn
) -> None:
    workers = 3
    project = Project(
        tmp_path, database_url, standin, **{"delivery.batch_size": 40, "delivery.concurrency": 2}
    )
    for number, zone_name in enumerate(ZONES):
        readers(project.app, zone_name, PER_ZONE, f"zone{number}-")
    newsletter_id = schedule(
        project.app,
        project.app.config.campaigns_dir / "newsletters" / "2026-12-winter-note.md",
        "2026-12-01 09:00",
        "subscriber",
        BEFORE,
    )
    sent_before = 0
    for moment in [at("2026-11-30 19:30"), *ZONES.values(), at("2026-12-01 21:00")]:
        processes = [project.start("send-due", "--now", moment.isoformat()) for _ in range(workers)]
        for process in processes:
            _, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
        sent_now = len(standin.messages()) - sent_before
        sent_before += sent_now
        assert sent_now == (PER_ZONE if moment in ZONES.values() else 0), moment
    received = Counter(message.to_email for message in standin.messages())
    assert len(received) == PER_ZONE * len(ZONES) and set(received.values()) == {1}
    with transaction(project.app.engine) as session:
        claimed = set(
            session.execute(
                select(m.Subscriber.timezone, m.Delivery.claimed_at).join(
                    m.Delivery, m.Delivery.subscriber_id == m.Subscriber.id
                )
            ).all()
        )
        assert claimed == set(ZONES.items())  # every reader's email was claimed at their own zone's 09:00
        assert session.get(m.Newsletter, newsletter_id).status == m.NewsletterStatus.SENT  # type: ignore[union-attr]
        assert set(session.scalars(select(m.Delivery.status))) == {m.DeliveryStatus.SENT}
