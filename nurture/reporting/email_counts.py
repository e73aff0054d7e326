"""The SQL that counts how emails did, shared by the live Results and the daily summaries.

`counts_query` gives one row per email (stream, step key, series version) with the counts
of its sent deliveries (see nurture.reporting.stats for what each count means);
`sends_query` the sends per quarter hour. Both take `among`, a query of the ids of the
sent deliveries to count: the Results pages count a period, nurture.reporting.result_days one day.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, and_, case, cast, exists, func, literal, or_, select, true
from sqlalchemy.orm import Session, aliased

from nurture.store import models as m
from nurture.store.db import is_postgres

BOUNCE_KINDS = m.BOUNCE_KINDS
COUNTS = ("sent", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed")


def had_event(name: str) -> Any:
    """Whether the delivery has had an event of the kind this count names. Read from the bits
    set as each event is stored (Delivery.event_bits), which outlive the events the retention
    pass deletes: counting a period reads no event."""
    return m.Delivery.event_bits.op("&")(m.EVENT_BITS[name]) != 0


def event_flag(name: str) -> Any:
    """1 if the delivery has had an event of the kind this count names, else 0 (repeats count once)."""
    return case((had_event(name), 1), else_=0)


def web_unsubscribes(among: Any | None = None) -> Any:
    """Deliveries credited with a web unsubscribe: the person's latest email of that stream before it.

    `among`: a query of the sent delivery ids wanted; without it every sent delivery."""
    delivery = aliased(m.Delivery, name="credited")
    later = aliased(m.Delivery, name="later")
    consent = m.ConsentEvent
    named = literal("from ") + delivery.stream
    detail_matches = or_(
        consent.detail == named,
        func.substr(consent.detail, 1, func.length(delivery.stream) + 6) == named + literal(";"),
    )
    return (
        select(delivery.id.label("delivery_id"))
        .join(
            consent,
            and_(
                consent.subscriber_id == delivery.subscriber_id,
                consent.kind == m.ConsentKind.UNSUBSCRIBE,
                consent.occurred_at >= delivery.claimed_at,
                detail_matches,
            ),
        )
        .where(
            delivery.status == m.DeliveryStatus.SENT,
            true() if among is None else delivery.id.in_(among),
            ~exists().where(
                later.subscriber_id == delivery.subscriber_id,
                later.stream == delivery.stream,
                later.status == m.DeliveryStatus.SENT,
                later.claimed_at > delivery.claimed_at,
                later.claimed_at <= consent.occurred_at,
            ),
        )
        .distinct()
        .subquery("web_unsubscribes")
    )


def quarter_hours(session: Session) -> tuple[Any, Any]:
    """(hour bucket, quarter of the hour) of claimed_at, in SQL, per dialect.

    Days are counted in the practice's zone. The store keeps UTC, and every real
    zone's offset is a multiple of 15 minutes, so UTC quarter-hours map exactly
    onto local days (half-hour zones such as Asia/Kolkata included).
    """
    column = m.Delivery.claimed_at
    if is_postgres(session):
        return func.date_trunc("hour", column), cast(func.extract("minute", column), Integer).op("/")(15)
    # SQLite keeps a datetime as text, "YYYY-MM-DD HH:MM:SS.ffffff" (SQLAlchemy's format):
    # its first 13 characters are strftime's "%Y-%m-%d %H", read without parsing the date
    # (50,000 live sends: 49 ms instead of 75).
    return func.substr(column, 1, 13), cast(func.substr(column, 15, 2), Integer).op("/")(15)


def counts_query(among: Any | None) -> Any:
    """One row per email sent: stream, step_key, series_version, step, newsletter_id and COUNTS."""
    delivery = m.Delivery
    web = web_unsubscribes(among)
    unsubscribed = case((or_(had_event("unsubscribed"), web.c.delivery_id.is_not(None)), 1), else_=0)
    query = (
        select(
            delivery.stream,
            delivery.step_key,
            delivery.series_version,
            func.max(delivery.step).label("step"),
            func.max(delivery.newsletter_id).label("newsletter_id"),
            func.count(delivery.id).label("sent"),
            *(func.coalesce(func.sum(event_flag(name)), 0).label(name) for name in COUNTS[1:-1]),
            func.coalesce(func.sum(unsubscribed), 0).label("unsubscribed"),
        )
        .outerjoin(web, web.c.delivery_id == delivery.id)
        .group_by(delivery.stream, delivery.step_key, delivery.series_version)
    )
    return _among(query, among)


def sends_query(session: Session, among: Any | None) -> Any:
    """Sent deliveries per (hour, quarter of the hour, newsletter or not, stream), in UTC."""
    delivery = m.Delivery
    hour, quarter = quarter_hours(session)
    is_newsletter = case((delivery.newsletter_id.is_(None), 0), else_=1)
    query = select(
        hour.label("hour"),
        quarter.label("quarter"),
        is_newsletter.label("newsletter"),
        delivery.stream,
        func.count(delivery.id).label("sent"),
    ).group_by(hour, quarter, is_newsletter, delivery.stream)
    return _among(query, among)


def _among(query: Any, among: Any | None) -> Any:
    # `among` selects sent deliveries only. Given it, the status is not repeated here: SQLite
    # would then walk the status index over all of history instead of seeking the ids.
    if among is None:
        return query.where(m.Delivery.status == m.DeliveryStatus.SENT)
    return query.where(m.Delivery.id.in_(among))
