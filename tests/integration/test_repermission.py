"""Re-permission instead of tracking-based sunset, on a fake clock: quiet readers get exactly
one "still want these?" email; those who answer stay, the others are paused (or unsubscribed
with reason sunset) once the answer time is over; a reader with any sign of life is never
asked; `simulate` shows the email like any other; nothing happens while sunset is off."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nurture.app import App
from nurture.audience import preferences
from nurture.audience.people import tag
from nurture.audience.repermission import UNTIL_THEY_RETURN, daily_review, overview
from nurture.providers.recording import RecordingTransport
from nurture.sending.sendpass import send_due
from nurture.sending.simulate import simulate
from nurture.sending.streams import REPERMISSION_STREAM
from nurture.store import models as m
from nurture.store.db import reading, transaction
from tests.support.factories import at, make_app
from tests.support.newsletters import add_people

T0 = at("2026-09-01 13:00")  # Tuesday 09:00 in New York: everyone joins and the series starts
DAY = timedelta(days=1)
SUNSET = {
    "sunset.enabled": True,
    "sunset.quiet_for": "60d",
    "sunset.min_emails": 3,
    "sunset.answer_within": "30d",
}
SUBJECT = "Still want emails from Riverbend Integrative Therapy?"


def project(tmp_path: Path, database_url: str | None = None, **overrides: object) -> App:
    app = make_app(tmp_path, database_url=database_url, **{**SUNSET, **overrides})
    app.use_transport(RecordingTransport())
    return app


def run(app: App, start: datetime, end: datetime, every: timedelta = timedelta(hours=3)) -> None:
    moment = start
    while moment <= end:
        send_due(app, moment, review=daily_review(app.config))
        moment += every


def asks_sent(app: App, subscriber_id: int) -> list[m.Delivery]:
    with reading(app.engine) as session:
        return list(
            session.scalars(
                select(m.Delivery).where(
                    m.Delivery.subscriber_id == subscriber_id, m.Delivery.stream == REPERMISSION_STREAM
                )
            )
        )


def reader(app: App, subscriber_id: int) -> m.Subscriber:
    with transaction(app.engine) as session:
        found = session.get(m.Subscriber, subscriber_id)
        assert found is not None
        session.expunge(found)
        return found


def outcomes(app: App) -> dict[int, str | None]:
    with reading(app.engine) as session:
        return dict(session.execute(select(m.RepermissionAsk.subscriber_id, m.RepermissionAsk.outcome)).all())


def ledger(app: App, subscriber_id: int) -> list[tuple[str, str | None, str | None]]:
    with reading(app.engine) as session:
        return [
            (row.kind, row.source, row.detail)
            for row in session.scalars(
                select(m.ConsentEvent)
                .where(m.ConsentEvent.subscriber_id == subscriber_id)
                .order_by(m.ConsentEvent.id)
            )
        ]


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_quiet_readers_are_asked_once_kept_when_they_answer_paused_when_they_do_not(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("postgres_url")) if database == "postgres" else None
    app = project(tmp_path, url, **{"delivery.tracking": "per_person"})
    quiet, answers, visits, books, changes, clicks = add_people(
        app, "America/New_York", 6, T0, prefix="reader", enroll_them=True
    )
    run(app, T0, T0 + 40 * DAY)
    # Signs of life, each well inside the quiet time: none of these may ever be asked.
    assert preferences.visit(app, visits, T0 + 40 * DAY) is not None
    tag(app, "reader3@example.com", "booked", T0 + 41 * DAY)
    preferences.pause(app, changes, 30, T0 + 10 * DAY)  # a choice made (and ended) long ago...
    preferences.resume(app, changes, T0 + 42 * DAY)  # ...and one made lately
    with transaction(app.engine) as session:  # a click, as the per_person webhook stores it
        delivery = session.scalar(select(m.Delivery).where(m.Delivery.subscriber_id == clicks).limit(1))
        assert delivery is not None
        session.add(
            m.ProviderEvent(
                provider="sendgrid",
                provider_event_id="click-1",
                kind=m.EventKind.CLICKED,
                raw_event="click",
                delivery_id=delivery.id,
                stream=delivery.stream,
                step=delivery.step,
                occurred_at=T0 + 43 * DAY,
                received_at=T0 + 43 * DAY,
            )
        )

    run(app, T0 + 40 * DAY + timedelta(hours=3), T0 + 62 * DAY)
    for alive in (visits, books, changes, clicks):
        assert asks_sent(app, alive) == [], f"reader {alive} showed a sign of life: never asked"
    [first] = asks_sent(app, quiet)
    [second] = asks_sent(app, answers)
    assert first.status == second.status == m.DeliveryStatus.SENT
    assert first.claimed_at >= T0 + 61 * DAY, "asked once quiet for 60 days"
    transport = app.transport
    assert isinstance(transport, RecordingTransport)
    assert sum(record.subject == SUBJECT for record in transport.sent) == 2

    # One reader answers; the other does not.
    assert preferences.keep(app, answers, T0 + 63 * DAY) is True
    assert preferences.keep(app, answers, T0 + 63 * DAY) is False, "answering twice changes nothing more"
    assert outcomes(app) == {quiet: None, answers: m.AskOutcome.KEPT}

    sent_at = first.finished_at or first.claimed_at
    run(app, T0 + 63 * DAY, sent_at + 30 * DAY - timedelta(hours=3))
    assert reader(app, quiet).paused_until is None, "not before the answer time is over"
    run(app, sent_at + 30 * DAY, sent_at + 31 * DAY)
    assert outcomes(app) == {quiet: m.AskOutcome.PAUSED, answers: m.AskOutcome.KEPT}
    paused = reader(app, quiet)
    assert paused.paused_until == UNTIL_THEY_RETURN and paused.status == m.SubscriberStatus.ACTIVE
    assert ledger(app, quiet)[-1][:2] == (m.ConsentKind.SUNSET_PAUSE, "sunset")
    assert ledger(app, answers)[-1] == (m.ConsentKind.RECONFIRM, "re-permission email", "keep me on the list")

    # Much later: still exactly one email each, and the paused reader gets nothing at all.
    before = len(transport.sent)
    run(app, sent_at + 31 * DAY, sent_at + 200 * DAY, every=timedelta(hours=12))
    assert len(asks_sent(app, quiet)) == len(asks_sent(app, answers)) == 1
    assert [r for r in transport.sent[before:] if r.to_email == "reader0@example.com"] == []

    # The console's view: who was asked and how it ended.
    with reading(app.engine) as session:
        view = overview(session, app.config, sent_at + 31 * DAY)
    assert view.counts == {"paused": 1, "kept": 1}
    assert {(ask.email, ask.outcome) for ask in view.asks} == {
        ("reader0@example.com", "paused"),
        ("reader1@example.com", "kept"),
    }


def test_with_then_unsubscribe_the_silent_reader_is_unsubscribed_with_reason_sunset(tmp_path: Path) -> None:
    app = project(tmp_path, **{"sunset.then": "unsubscribe"})
    [quiet] = add_people(app, "America/New_York", 1, T0, prefix="reader", enroll_them=True)
    run(app, T0, T0 + 95 * DAY, every=timedelta(hours=6))
    assert len(asks_sent(app, quiet)) == 1
    assert reader(app, quiet).status == m.SubscriberStatus.UNSUBSCRIBED
    assert ledger(app, quiet)[-1] == (
        m.ConsentKind.UNSUBSCRIBE,
        "sunset",
        "sunset: no answer to the re-permission email",
    )
    assert outcomes(app) == {quiet: m.AskOutcome.UNSUBSCRIBED}


def test_a_sunset_paused_reader_can_come_back_from_the_preference_center(tmp_path: Path) -> None:
    app = project(tmp_path)
    [quiet] = add_people(app, "America/New_York", 1, T0, prefix="reader", enroll_them=True)
    run(app, T0, T0 + 95 * DAY, every=timedelta(hours=6))
    page = preferences.visit(app, quiet, T0 + 96 * DAY)
    assert page is not None and page.paused_by_sunset and page.paused_until == UNTIL_THEY_RETURN
    assert preferences.keep(app, quiet, T0 + 96 * DAY) is True  # the old email's "keep" link still works
    assert reader(app, quiet).paused_until is None
    assert ledger(app, quiet)[-1][2] == "keep me on the list; emails started again after a sunset pause"


def test_nobody_is_asked_while_sunset_is_off(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.use_transport(RecordingTransport())
    [quiet] = add_people(app, "America/New_York", 1, T0, prefix="reader", enroll_them=True)
    run(app, T0, T0 + 95 * DAY, every=timedelta(hours=6))
    assert asks_sent(app, quiet) == []
    with reading(app.engine) as session:
        assert session.scalar(select(func.count()).select_from(m.RepermissionAsk)) == 0
        assert session.scalar(select(func.count()).select_from(m.SunsetReview)) == 0


def test_simulate_shows_the_re_permission_email_like_any_other(tmp_path: Path) -> None:
    app = project(tmp_path)
    [quiet] = add_people(app, "America/New_York", 1, T0, prefix="reader", enroll_them=True)
    run(app, T0, T0 + 20 * DAY)
    rehearsal = simulate(app, T0 + 55 * DAY, 10, review=daily_review(app.config))
    [ask] = [send for send in rehearsal.sends if send.stream == REPERMISSION_STREAM]
    assert (ask.email, ask.subject, ask.zone) == ("reader0@example.com", SUBJECT, "America/New_York")
    assert 9 <= ask.local.hour < 17, "in the reader's send window"
    assert asks_sent(app, quiet) == [], "a simulation changes nothing"
    with reading(app.engine) as session:
        assert session.scalar(select(func.count()).select_from(m.RepermissionAsk)) == 0
