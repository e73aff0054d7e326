"""Results kept per day, so the Results pages stay fast after years of history.

Counting how each email did means reading every sent delivery of the period and each
one's events; with two million past emails the 30-day Results page took seconds
(benchmarks/bench_history.py). So each UTC day of sends, once `SETTLED_AFTER` has
passed, is summarized once: its per-email counts (result_counts: the same numbers
`email_counts.counts_query` gives) and its sends per quarter hour (result_sends). The
Results pages add the summarized days of the period to a live count of the rest: the
recent days, a partial first day, and any day not summarized or marked dirty.

A summary stays true because whatever changes a past email's numbers marks its day
dirty in the same transaction (nurture.store.summaries): a provider event for one of
its deliveries, a web unsubscribe credited to one of its emails, a person forgotten.
The retention pass changes no count: each delivery keeps the kinds of its events as
bits (deliveries.event_bits) after the events themselves are deleted.

Several processes may summarize at once. A day is claimed first, in its own
transaction (its result_days row inserted as "working", or a dirty one switched to
"working"); the counts are then written, and the day set "done" only if it is still
"working": a change that marked it dirty meanwhile makes the summarizer throw its work
away, and the day is summarized again by the next upkeep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, true, update
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.reporting.email_counts import COUNTS, counts_query, sends_query
from nurture.store import models as m
from nurture.store.db import dialect_name, insert_on_conflict, reading, transaction
from nurture.store.summaries import day_start

log = logging.getLogger(__name__)

# A day is summarized once this long has passed since it ended: by then the provider has
# reported almost everything (SendGrid retries events for 24 hours). Anything later marks
# the day dirty and it is summarized again.
SETTLED_AFTER = timedelta(days=3)
DAYS_PER_RUN = 31  # a first run over years of history takes a few upkeeps
ABANDONED_AFTER = timedelta(hours=1)  # a "working" day older than this was left by a crash
DAY = timedelta(days=1)


@dataclass
class CountRow:
    """One email's counts, as `counts_query` returns them."""

    stream: str
    step_key: str
    series_version: int | None
    step: int
    newsletter_id: int | None
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0


@dataclass(frozen=True)
class Split:
    """A period of Results, split: `live` selects the delivery ids still to count from the
    deliveries; `counts` and `sends` are the summarized days' numbers."""

    live: Any
    counts: list[CountRow]
    sends: list[tuple[datetime, bool, str, int]]  # (quarter start, newsletter?, stream, sent)


# ---------------------------------------------------------------- reading


def _done_days(session: Session, since: datetime | None) -> list[datetime]:
    query = select(m.ResultDay.day).where(m.ResultDay.state == m.ResultDayState.DONE)
    if since is not None:
        query = query.where(m.ResultDay.day >= since)  # whole days inside the period only
    return sorted(session.scalars(query))


