"""A webhook batch never holds an email's row while waiting for another (PostgreSQL).

A pass writes the rows of the emails it has just handed over while SendGrid's events about
them arrive. When a batch held some of those rows and waited for others, the pass could wait
for the batch's in turn, and PostgreSQL ended one of the two to break the deadlock: during a
100,000-email pass it ended the pass (benchmarks/bench_webhook_during_pass.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, select, text, update

from nurture.app import App
from nurture.provider_events import WebhookReport
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.webhooks import process_sendgrid_events
from tests.support.factories import active_subscribers, at
from tests.support.webserver import sg_event

pytestmark = pytest.mark.postgres
NOW = at("2026-12-01 15:00")


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url  # `app` checks it opened PostgreSQL


def sent_emails(app: App, count: int) -> list[int]:
    """`count` emails handed over to SendGrid now, keyed k..-1 to person{n}@example.com."""
    people = active_subscribers(app, count, NOW)
    with transaction(app.engine) as session:
        rows = session.execute(
            m.Delivery.__table__.insert().returning(m.Delivery.id, sort_by_parameter_order=True),
            [
                {
                    "subscriber_id": person,
                    "stream": "kap-intro",
                    "step": 1,
                    "step_key": "what-kap-is",
                    "status": m.DeliveryStatus.CLAIMED,
                    "claimed_at": NOW,
                    "submitted_at": NOW,
                    "provider": "sendgrid",
                    "message_key": f"k{number:016x}-1",
                }
                for number, person in enumerate(people)
            ],
        ).all()
    return [row[0] for row in rows]


def events_about(count: int) -> list[dict[str, object]]:
    return [
        sg_event(kind, number, delivery_id=f"k{number:016x}-1", email=f"person{number}@example.com")
        for number in range(count)
        for kind in ("processed", "delivered")
    ]


@pytest.fixture
def other_writer(app: App) -> Iterator[Connection]:
    """A second writer (a pass, as far as the rows know), on its own connection."""
    with app.engine.connect() as connection:
        connection.execute(text("SET lock_timeout = '20s'"))
        yield connection
        connection.rollback()


def in_background(app: App, events: list[dict[str, object]]) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []

    def run() -> None:
        try:
            result.append(process_sendgrid_events(app, events, NOW))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_a_batch_waiting_for_a_row_holds_none_of_the_others(app: App, other_writer: Connection) -> None:
    emails = sent_emails(app, 20)
    # The other writer holds the last email's row, as a pass marking it sent would.
    other_writer.execute(update(m.Delivery).where(m.Delivery.id == emails[-1]).values(finished_at=NOW))
    thread, result = in_background(app, events_about(20))
    time.sleep(0.5)  # the batch has found its emails and met the held row
    # Taking the first email's row now would close a circle if the batch held it: PostgreSQL
    # would end one of the two after a second (deadlock_timeout).
    started = time.monotonic()
    other_writer.execute(update(m.Delivery).where(m.Delivery.id == emails[0]).values(finished_at=NOW))
    waited = time.monotonic() - started
    other_writer.commit()
    thread.join(timeout=30)

    assert not thread.is_alive()
    [report] = result
    assert isinstance(report, WebhookReport), report  # not ended by PostgreSQL to break a deadlock
    assert waited < 0.2, f"the other writer waited {waited:.2f} s for a row the batch held"
    assert (report.stored, report.settled) == (40, 20), report
    with transaction(app.engine) as session:
        statuses = set(session.scalars(select(m.Delivery.status).where(m.Delivery.id.in_(emails))))
    assert statuses == {m.DeliveryStatus.SENT}


def test_a_batch_gives_up_only_after_trying_for_seconds(app: App, other_writer: Connection) -> None:
    """A row held for longer than the batch retries: the error reaches the caller (SendGrid
    is answered 5xx and posts again), and nothing of the batch is stored."""
    emails = sent_emails(app, 3)
    other_writer.execute(update(m.Delivery).where(m.Delivery.id == emails[1]).values(finished_at=NOW))
    started = time.monotonic()
    thread, result = in_background(app, events_about(3))
    thread.join(timeout=60)
    took = time.monotonic() - started
    other_writer.rollback()

    [outcome] = result
    assert not isinstance(outcome, WebhookReport), outcome
    assert "lock" in str(outcome).lower(), outcome
    assert took > 3, f"gave up after {took:.2f} s"
    with transaction(app.engine) as session:
        assert session.scalar(select(m.ProviderEvent.id).limit(1)) is None
