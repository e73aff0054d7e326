"""A reader's limit under two workers claiming at once, on PostgreSQL (SQLite has one writer,
so its claims never overlap).

A newsletter and a series email are due to the same reader at the same moment. Worker A
claims the newsletter and has not committed yet; worker B, claiming at that moment,
cannot see A's claim, so the limit it reads says the reader had nothing today. B must
leave the reader to a later claim (which sees A's email and moves the series email to
the next day), not claim a second email for the day.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture.app import App
from nurture.newsletters import schedule
from nurture.sending.claim_rows import Claim
from nurture.sending.planning import zone
from nurture.sending.sendpass import SendingPass
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import at, make_app
from tests.support.newsletters import BEFORE, add_people, newsletter_file

START = at("2026-12-01 14:00")  # 09:00 in New York: the send window opens


@pytest.fixture
def app(tmp_path: Path, postgres_url: str) -> App:
    return make_app(tmp_path, database_url=postgres_url)


def claim(worker: SendingPass) -> list[Claim]:
    """One claim round of `worker`, committed."""
    with transaction(worker.engine) as session:
        return worker.claimer.claim(session, 10)


@pytest.mark.parametrize("frequency", [m.Frequency.DAILY, m.Frequency.WEEKLY])
def test_a_claim_in_flight_on_another_worker_keeps_the_reader_within_their_limit(
    app: App, frequency: m.Frequency
) -> None:
    assert app.config.delivery.max_emails_per_day == 1
    (reader,) = add_people(
        app, "America/New_York", 1, START - timedelta(days=1), prefix="r", enroll_them=True
    )
    with transaction(app.engine) as session:
        session.get(m.Subscriber, reader).frequency = frequency  # type: ignore[union-attr]
    practice_time = START.astimezone(zone(app.config.delivery.default_timezone)).strftime("%Y-%m-%d %H:%M")
    newsletter_id = schedule(app, newsletter_file(app), practice_time, "practice", BEFORE)

    a, b = SendingPass(app, START, worker="a"), SendingPass(app, START, worker="b")
    pool = ThreadPoolExecutor(1)
    with transaction(app.engine) as session:
        # A's round is full with newsletters (claimed first): it reads no series this round.
        first = a.claimer.claim(session, 1)
        assert [c.newsletter_id for c in first] == [newsletter_id]
        second = pool.submit(claim, b)
        time.sleep(0.5)  # B reads the limit while A's claim is not committed
    assert second.result(timeout=30) == []
    pool.shutdown()

    # The next claim sees A's email: the series email waits for the reader's next day (or week).
    assert claim(SendingPass(app, START, worker="c")) == []
    with transaction(app.engine) as session:
        streams = session.scalars(select(m.Delivery.stream).where(m.Delivery.subscriber_id == reader)).all()
        due = session.scalar(select(m.Enrollment.next_due_at).where(m.Enrollment.subscriber_id == reader))
    assert streams == [f"newsletter:{newsletter_id}"]
    assert due is not None and due >= START + (
        timedelta(days=7) if frequency == m.Frequency.WEEKLY else timedelta(hours=19)
    )
