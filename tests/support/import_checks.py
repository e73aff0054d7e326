"""Import checks that must hold on every store: each test module runs them on its own `app`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from nurture.app import App
from nurture.audience.importer import import_csv
from nurture.audience.people import forget
from nurture.audience.signup import subscribe, unsubscribe_email
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.csv_files import write_csv_lf as write_csv
from tests.support.factories import at, consent_events

NOW = at("2026-12-01 18:00")


def check_repeats_across_chunks(app: App, tmp_path: Path) -> None:
    """Repeated, erased, unsubscribed and pending addresses, counted as a one-chunk import counts them
    (run on SQLite by the import streaming tests, on PostgreSQL by the import PostgreSQL tests)."""
    subscribe(app, "gone@example.com", NOW - timedelta(days=3))
    forget(app, "gone@example.com", NOW - timedelta(days=2))
    left = subscribe(app, "left@example.com", NOW - timedelta(days=3)).subscriber_id
    assert unsubscribe_email(app, "left@example.com", NOW - timedelta(days=1))
    waiting = subscribe(app, "wait@example.com", NOW - timedelta(hours=1)).subscriber_id
    path = write_csv(
        tmp_path / "dupes.csv",
        [
            ["Sam@Example.com", "", "", "2025-01-01", "form A"],
            ["gone@example.com", "", "", "2025-01-01", "form A"],
            ["left@example.com", "", "", "2025-01-01", "form A"],
            ["wait@example.com", "", "", "2025-01-02", "form A"],
            ["sam@example.com", "Sam", "Europe/London", "2025-02-01", "form B"],
            ["GONE@example.com", "", "", "2025-01-01", "form B"],
            ["Left@example.com", "", "", "2025-01-01", "form B"],
            ["WAIT@example.com", "Wai", "Asia/Tokyo", "2025-01-03", "form B"],
            ["SAM@EXAMPLE.COM", "Samuel", "Asia/Tokyo", "2025-03-01", "form C"],
        ],
    )
    report = import_csv(app, path, NOW)
    # As in one chunk: each repeat is a merge; each address's fate is counted once.
    assert (report.rows, report.created, report.activated, report.merged) == (9, 1, 1, 5)
    assert (report.skipped_erased, report.skipped_unsubscribed, report.enrolled) == (1, 1, 2)
    with transaction(app.engine) as session:
        sam = session.scalar(select(m.Subscriber).where(m.Subscriber.email_key == "sam@example.com"))
        wait = session.get(m.Subscriber, waiting)
        assert sam is not None and wait is not None
        assert (sam.email, sam.first_name, sam.timezone) == ("Sam@example.com", "Sam", "Europe/London")
        assert (wait.status, wait.first_name, wait.timezone) == (
            m.SubscriberStatus.ACTIVE,
            "Wai",
            "Asia/Tokyo",
        )
        assert session.get(m.Subscriber, left).status == m.SubscriberStatus.UNSUBSCRIBED
        assert (
            session.scalar(select(m.Subscriber).where(m.Subscriber.email_key == "gone@example.com")) is None
        )
    [event] = consent_events(app, sam.id)
    assert (event.source, event.occurred_at) == ("form A", at("2025-01-01 00:00"))
    assert [(e.kind, e.source) for e in consent_events(app, waiting)] == [
        (m.ConsentKind.OPT_IN, "cli"),
        (m.ConsentKind.IMPORT, "form A"),
    ]
