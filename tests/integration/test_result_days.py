"""Results read from daily summaries equal results counted live from every delivery and event
(nurture.reporting.result_days), whatever arrives after a day was summarized: late events,
complaints weeks later, web unsubscribes credited to old emails, a person forgotten; and two
summarizers at once never count a day twice."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from nurture.app import App
from nurture.audience import people
from nurture.audience.signup import unsubscribe
from nurture.reporting import result_days
from nurture.reporting.stats import sends_per_day, step_stats
from nurture.store import models as m
from nurture.store.db import reading, transaction
from nurture.store.summaries import day_start
from nurture.web.webhooks import process_sendgrid_events
from tests.support.factories import active_subscribers, at
from tests.support.webserver import sg_event

FIRST_DAY = at("2026-10-01 00:00")
DAYS = 24
STEPS = (1, 2, 3)


@pytest.fixture
def app_settings() -> dict[str, object]:
    return {"delivery.tracking": "per_person"}  # opens and clicks tied to deliveries, so counted per email


@pytest.fixture
def database_url(both_stores: str) -> str:
    return both_stores


def sent_history(app: App, rng: random.Random, people_count: int) -> tuple[list[int], dict[int, datetime]]:
    """Sent deliveries of kap-intro steps 1-3 to everyone, at random times over DAYS days."""
    ids = active_subscribers(app, people_count, FIRST_DAY - timedelta(days=1))
    rows = []
    for subscriber_id in ids:
        for step in STEPS:
            moment = FIRST_DAY + timedelta(minutes=rng.randrange(DAYS * 24 * 60))
            rows.append(
                {
                    "subscriber_id": subscriber_id,
                    "stream": "kap-intro",
                    "step": step,
                    "step_key": f"k{step}",
                    "status": m.DeliveryStatus.SENT,
                    "claimed_at": moment,
                    "finished_at": moment,
                }
            )
    with transaction(app.engine) as session:
        session.execute(m.Delivery.__table__.insert(), rows)
        sent = dict(session.execute(select(m.Delivery.id, m.Delivery.claimed_at)).all())
        RECIPIENTS.clear()
        RECIPIENTS.update(
            session.execute(
                select(m.Delivery.id, m.Subscriber.email).join(
                    m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id
                )
            ).all()
        )
    return ids, sent


RECIPIENTS: dict[int, str] = {}  # delivery -> its recipient's address, which every event carries


EVENTS = ("delivered", "open", "click", "bounce", "spamreport", "unsubscribe", "deferred")


def some_events(rng: random.Random, sent: dict[int, datetime], serial: list[int], count: int) -> list[dict]:
    events = []
    for delivery_id in rng.sample(sorted(sent), count):
        serial[0] += 1
        kind = rng.choice(EVENTS)
        when = sent[delivery_id] + timedelta(hours=rng.uniform(0, 24 * 40))  # up to 40 days late
        extra = {"type": "bounce"} if kind == "bounce" else {}
        events.append(
            sg_event(
                kind,
                serial[0],
                delivery_id=delivery_id,
                email=RECIPIENTS[delivery_id],
                timestamp=int(when.timestamp()),
                **extra,
            )
        )
    return events


def live_only(monkeypatch: pytest.MonkeyPatch, call):  # type: ignore[no-untyped-def]
    """`call()` with no summary read: every number counted from the deliveries and events."""
    with monkeypatch.context() as patch:
        patch.setattr(result_days, "_done_days", lambda session, since: [])
        return call()


def assert_same_results(app: App, monkeypatch: pytest.MonkeyPatch, rng: random.Random) -> None:
    periods = [None, FIRST_DAY, FIRST_DAY + timedelta(days=rng.randrange(DAYS), hours=rng.randrange(24))]
    for since in periods:
        summarized = (step_stats(app, since=since), sends_per_day(app, since=since))
        live = live_only(
            monkeypatch, lambda since=since: (step_stats(app, since=since), sends_per_day(app, since=since))
        )
        assert summarized == live, f"since {since}"
    assert step_stats(app, campaign="kap-intro") == live_only(
        monkeypatch, lambda: step_stats(app, campaign="kap-intro")
    )


def done_days(app: App) -> int:
    with reading(app.engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(m.ResultDay)
                .where(m.ResultDay.state == m.ResultDayState.DONE)
            )
            or 0
        )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_summaries_equal_live_counts_through_late_changes(
    app: App, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    ids, sent = sent_history(app, rng, 40)
    serial = [0]
    now = FIRST_DAY + timedelta(days=2)
    forgotten = 0
    while now < FIRST_DAY + timedelta(days=DAYS + 10):
        process_sendgrid_events(app, some_events(rng, sent, serial, rng.randrange(1, 15)), now)
        if rng.random() < 0.5:
            unsubscribe(app, rng.choice(ids), now, source="unsubscribe link", stream="kap-intro")
        if rng.random() < 0.1 and forgotten < 3:
            person = rng.choice(ids)
            with reading(app.engine) as session:
                address = session.scalar(select(m.Subscriber.email).where(m.Subscriber.id == person))
            if address:
                people.forget(app, address, now)
                forgotten += 1
        result_days.summarize_days(app, now)
        assert_same_results(app, monkeypatch, rng)
        now += timedelta(hours=rng.randrange(6, 60))
    assert done_days(app) >= DAYS - 2, "the settled days were summarized"


def test_a_late_event_makes_its_day_live_again_until_it_is_summarized_again(app: App) -> None:
    ids, sent = sent_history(app, random.Random(9), 5)
    now = FIRST_DAY + timedelta(days=DAYS + 5)
    assert result_days.summarize_days(app, now) > 0
    days_before = done_days(app)
    delivery_id, when = min(sent.items(), key=lambda item: item[1])
    process_sendgrid_events(
        app, [sg_event("spamreport", 1, delivery_id=delivery_id, email=RECIPIENTS[delivery_id])], now
    )
    assert done_days(app) == days_before - 1
    with reading(app.engine) as session:
        state = session.get(m.ResultDay, day_start(when))
        assert state is not None and state.state == m.ResultDayState.DIRTY
    assert result_days.summarize_days(app, now) == 1
    assert done_days(app) == days_before
    assert sum(row.complained for row in step_stats(app)) == 1


def test_two_summarizers_at_once_count_each_day_once(app: App) -> None:
    ids, sent = sent_history(app, random.Random(4), 30)
    now = FIRST_DAY + timedelta(days=DAYS + 5)
    done: list[int] = []
    workers = [
        threading.Thread(target=lambda: done.append(result_days.summarize_days(app, now))) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = done_days(app)
    assert sum(done) == total, "each day summarized by exactly one of them"
    with reading(app.engine) as session:
        summed = session.scalar(select(func.sum(m.ResultCount.sent)))
        per_day = session.execute(
            select(m.ResultCount.day, m.ResultCount.stream, m.ResultCount.step_key, func.count())
            .group_by(m.ResultCount.day, m.ResultCount.stream, m.ResultCount.step_key)
            .having(func.count() > 1)
        ).all()
    assert per_day == []
    last = day_start(now - result_days.SETTLED_AFTER)
    assert summed == sum(1 for moment in sent.values() if moment < last)
