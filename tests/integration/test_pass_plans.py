"""The pass's statements by id find their rows by id (or by person), whatever the planner's
statistics say about statuses.

Statistics from before a pass count few claimed rows and no recent ones; a plan through
the (status, ...) indexes then reads every row claimed since and, on PostgreSQL, every
dead version that a status change left in those indexes until a vacuum. A 1,000,000-email
pass read the whole deliveries table once per batch that way (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, update

from nurture.app import App
from nurture.providers.base import Outcome
from nurture.sending.claim_rows import Claim
from nurture.sending.eligibility import DailyCap, recheck
from nurture.sending.evidence import mark_submitted
from nurture.sending.outcomes import PendingOutcomes
from nurture.store import models as m
from nurture.store.db import refresh_statistics, transaction
from tests.support.factories import active_subscribers, at

NOW = at("2026-12-01 15:00")
PEOPLE = 1_000
PAST_EMAILS = 12  # per person, all sent long ago


@pytest.fixture
def database_url(both_stores: str) -> str:
    return both_stores


@contextmanager
def plans(engine: Engine, kinds: tuple[str, ...] = ("SELECT", "UPDATE")) -> Iterator[list[str]]:
    """Every statement of `kinds` on deliveries inside is explained instead of run; yields the plans."""
    seen: list[str] = []
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "

    def wanted(statement: str) -> bool:
        return statement.lstrip().upper().startswith(kinds) and "deliveries" in statement

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> tuple[str, Any]:
        return (explain + statement if wanted(statement) else statement), parameters

    def after(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(explain):
            seen.append(" | ".join(str(row[-1]) for row in cursor.fetchall()))

    event.listen(engine, "before_cursor_execute", before, retval=True)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def history_then_a_batch(app: App) -> tuple[list[int], list[int]]:
    """People with a long sent history, analyzed as it is; then one batch claimed now, as a
    pass claims it: newer than the statistics. Returns (people, the batch's delivery ids)."""
    people = active_subscribers(app, PEOPLE, NOW - timedelta(days=400))
    with transaction(app.engine) as session:
        session.execute(
            insert(m.Delivery),
            [
                {
                    "subscriber_id": person,
                    "stream": f"old-series-{n}",
                    "step": 1,
                    "step_key": "first",
                    "status": m.DeliveryStatus.SENT,
                    "claimed_at": NOW - timedelta(days=30 + n),
                    "finished_at": NOW - timedelta(days=30 + n),
                }
                for person in people
                for n in range(PAST_EMAILS)
            ],
        )
    refresh_statistics(app.engine, ("deliveries",))
    with transaction(app.engine) as session:
        session.execute(
            insert(m.Delivery),
            [
                {
                    "subscriber_id": person,
                    "stream": "kap-intro",
                    "step": 1,
                    "step_key": "what-kap-is",
                    "status": m.DeliveryStatus.CLAIMED,
                    "claimed_at": NOW,
                }
                for person in people
            ],
        )
        batch = session.scalars(
            select(m.Delivery.id).where(m.Delivery.status == m.DeliveryStatus.CLAIMED)
        ).all()
    assert len(batch) == PEOPLE
    return people, list(batch)


def test_the_handed_over_mark_finds_its_rows_by_id(app: App) -> None:
    _, batch = history_then_a_batch(app)
    with plans(app.engine) as seen, transaction(app.engine) as session:
        mark_submitted(session, batch, "sendgrid", NOW)
    assert len(seen) == 1, seen
    assert "ix_deliveries_status" not in seen[0], seen[0]
    assert ("PRIMARY KEY" if app.engine.dialect.name == "sqlite" else "pk_deliveries") in seen[0], seen[0]


def test_the_daily_cap_reads_each_persons_recent_emails_by_person(app: App) -> None:
    people, _ = history_then_a_batch(app)
    with plans(app.engine) as seen, transaction(app.engine) as session:
        DailyCap(session, dict.fromkeys(people, "America/New_York"), NOW, limit=1)
    assert len(seen) == 1, seen
    assert "ix_deliveries_status" not in seen[0], seen[0]
    assert "subscriber" in seen[0], seen[0]


def test_the_weekly_limit_reads_each_persons_recent_emails_by_person(app: App) -> None:
    people, batch = history_then_a_batch(app)
    with transaction(app.engine) as session:
        session.execute(update(m.Subscriber).values(frequency=m.Frequency.WEEKLY))
    with plans(app.engine) as seen, transaction(app.engine) as session:
        recheck(session, people, (), now=NOW, kind="series", delivery_ids=batch)
    assert len(seen) == 1, seen  # the recheck itself reads subscribers; this is the weekly limit's
    assert "ix_deliveries_status" not in seen[0], seen[0]
    assert "subscriber" in seen[0], seen[0]


def test_an_unknown_outcome_is_noted_on_its_claims_found_by_id(app: App) -> None:
    people, batch = history_then_a_batch(app)
    outcomes = PendingOutcomes(NOW)
    claims = [
        Claim(delivery, person, "", None, "kap-intro", 1)
        for delivery, person in zip(batch, people, strict=True)
    ]
    outcomes.add(claims, [Outcome(str(claim.delivery_id), "unknown", error="timed out") for claim in claims])
    # Only the UPDATE is explained: the events that may have settled them are then read for real.
    with plans(app.engine, ("UPDATE",)) as seen, transaction(app.engine) as session:
        outcomes.write(session)
    assert len(seen) == 1, seen
    assert "ix_deliveries_status" not in seen[0], seen[0]
    assert ("PRIMARY KEY" if app.engine.dialect.name == "sqlite" else "pk_deliveries") in seen[0], seen[0]
