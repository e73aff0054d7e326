"""Newsletters in a test project: readers in a zone, the shipped newsletter file, a
recording transport, and what the store holds afterwards."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from nurture.app import App
from nurture.providers.recording import RecordingTransport
from nurture.sending.sendpass import send_due
from nurture.series.enrollment import enroll
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import at, make_app

WINTER = "2026-12-winter-note.md"
WINTER_SUBJECT = "A gentle note for the winter months"
BEFORE = at("2026-11-25 12:00")  # when the owner schedules


def add_people(
    app: App, zone_name: str | None, count: int, now: datetime, *, prefix: str, enroll_them: bool = False
) -> list[int]:
    """Active, confirmed subscribers in one zone; not in any series unless `enroll_them`."""
    with transaction(app.engine) as session:
        ids = []
        for i in range(count):
            address = f"{prefix}{i}@example.com"
            person = m.Subscriber(
                email=address,
                email_key=address,
                first_name=f"{prefix.title()}{i}",
                timezone=zone_name,
                status=m.SubscriberStatus.ACTIVE,
                source="test",
                created_at=now,
                confirmed_at=now,
                status_changed_at=now,
                confirm_nonce=0,
            )
            session.add(person)
            session.flush()
            session.add(
                m.ConsentEvent(
                    subscriber_id=person.id,
                    kind=m.ConsentKind.IMPORT,
                    occurred_at=now,
                    recorded_at=now,
                    source="test",
                )
            )
            ids.append(person.id)
        if enroll_them:
            enroll(session, app, ids, now)
    return ids


def newsletter_file(app: App, name: str = WINTER) -> Path:
    return app.config.campaigns_dir / "newsletters" / name


def deliveries(app: App, stream: str | None = None) -> list[m.Delivery]:
    with transaction(app.engine) as session:
        query = select(m.Delivery).order_by(m.Delivery.id)
        if stream is not None:
            query = query.where(m.Delivery.stream == stream)
        return list(session.scalars(query))


def status_of(app: App, newsletter_id: int) -> str:
    with transaction(app.engine) as session:
        return session.get(m.Newsletter, newsletter_id).status  # type: ignore[union-attr]


def passes(
    app: App, start: datetime, end: datetime, every: timedelta = timedelta(minutes=15)
) -> Iterable[datetime]:
    """Run send_due at start, start+every, ... up to end; yield each moment after its pass."""
    moment = start
    while moment <= end:
        send_due(app, moment)
        yield moment
        moment += every


def recording_app(
    tmp_path: Path, database_url: str | None = None, **overrides: object
) -> tuple[App, RecordingTransport]:
    app = make_app(tmp_path, database_url=database_url, **overrides)
    transport = RecordingTransport()
    app.use_transport(transport)
    return app, transport
