"""Two workers claiming at once, on PostgreSQL (SQLite has one writer, so its claims never
overlap): a reader's limit (against a newsletter, and against a re-permission email), a
newsletter's zone finished while another worker gives claims back, and an unsubscribe
made while a claim for that reader is open.

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
from nurture.audience.signup import unsubscribe
from nurture.newsletters import schedule
from nurture.sending.claim_rows import Claim
from nurture.sending.deliveries import release_claims
from nurture.sending.newsletter_zones import finish_newsletters
from nurture.sending.planning import zone
from nurture.sending.sendpass import SendingPass, send_due
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import at, make_app
from tests.support.newsletters import BEFORE, add_people, newsletter_file

START = at("2026-12-01 14:00")  # 09:00 in New York: the send window opens


@pytest.fixture
def app(tmp_path: Path, postgres_url: str) -> App:
    return make_app(tmp_path, database_url=postgres_url)


def newsletter_due_at_start(app: App) -> int:
    """A newsletter scheduled for START, given in the practice's own zone."""
    practice_time = START.astimezone(zone(app.config.delivery.default_timezone)).strftime("%Y-%m-%d %H:%M")
    return schedule(app, newsletter_file(app), practice_time, "practice", BEFORE)


def claim(worker: SendingPass, room: int = 10) -> list[Claim]:
    """One claim round of `worker`, committed."""
    with transaction(worker.engine) as session:
        return worker.claimer.claim(session, room)


def claim_beside(app: App) -> tuple[list[Claim], list[Claim]]:
    """Worker A's round of one claim, and what worker B claims while A's is not committed."""
    a, b = SendingPass(app, START, worker="a"), SendingPass(app, START, worker="b")
    with ThreadPoolExecutor(1) as pool:
        with transaction(app.engine) as session:
            first = a.claimer.claim(session, 1)
            second = pool.submit(claim, b)
            time.sleep(0.5)  # B reads the limit while A's claim is not committed
        return first, second.result(timeout=30)


def streams_of(app: App, subscriber_id: int) -> list[str]:
    """The streams of every email claimed for this reader."""
    with transaction(app.engine) as session:
        return list(
            session.scalars(select(m.Delivery.stream).where(m.Delivery.subscriber_id == subscriber_id))
        )


def give_back(app: App, given: list[Claim]) -> int:
    """Worker Y, stopped before sending, gives its claims back (as on SIGTERM)."""
    with transaction(app.engine) as session:
        return release_claims(session, [c.delivery_id for c in given], START, worker="y")


def sent_to(app: App, newsletter_id: int) -> list[int]:
    """Who has the newsletter, sent."""
    with transaction(app.engine) as session:
        return sorted(
            session.scalars(
                select(m.Delivery.subscriber_id).where(
                    m.Delivery.newsletter_id == newsletter_id, m.Delivery.status == m.DeliveryStatus.SENT
                )
            )
        )


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
    newsletter_id = newsletter_due_at_start(app)

    first, second = claim_beside(app)
    # A's round is full with newsletters (claimed first): it reads no series this round.
    assert [c.newsletter_id for c in first] == [newsletter_id]
    assert second == []

    # The next claim sees A's email: the series email waits for the reader's next day (or week).
    assert claim(SendingPass(app, START, worker="c")) == []
    with transaction(app.engine) as session:
        due = session.scalar(select(m.Enrollment.next_due_at).where(m.Enrollment.subscriber_id == reader))
    assert streams_of(app, reader) == [f"newsletter:{newsletter_id}"]
    assert due is not None and due >= START + (
        timedelta(days=7) if frequency == m.Frequency.WEEKLY else timedelta(hours=19)
    )


def test_a_zone_finished_while_another_worker_gives_its_claims_back_is_read_again(app: App) -> None:
    """Worker Y has claimed the newsletter for everyone in the zone and is stopped (SIGTERM)
    before sending it: it gives its claims back. Worker W, at that moment, finds nobody left
    in the zone and writes it down as finished. Whatever the order of their commits, the
    zone must not stay finished without those readers: the next pass sends it to them.
    Found by the fault trials (seed 3801): four readers never got the newsletter."""
    readers = add_people(app, "America/New_York", 3, START - timedelta(days=1), prefix="n")
    newsletter_id = newsletter_due_at_start(app)
    y = SendingPass(app, START, worker="y")
    given = claim(y, 3)  # a full round: Y has not read the zone to its end
    assert sorted(c.subscriber_id for c in given) == readers

    w = SendingPass(app, START, worker="w")
    pool = ThreadPoolExecutor(1)
    with transaction(app.engine) as session:
        assert w.claimer.claim(session, 10) == []  # nobody left: W finishes the zone
        released = pool.submit(give_back, app, given)
        time.sleep(0.5)  # Y gives back while W's finish is not committed
    assert released.result(timeout=30) == 3
    pool.shutdown()

    later = send_due(app, START + timedelta(hours=1))
    assert later.sent == 3
    assert sent_to(app, newsletter_id) == readers


