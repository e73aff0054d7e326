"""Marking summarized days of results stale (the write side of nurture.reporting.result_days).

The Results pages read each settled day of sends from its summary. Whatever changes a
past email's numbers afterwards calls `mark_days_dirty` in the same transaction as the
change: a provider event for one of its deliveries, a web unsubscribe credited to one of
its emails, a person forgotten. A dirty day is read live until it is summarized again.
It lives in the store layer so that the modules making those changes need not import
the reporting code.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from nurture.store import models as m


def day_start(moment: datetime) -> datetime:
    """The UTC midnight that starts `moment`'s day."""
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC)


def mark_days_dirty(session: Session, moments: Iterable[datetime | None]) -> int:
    """Mark the summarized days holding these send times dirty and drop their summaries.

    A day being summarized right now ("working") is marked too: its summarizer then sees
    the change and throws its work away. Returns how many days changed."""
    days = sorted({day_start(moment) for moment in moments if moment is not None})
    if not days:
        return 0
    summarized = list(
        session.scalars(
            select(m.ResultDay.day).where(
                m.ResultDay.day.in_(days), m.ResultDay.state != m.ResultDayState.DIRTY
            )
        )
    )
    if not summarized:
        return 0
    session.execute(
        update(m.ResultDay).where(m.ResultDay.day.in_(summarized)).values(state=m.ResultDayState.DIRTY)
    )
    session.execute(delete(m.ResultCount).where(m.ResultCount.day.in_(summarized)))
    session.execute(delete(m.ResultSends).where(m.ResultSends.day.in_(summarized)))
    return len(summarized)