def _ranges(days: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive days as [start, end) ranges."""
    ranges: list[tuple[datetime, datetime]] = []
    for day in days:
        if ranges and ranges[-1][1] == day:
            ranges[-1] = (ranges[-1][0], day + DAY)
        else:
            ranges.append((day, day + DAY))
    return ranges


def split_period(session: Session, since: datetime | None, campaign: str | None) -> Split:
    """What to count live and what is summarized, for sends claimed at or after `since`
    (all time when None), of one campaign's stream or of all."""
    delivery = m.Delivery
    days = _done_days(session, since)
    live = select(delivery.id).where(delivery.status == m.DeliveryStatus.SENT)
    if since is not None:
        live = live.where(delivery.claimed_at >= since)
    if campaign is not None:
        live = live.where(delivery.stream == campaign)
    if not days:
        return Split(live if since is not None or campaign is not None else None, [], [])
    # The times not summarized, as ranges the (status, claimed_at) index can seek to (the
    # status repeated in each, or SQLite walks the index over all history).
    gaps: list[tuple[datetime | None, datetime | None]] = []
    edge = since
    for start, end in _ranges(days):
        if edge is None or start > edge:
            gaps.append((edge, start))
        edge = end
    gaps.append((edge, None))
    live = select(delivery.id).where(
        or_(
            *(
                and_(
                    delivery.status == m.DeliveryStatus.SENT,
                    true() if low is None else delivery.claimed_at >= low,
                    true() if high is None else delivery.claimed_at < high,
                )
                for low, high in gaps
            )
        )
    )
    if campaign is not None:
        live = live.where(delivery.stream == campaign)
    in_days = m.ResultCount.day.in_(days)
    counts_query_ = select(
        m.ResultCount.stream,
        m.ResultCount.step_key,
        m.ResultCount.series_version,
        func.max(m.ResultCount.step),
        func.max(m.ResultCount.newsletter_id),
        *(func.sum(getattr(m.ResultCount, name)) for name in COUNTS),
    ).where(in_days)
    sends = select(
        m.ResultSends.quarter_start, m.ResultSends.newsletter, m.ResultSends.stream, m.ResultSends.sent
    ).where(m.ResultSends.day.in_(days))
    if campaign is not None:
        counts_query_ = counts_query_.where(m.ResultCount.stream == campaign)
        sends = sends.where(m.ResultSends.stream == campaign)
    counts_query_ = counts_query_.group_by(
        m.ResultCount.stream, m.ResultCount.step_key, m.ResultCount.series_version
    )
    counts = [
        CountRow(stream, key, version, int(step), newsletter, *(int(value or 0) for value in values))
        for stream, key, version, step, newsletter, *values in session.execute(counts_query_)
    ]
    return Split(
        live,
        counts,
        [
            (start, bool(newsletter), stream, int(sent))
            for start, newsletter, stream, sent in session.execute(sends)
        ],
    )


def merged(live_rows: Sequence[Any], counts: Sequence[CountRow]) -> list[CountRow]:
    """Live rows and summarized rows of the same email added together."""
    by_email: dict[tuple[str, str, int | None], CountRow] = {}
    for row in [*live_rows, *counts]:
        key = (row.stream, row.step_key, row.series_version)
        found = by_email.get(key)
        if found is None:
            found = by_email[key] = CountRow(row.stream, row.step_key, row.series_version, 0, None)
        found.step = max(found.step, int(row.step or 0))
        if row.newsletter_id is not None:
            found.newsletter_id = max(found.newsletter_id or 0, int(row.newsletter_id))
        for name in COUNTS:
            setattr(found, name, getattr(found, name) + int(getattr(row, name) or 0))
    return list(by_email.values())


# ---------------------------------------------------------------- summarizing


def _bucket_start(hour: Any, quarter: int) -> datetime:
    if isinstance(hour, datetime):
        start = hour.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
    else:
        start = datetime.strptime(str(hour), "%Y-%m-%d %H").replace(tzinfo=UTC)
    return start + timedelta(minutes=15 * int(quarter))


def _claim(app: App, day: datetime, now: datetime) -> bool:
    """Claim `day` for summarizing (new, dirty, or abandoned by a crash); False: someone else has it."""
    with transaction(app.engine) as session:
        row = {"day": day, "state": m.ResultDayState.WORKING, "summarized_at": now}
        claimed = session.execute(
            insert_on_conflict(m.ResultDay.__table__, dialect_name(session))
            .values(row)
            .on_conflict_do_nothing(index_elements=["day"])
            .returning(m.ResultDay.day)
        ).first()
        if claimed is not None:
            return True
        again = session.execute(
            update(m.ResultDay)
            .where(
                m.ResultDay.day == day,
                or_(
                    m.ResultDay.state == m.ResultDayState.DIRTY,
                    and_(
                        m.ResultDay.state == m.ResultDayState.WORKING,
                        m.ResultDay.summarized_at < now - ABANDONED_AFTER,
                    ),
                ),
            )
            .values(state=m.ResultDayState.WORKING, summarized_at=now)
        )
        return bool(again.rowcount)  # type: ignore[attr-defined]


def _summarize(app: App, day: datetime, now: datetime) -> bool:
    """Write `day`'s summary; False when a change marked it dirty meanwhile (nothing kept)."""
    with transaction(app.engine) as session:
        among = select(m.Delivery.id).where(
            m.Delivery.status == m.DeliveryStatus.SENT,
            m.Delivery.claimed_at >= day,
            m.Delivery.claimed_at < day + DAY,
        )
        session.execute(delete(m.ResultCount).where(m.ResultCount.day == day))
        session.execute(delete(m.ResultSends).where(m.ResultSends.day == day))
        counts = [
            {
                "day": day,
                "stream": row.stream,
                "step_key": row.step_key,
                "series_version": row.series_version,
                "step": int(row.step),
                "newsletter_id": row.newsletter_id,
                **{name: int(getattr(row, name) or 0) for name in COUNTS},
            }
            for row in session.execute(counts_query(among))
        ]
        if counts:
            session.execute(m.ResultCount.__table__.insert(), counts)
        sends = [
            {
                "day": day,
                "stream": stream,
                "quarter_start": _bucket_start(hour, quarter),
                "newsletter": bool(newsletter),
                "sent": int(sent),
            }
            for hour, quarter, newsletter, stream, sent in session.execute(sends_query(session, among))
        ]
        if sends:
            session.execute(m.ResultSends.__table__.insert(), sends)
        done = session.execute(
            update(m.ResultDay)
            .where(m.ResultDay.day == day, m.ResultDay.state == m.ResultDayState.WORKING)
            .values(state=m.ResultDayState.DONE, summarized_at=now)
        )
        if not done.rowcount:  # type: ignore[attr-defined]
            session.rollback()
            return False
    return True


def _days_to_summarize(app: App, now: datetime) -> list[datetime]:
    last = day_start(now - SETTLED_AFTER) - DAY  # the newest day that may be summarized
    with reading(app.engine) as session:
        waiting = list(
            session.scalars(
                select(m.ResultDay.day).where(
                    m.ResultDay.day <= last,
                    or_(
                        m.ResultDay.state == m.ResultDayState.DIRTY,
                        and_(
                            m.ResultDay.state == m.ResultDayState.WORKING,
                            m.ResultDay.summarized_at < now - ABANDONED_AFTER,
                        ),
                    ),
                )
            )
        )
        newest = session.scalar(select(func.max(m.ResultDay.day)))
        if newest is None:
            first_send = session.scalar(
                select(func.min(m.Delivery.claimed_at)).where(m.Delivery.status == m.DeliveryStatus.SENT)
            )
            start = day_start(first_send) if first_send is not None else None
        else:
            start = newest + DAY
    new: list[datetime] = []
    while start is not None and start <= last and len(new) < DAYS_PER_RUN:
        new.append(start)
        start += DAY
    return sorted(waiting)[:DAYS_PER_RUN] + new


def summarize_days(app: App, now: datetime) -> int:
    """Summarize up to DAYS_PER_RUN settled days not yet summarized (or dirty); returns how many."""
    done = 0
    for day in _days_to_summarize(app, now):
        if _claim(app, day, now) and _summarize(app, day, now):
            done += 1
    if done:
        log.info("results: %d day(s) summarized", done)
    return done
