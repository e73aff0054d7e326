"""The subscriber flow against a real PostgreSQL: same code as SQLite, another URL."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from nurture.app import App
from nurture.audience.importer import import_csv
from nurture.audience.people import export, forget
from nurture.audience.signup import confirm, subscribe, unsubscribe_email
from nurture.errors import InputError, NotFound, TokenError
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.tokens import address_hash
from tests.support.factories import SECRET, at

pytestmark = pytest.mark.postgres

NOW = at("2026-12-01 18:00")  # 10:00 in Los Angeles


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url  # `app` checks it opened PostgreSQL


def token(app: App, subscriber_id: int, nonce: int) -> str:
    [path] = app.config.outbox_dir.glob(f"*-confirm-{subscriber_id}-{nonce}-*.eml")
    message = message_from_bytes(path.read_bytes(), policy=default_policy)
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    [found] = set(re.findall(r"/confirm/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)", body))
    return found


def status(app: App, email_key: str) -> str | None:
    with transaction(app.engine) as session:
        return session.scalar(select(m.Subscriber.status).where(m.Subscriber.email_key == email_key))


def kinds(app: App, subscriber_id: int) -> list[str]:
    with transaction(app.engine) as session:
        return list(
            session.scalars(
                select(m.ConsentEvent.kind)
                .where(m.ConsentEvent.subscriber_id == subscriber_id)
                .order_by(m.ConsentEvent.id)
            )
        )


def count(app: App, model: type[m.Base]) -> int:
    with transaction(app.engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_subscribe_confirm_import_forget_on_postgres(app: App, tmp_path: Path):
    # Double opt-in.
    sam = subscribe(
        app, "Sam@Example.com", NOW, first_name="Sam", ip="203.0.113.9", user_agent="UA"
    ).subscriber_id
    assert status(app, "sam@example.com") == m.SubscriberStatus.PENDING
    assert send_due(app, NOW).sent == 0
    with pytest.raises(TokenError, match="expired"):
        confirm(app, token(app, sam, 1), NOW + timedelta(days=8))
    result = confirm(app, token(app, sam, 1), NOW + timedelta(minutes=5))
    assert (result.status, result.enrolled) == ("confirmed", 1)
    assert status(app, "sam@example.com") == m.SubscriberStatus.ACTIVE
    assert kinds(app, sam) == [m.ConsentKind.OPT_IN, m.ConsentKind.CONFIRM]
    assert send_due(app, NOW + timedelta(minutes=5)).sent == 1

    # Import: bad rows refuse the whole file...
    path = tmp_path / "list.csv"
    path.write_text(
        "email,first_name,timezone,consented_at,consent_source\n"
        "sam@example.com,Samuel,Europe/Paris,2025-01-01,paper form\n"  # already active: merged
        'ann@example.com,"Ann, Jr.",America/Chicago,2025-02-01T12:00:00+02:00,"open day, 2025"\n'
        "ANN@example.com,,,2025-02-02,open day\n"  # duplicate of the line above
        "bob@example.com,Bob,,2026-12-25,web\n"  # in the future
        "cy@example.com,Cy,,2025-03-01,web\n",
        encoding="utf-8",
    )
    before = {
        model.__tablename__: count(app, model) for model in (m.Subscriber, m.ConsentEvent, m.Enrollment)
    }
    with pytest.raises(InputError) as caught:
        import_csv(app, path, NOW)
    assert re.findall(r", line (\d+): ", str(caught.value)) == ["5"]
    assert {
        model.__tablename__: count(app, model) for model in (m.Subscriber, m.ConsentEvent, m.Enrollment)
    } == before

    # ... unless told to skip them.
    report = import_csv(app, path, NOW, skip_invalid=True)
    assert (report.rows, report.created, report.merged, len(report.invalid), report.enrolled) == (
        5,
        2,
        2,
        1,
        2,
    )
    assert status(app, "ann@example.com") == m.SubscriberStatus.ACTIVE
    assert status(app, "bob@example.com") is None
    with transaction(app.engine) as session:
        ann = session.scalar(select(m.Subscriber).where(m.Subscriber.email_key == "ann@example.com"))
        assert ann is not None and ann.first_name == "Ann, Jr."
        [event] = session.scalars(select(m.ConsentEvent).where(m.ConsentEvent.subscriber_id == ann.id)).all()
        assert (event.kind, event.source, event.occurred_at) == (
            m.ConsentKind.IMPORT,
            "open day, 2025",
            at("2025-02-01 10:00"),
        )
        sam_row = session.get(m.Subscriber, sam)
        assert sam_row is not None and sam_row.first_name == "Sam"

    # Unsubscribe is recorded once; an import does not bring them back.
    assert unsubscribe_email(app, "cy@example.com", NOW, reason="no thanks")
    assert not unsubscribe_email(app, "cy@example.com", NOW)
    again = import_csv(app, path, NOW + timedelta(hours=1), skip_invalid=True)
    assert (again.created, again.skipped_unsubscribed) == (0, 1)
    assert status(app, "cy@example.com") == m.SubscriberStatus.UNSUBSCRIBED

    # Consent records are append-only on PostgreSQL too.
    with pytest.raises(DBAPIError, match="consent_events is append-only"), transaction(app.engine) as session:
        session.execute(
            update(m.ConsentEvent).where(m.ConsentEvent.subscriber_id == sam).values(source="forged")
        )
    assert kinds(app, sam) == [m.ConsentKind.OPT_IN, m.ConsentKind.CONFIRM]

    # Export, then forget.
    data = export(app, "sam@example.com")
    assert [event["kind"] for event in data["consent_events"]] == [
        m.ConsentKind.OPT_IN,
        m.ConsentKind.CONFIRM,
    ]
    assert data["consent_events"][0]["wording"] == app.config.consent.wording
    assert [(d["stream"], d["step"], d["status"]) for d in data["deliveries"]] == [
        ("kap-intro", 1, m.DeliveryStatus.SENT)
    ]
    assert "ann@example.com" not in repr(data)

    forget(app, "sam@example.com", NOW + timedelta(days=1))
    assert status(app, "sam@example.com") is None
    with transaction(app.engine) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(m.ConsentEvent).where(m.ConsentEvent.subscriber_id == sam)
            )
            == 0
        )
        assert (
            session.scalar(
                select(func.count()).select_from(m.Enrollment).where(m.Enrollment.subscriber_id == sam)
            )
            == 0
        )
        assert list(session.scalars(select(m.Suppression.address_hash))) == [
            address_hash(SECRET, "sam@example.com")
        ]
        orphans = session.execute(
            select(m.Delivery.stream, m.Delivery.step).where(m.Delivery.subscriber_id.is_(None))
        ).all()
        assert orphans == [("kap-intro", 1)]
        dumped = " ".join(
            repr(session.execute(text(f"SELECT * FROM {table.name}")).all())
            for table in m.Base.metadata.sorted_tables
        ).casefold()
    assert "sam@example.com" not in dumped
    with pytest.raises(NotFound):
        export(app, "sam@example.com")

    # The erased address is refused by import; a fresh double opt-in still works.
    refused = import_csv(app, path, NOW + timedelta(days=2), skip_invalid=True)
    assert (refused.skipped_erased, refused.created) == (1, 0)
    assert status(app, "sam@example.com") is None
    fresh = subscribe(app, "sam@example.com", NOW + timedelta(days=3))
    assert fresh.status == "confirmation_sent" and fresh.subscriber_id != sam
    assert confirm(app, token(app, fresh.subscriber_id, 1), NOW + timedelta(days=3)).status == "confirmed"
    assert status(app, "sam@example.com") == m.SubscriberStatus.ACTIVE
    assert count(app, m.Suppression) == 0


def test_bulk_import_on_postgres(app: App, tmp_path: Path):
    path = tmp_path / "bulk.csv"
    lines = ["email,first_name,timezone,consented_at,consent_source"]
    lines += [f"person{i}@example.com,P{i},America/Chicago,2025-01-01,bulk list row {i}" for i in range(2500)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_csv(app, path, NOW)
    assert (report.rows, report.created, report.enrolled) == (2500, 2500, 2500)
    with transaction(app.engine) as session:
        pairs = session.execute(
            select(m.Subscriber.email_key, m.ConsentEvent.source)
            .join(m.ConsentEvent, m.ConsentEvent.subscriber_id == m.Subscriber.id)
            .where(m.ConsentEvent.kind == m.ConsentKind.IMPORT)
        ).all()
    # Each consent event belongs to the right person (ids matched up after a multi-row insert).
    assert dict(pairs) == {f"person{i}@example.com": f"bulk list row {i}" for i in range(2500)}
    with transaction(app.engine) as session:
        due = session.execute(
            select(
                m.Enrollment.campaign, m.Enrollment.next_step, m.Enrollment.next_due_at, func.count()
            ).group_by(m.Enrollment.campaign, m.Enrollment.next_step, m.Enrollment.next_due_at)
        ).all()
        times = session.execute(select(m.Subscriber.created_at, m.Subscriber.confirmed_at).distinct()).all()
    assert due == [("kap-intro", 1, NOW, 2500)]
    assert times == [(NOW, NOW)]
