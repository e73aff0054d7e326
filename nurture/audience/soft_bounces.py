"""Repeated soft bounces: a mailbox that keeps refusing mail is treated as bounced.

A hard bounce suppresses the person at once (the provider's event module says so). A
soft bounce (a full mailbox, a server refusing for now, a block) may clear by itself,
so one is not enough: `bounces.soft_limit` emails that soft-bounced within
`bounces.soft_window` suppress the person as a bounce, with the count in the consent
record. An undetermined bounce counts as soft.

Counted from the stored provider events tied to the person's deliveries, per email
(a provider reporting one email's refusal twice counts once), so a retried webhook
post never tips anyone over the limit by itself.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.audience.consent import suppress
from nurture.config import Bounces
from nurture.store import models as m
from nurture.store.db import chunks

# The event kinds that say "refused for now"; a bounce the provider cannot classify counts too.
SOFT_BOUNCE_KINDS: frozenset[str] = frozenset({m.EventKind.BOUNCED_SOFT, m.EventKind.BOUNCED_UNDETERMINED})


def suppress_repeated_soft_bounces(
    session: Session,
    subscriber_ids: Collection[int],
    policy: Bounces,
    now: datetime,
    *,
    source: str,
) -> int:
    """Suppress those of `subscriber_ids` whose soft bounces reached the limit; returns how many."""
    if not subscriber_ids:
        return 0
    since = now - policy.soft_window
    over: list[int] = []
    for chunk in chunks(sorted(subscriber_ids), 500):
        counted = (
            select(m.Delivery.subscriber_id)
            .join(m.ProviderEvent, m.ProviderEvent.delivery_id == m.Delivery.id)
            .where(
                m.Delivery.subscriber_id.in_(chunk),
                m.ProviderEvent.kind.in_(SOFT_BOUNCE_KINDS),
                m.ProviderEvent.occurred_at >= since,
            )
            .group_by(m.Delivery.subscriber_id)
            .having(func.count(func.distinct(m.Delivery.id)) >= policy.soft_limit)
        )
        over.extend(session.scalars(counted))
    if not over:
        return 0
    days = policy.soft_window.days
    return suppress(
        session,
        over,
        m.ConsentKind.BOUNCE,
        now,
        source=source,
        detail=f"{_count(policy.soft_limit, 'email')} soft-bounced within {_count(days, 'day')}",
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