def test_a_newsletter_marked_sent_while_another_worker_gives_its_claims_back_goes_on(app: App) -> None:
    """The same, one step later: every zone is finished, and a pass ending marks the newsletter
    sent just as worker Y gives its claims back. It must go on sending to those readers."""
    readers = add_people(app, "America/New_York", 3, START - timedelta(days=1), prefix="n")
    newsletter_id = newsletter_due_at_start(app)
    given = claim(SendingPass(app, START, worker="y"), 3)
    assert claim(SendingPass(app, START, worker="w")) == []  # the zone is finished

    pool = ThreadPoolExecutor(1)
    with transaction(app.engine) as session:
        finish_newsletters(session, {newsletter_id}, START)  # W's pass ends
        released = pool.submit(give_back, app, given)
        time.sleep(0.5)
    assert released.result(timeout=30) == 3
    pool.shutdown()

    assert send_due(app, START + timedelta(hours=1)).sent == 3
    assert sent_to(app, newsletter_id) == readers


@pytest.mark.parametrize("frequency", [m.Frequency.DAILY, m.Frequency.WEEKLY])
def test_a_series_claim_in_flight_keeps_the_reader_from_a_re_permission_email_the_same_day(
    tmp_path: Path, postgres_url: str, frequency: m.Frequency
) -> None:
    """The same limit between a series email and a "still want these?" email (sunset on): A
    claims the series email and has not committed; B, claiming asks at that moment, must
    leave the reader to a later claim, which sees A's email and keeps the ask for another day."""
    app = make_app(tmp_path, database_url=postgres_url, **{"sunset.enabled": True})
    (reader,) = add_people(
        app, "America/New_York", 1, START - timedelta(days=1), prefix="q", enroll_them=True
    )
    with transaction(app.engine) as session:
        session.get(m.Subscriber, reader).frequency = frequency  # type: ignore[union-attr]
        session.add(m.RepermissionAsk(subscriber_id=reader, round=1, created_at=START, quiet_since=START))

    first, second = claim_beside(app)
    assert [c.stream for c in first] == ["kap-intro"]  # a full round: A reads no asks
    assert second == []

    assert claim(SendingPass(app, START, worker="c")) == []
    assert streams_of(app, reader) == ["kap-intro"]


def test_an_unsubscribe_during_a_claim_waits_for_it_and_stops_the_email_at_the_last_check(app: App) -> None:
    """A reader unsubscribes while a worker's claim round for them is not committed. The
    claim holds the reader's row, so the unsubscribe waits for that commit (no deadlock,
    nothing lost), and the last check before sending sees it: the email is skipped."""
    (reader,) = add_people(
        app, "America/New_York", 1, START - timedelta(days=1), prefix="u", enroll_them=True
    )
    worker = SendingPass(app, START, worker="a")
    pool = ThreadPoolExecutor(1)
    with transaction(app.engine) as session:
        claims = worker.claimer.claim(session, 10)
        assert [c.subscriber_id for c in claims] == [reader]
        leaving = pool.submit(unsubscribe, app, reader, START, source="test")
        time.sleep(0.5)
        assert not leaving.done()  # the reader's row is the claim's until it commits
    assert leaving.result(timeout=30) is True
    pool.shutdown()

    batch, ready = worker._build(claims)
    worker._flush()
    assert batch is None and ready == []
    with transaction(app.engine) as session:
        row = session.scalars(select(m.Delivery).where(m.Delivery.subscriber_id == reader)).one()
        status = session.scalar(select(m.Subscriber.status).where(m.Subscriber.id == reader))
    assert (row.status, status) == (m.DeliveryStatus.SKIPPED, m.SubscriberStatus.UNSUBSCRIBED)
