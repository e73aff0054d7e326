"""What the store holds after a fault trial (tests/support/chaos.py), read for its invariants:
whose each email was, what is due, who is suppressed, and who got more than their limit."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.sending.planning import local_date, zone
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.chaos_owner import OWNER, SERIES

Email = tuple[str, str, int]  # (address, stream, step): one email to one person
WEEK = timedelta(days=7)
ZONE = "America/New_York"  # every reader's (active_subscribers)
# Who is enrolled in which series (everyone enrolled is due the series' first email).
ENROLLED = select(m.Subscriber.email, m.Enrollment.campaign).join(
    m.Enrollment, m.Enrollment.subscriber_id == m.Subscriber.id
)


def emails_by_key(app: App) -> dict[str, Email]:
    """Every delivery's message key -> the email it is (the owner's: under OWNER)."""
    with transaction(app.engine) as session:
        rows = session.execute(
            select(m.Delivery.message_key, m.Subscriber.email, m.Delivery.stream, m.Delivery.step).outerjoin(
                m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id
            )
        ).all()
    return {key: (email or OWNER, stream, step) for key, email, stream, step in rows if key}


def first_email_versions(app: App) -> dict[str, int]:
    """The message key of each first email of the series -> the version it was claimed under."""
    with transaction(app.engine) as session:
        rows = session.execute(
            select(m.Delivery.message_key, m.Delivery.series_version).where(
                m.Delivery.stream == SERIES, m.Delivery.step == 1, m.Delivery.message_key.is_not(None)
            )
        ).all()
    return {key: version or 1 for key, version in rows}


def emails_of(session: Session, condition: ColumnElement[bool]) -> set[Email]:
    return {
        (email, stream, step)
        for email, stream, step in session.execute(
            select(m.Subscriber.email, m.Delivery.stream, m.Delivery.step)
            .join(m.Delivery, m.Delivery.subscriber_id == m.Subscriber.id)
            .where(condition)
        ).all()
    }


def over_limit(received: dict[Email, list[datetime]], weekly: Iterable[str], per_day: int) -> int:
    """Readers who got more than they agreed to: a weekly reader two emails within seven days,
    anyone else more than `per_day` on one local day."""
    weekly_addresses = set(weekly)
    moments: dict[str, list[datetime]] = defaultdict(list)
    for (address, _stream, _step), times in received.items():
        moments[address] += times
    tz = zone(ZONE)
    over = 0
    for address, times in moments.items():
        times.sort()
        if address in weekly_addresses:
            over += any(later - earlier < WEEK for earlier, later in zip(times, times[1:], strict=False))
        else:
            over += max(Counter(local_date(t, tz) for t in times).values()) > per_day
    return over


def misapplied(
    app: App, genuine: set[tuple[str, str]], bounced: set[str], unsubscribed: set[str], erased: set[str]
) -> int:
    """Events tied to a delivery whose (key, recipient) no genuine event named, and readers
    suppressed other than by their own bounce or unsubscribe (an erased reader is neither)."""
    # An erased reader's rows name nobody now (as the probe's, to the owner).
    genuine = genuine | {(key, OWNER) for key, address in genuine if address in erased}
    bad = 0
    with transaction(app.engine) as session:
        tied = session.execute(
            select(m.Delivery.message_key, m.Subscriber.email)
            .join(m.ProviderEvent, m.ProviderEvent.delivery_id == m.Delivery.id)
            .outerjoin(m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id)
            .distinct()
        ).all()
        for key, email in tied:
            if (key, email or OWNER) not in genuine:
                bad += 1
        suppressed = set(
            session.scalars(
                select(m.Subscriber.email).where(m.Subscriber.status != m.SubscriberStatus.ACTIVE)
            )
        )
    bad += len((suppressed ^ (bounced | unsubscribed)) - erased)
    return bad
