"""What the Results count, kept as it changes (the write side of nurture.reporting.result_days).

`add_event_bits` records on each delivery the kinds of event it has had, as each event
is stored, so that counting a period reads the deliveries alone, never their events.

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
from nurture.store.db import chunks

_CHUNK = 500


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


def add_event_bits(session: Session, events: Iterable[tuple[int, str]]) -> int:
    """Set on each delivery the bit of each (delivery id, event kind) stored for it.

    One statement per distinct set of bits (a batch of 1,000 events makes a few), and
    only deliveries missing a bit are written: a repeated event changes nothing.
    Returns how many deliveries gained a bit."""
    wanted: dict[int, int] = {}
    for delivery_id, kind in events:
        bit = m.EVENT_KIND_BITS.get(m.EventKind.from_stored(kind), 0)
        if bit:
            wanted[delivery_id] = wanted.get(delivery_id, 0) | bit
    by_bits: dict[int, list[int]] = {}
    for delivery_id, bits in wanted.items():
        by_bits.setdefault(bits, []).append(delivery_id)
    changed = 0
    bits_column = m.Delivery.event_bits
    for bits, ids in by_bits.items():
        for chunk in chunks(sorted(ids), _CHUNK):
            result = session.execute(
                update(m.Delivery)
                .where(m.Delivery.id.in_(chunk), bits_column.op("&")(bits) != bits)
                .values(event_bits=bits_column.op("|")(bits))
                .execution_options(synchronize_session=False)
            )
            changed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return changed
