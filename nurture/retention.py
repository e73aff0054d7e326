"""Data kept no longer than needed: the retention pass (`nurture retention apply`, and
`nurture run` once a day).

- Provider events older than `retention.provider_events` (90 days by default) are
  deleted. Each delivery already holds, as bits in `deliveries.event_bits` set when
  each event was stored, which kinds of event it had (delivered, opened, clicked,
  bounced, complained, unsubscribed): the Results count those bits, so every number
  they show stays the same. Kept whatever their age: events of a delivery
  still claimed (they are the evidence that settles it), and opens and clicks tied to
  no one (under `delivery.tracking: aggregate` they are the per-email totals and name
  nobody). With `sunset.enabled`, clicks are kept at least `sunset.quiet_for`: they
  are a reader's sign of life.
- Deliveries finished more than `retention.deliveries` ago (400 days by default) lose
  what they hold about the provider's handling: the provider's message id and the
  error text. The row itself stays: it is what guarantees each email of a series
  reaches a person at most once (a returning reader must not get step 1 again), and it
  holds no address (the subscriber row does, until the person is forgotten).

Suppressions, consent records and the owner's audit log are not touched: they are the
evidence of consent and of every unsubscribe, kept as long as the list is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update

from nurture.app import App
from nurture.store import models as m
from nurture.store.db import chunks, transaction

log = logging.getLogger(__name__)

_CHUNK = 500
_READING = (m.EventKind.OPENED, m.EventKind.CLICKED)


@dataclass
class RetentionReport:
    events_deleted: int = 0
    deliveries_cleared: int = 0

    def line(self) -> str:
        return (
            f"retention: {self.events_deleted} provider events deleted "
            "(the Results keep their counts), "
            f"{self.deliveries_cleared} old deliveries cleared of provider ids and errors"
        )


def event_cutoff(app: App, now: datetime) -> datetime:
    keep = app.config.retention.provider_events
    return now - keep


def apply_retention(app: App, now: datetime) -> RetentionReport:
    report = RetentionReport()
    cutoff = event_cutoff(app, now)
    click_cutoff = cutoff
    if app.config.sunset.enabled:
        click_cutoff = min(cutoff, now - app.config.sunset.quiet_for)
    event = m.ProviderEvent
    old = and_(
        event.received_at < cutoff,
        or_(event.kind != m.EventKind.CLICKED, event.received_at < click_cutoff),
        # Opens and clicks tied to no one are the per-email totals: they stay.
        or_(event.delivery_id.is_not(None), event.kind.not_in(_READING)),
    )
    with transaction(app.engine) as session:
        claimed = select(m.Delivery.id).where(m.Delivery.status == m.DeliveryStatus.CLAIMED)
        candidates = session.scalars(
            select(event.id).where(old, or_(event.delivery_id.is_(None), event.delivery_id.not_in(claimed)))
        ).all()
        for chunk in chunks(list(candidates), _CHUNK):
            session.execute(delete(event).where(event.id.in_(chunk)))
        report.events_deleted = len(candidates)

        delivery_cutoff = now - app.config.retention.deliveries
        result = session.execute(
            update(m.Delivery)
            .where(
                m.Delivery.status != m.DeliveryStatus.CLAIMED,
                func.coalesce(m.Delivery.finished_at, m.Delivery.claimed_at) < delivery_cutoff,
                or_(m.Delivery.provider_message_id.is_not(None), m.Delivery.error.is_not(None)),
            )
            .values(provider_message_id=None, error=None)
        )
        report.deliveries_cleared = int(result.rowcount or 0)  # type: ignore[attr-defined]
    log.info("%s", report.line())
    return report


def due(last_run: datetime | None, now: datetime) -> bool:
    """Once a day under `nurture run`."""
    return last_run is None or now - last_run >= timedelta(days=1)
