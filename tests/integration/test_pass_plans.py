"""The pass's statements by id find their rows by id (or by person), whatever the planner's
statistics say about statuses.

Statistics from before a pass count few claimed rows and no recent ones; a plan through
the (status, ...) indexes then reads every row claimed since and, on PostgreSQL, every
dead version that a status change left in those indexes until a vacuum. A 1,000,000-email
pass read the whole deliveries table once per batch that way (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import pytest
from sqlalchemy import update

from nurture.app import App
from nurture.providers.base import Outcome
from nurture.sending.claim_rows import Claim
from nurture.sending.eligibility import DailyCap, recheck
from nurture.sending.evidence import mark_submitted
from nurture.sending.outcomes import PendingOutcomes
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import at
from tests.support.plans import history_then_a_batch, plans

NOW = at("2026-12-01 15:00")


@pytest.fixture
def database_url(both_stores: str) -> str:
    return both_stores


def test_the_handed_over_mark_finds_its_rows_by_id(app: App) -> None:
    _, batch = history_then_a_batch(app, NOW)
    with plans(app.engine) as seen, transaction(app.engine) as session:
        mark_submitted(session, batch, "sendgrid", NOW)
    assert len(seen) == 1, seen
    assert "ix_deliveries_status" not in seen[0], seen[0]
    assert ("PRIMARY KEY" if app.engine.dialect.name == "sqlite" else "pk_deliveries") in seen[0], seen[0]


def test_the_daily_cap_reads_each_persons_recent_emails_by_person(app: App) -> None:
    people, _ = history_then_a_batch(app, NOW)
    with plans(app.engine) as seen, transaction(app.engine) as session:
        DailyCap(session, dict.fromkeys(people, "America/New_York"), NOW, limit=1)
    assert len(seen) == 1, seen
    assert "ix_deliveries_status" not in seen[0], seen[0]
    assert "subscriber" in seen[0], seen[0]


def test_the_weekly_limit_reads_each_persons_recent_emails_by_person(app: App) -> None:
    people, batch = history_then_a_batch(app, NOW)
    with transaction(app.engine) as session:
        session.execute(update(m.Subscriber).values(frequency=m.Frequency.WEEKLY))
    with plans(app.engine) as seen, transaction(app.engine) as session:
        recheck(session, people, (), now=NOW, kind="series", delivery_ids=batch)
    assert len(seen) == 1, seen  # the recheck itself reads subscribers; this is the weekly limit's
    assert "ix_deliveries_status" not in seen[0], seen[0]
    assert "subscriber" in seen[0], seen[0]


def test_an_unknown_outcome_is_noted_on_its_claims_found_by_id(app: App) -> None:
    people, batch = history_then_a_batch(app, NOW)
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
