"""Deliveries after the pass: stuck claims, the owner's release, what is due.

A claim whose outcome is unknown (the process died, or the provider did not answer)
stays "claimed" and is never sent again by itself; it is reported as stuck until the
owner releases it. Releasing deletes the delivery row, so the next pass claims that
email again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.errors import InputError
from nurture.store import models as m
from nurture.store.db import reading, transaction

STUCK_AFTER = timedelta(minutes=10)


def release_claims(session: Session, delivery_ids: Sequence[int], now: datetime) -> int:
    """Give claimed (or failed) deliveries back: the next pass may send them again.

    Only for deliveries known not to have gone out, or that the owner has checked.
    """
    released = 0
    for start in range(0, len(delivery_ids), 500):
        chunk = list(delivery_ids[start : start + 500])
        rows = session.execute(
            select(
                m.Delivery.id, m.Delivery.subscriber_id, m.Delivery.stream, m.Delivery.step, m.Delivery.step_key, m.Delivery.series_version, m.Delivery.newsletter_id
            ).where(
                m.Delivery.id.in_(chunk), m.Delivery.status.in_([m.DeliveryStatus.CLAIMED, m.DeliveryStatus.FAILED])
            )
        ).all()
        for row in rows:
            if row.newsletter_id is None and row.subscriber_id is not None:
                # Step the enrollment back so this step is due again; later steps that
                # were already sent stay sent (their delivery rows still exist).
                session.execute(
                    update(m.Enrollment)
                    .where(
                        m.Enrollment.subscriber_id == row.subscriber_id,
                        m.Enrollment.campaign == row.stream,
                        m.Enrollment.status.in_([m.EnrollmentStatus.ACTIVE, m.EnrollmentStatus.COMPLETED]),
                    )
                    .values(
                        next_step=row.step,
                        next_step_key=row.step_key,
                        version=row.series_version,
                        next_due_at=now,
                        status=m.EnrollmentStatus.ACTIVE,
                        updated_at=now,
                    )
                )
        session.execute(delete(m.Delivery).where(m.Delivery.id.in_([row.id for row in rows])))
        # A newsletter marked sent while one of its claims was stuck: sending again, so the
        # released email is claimed by the next pass (a cancelled one stays cancelled).
        newsletter_ids = {row.newsletter_id for row in rows if row.newsletter_id is not None}
        if newsletter_ids:
            session.execute(
                update(m.Newsletter)
                .where(m.Newsletter.id.in_(newsletter_ids), m.Newsletter.status == m.NewsletterStatus.SENT)
                .values(status=m.NewsletterStatus.SENDING, updated_at=now)
            )
        released += len(rows)
    return released


def stuck_condition(now: datetime, older_than: timedelta = STUCK_AFTER) -> Any:
    return and_(
        m.Delivery.status == m.DeliveryStatus.CLAIMED,
        or_(m.Delivery.claimed_at <= now - older_than, m.Delivery.error.is_not(None)),
    )


def count_stuck(app: App, now: datetime) -> int:
    with reading(app.engine) as session:
        return int(session.scalar(select(func.count()).select_from(m.Delivery).where(stuck_condition(now))) or 0)


def list_stuck(app: App, now: datetime, older_than: timedelta = STUCK_AFTER) -> list[dict[str, Any]]:
    with reading(app.engine) as session:
        rows = session.execute(
            select(m.Delivery.id, m.Delivery.stream, m.Delivery.step, m.Delivery.worker, m.Delivery.claimed_at, m.Delivery.error)
            .where(stuck_condition(now, older_than))
            .order_by(m.Delivery.id)
        ).all()
    return [row._asdict() for row in rows]


def release(app: App, now: datetime, *, ids: Sequence[int] = (), older_than: timedelta | None = None) -> int:
    """The owner's release of stuck or failed deliveries, by id or by age."""
    with transaction(app.engine) as session:
        chosen = list(dict.fromkeys(ids))
        if chosen:
            releasable = set(
                session.scalars(select(m.Delivery.id).where(m.Delivery.id.in_(chosen), m.Delivery.status.in_([m.DeliveryStatus.CLAIMED, m.DeliveryStatus.FAILED])))
            )
            refused = [delivery_id for delivery_id in chosen if delivery_id not in releasable]
            if refused:
                # Nothing is released when any named id is wrong: a typo must not half-apply.
                raise InputError(
                    f"deliver{'y' if len(refused) == 1 else 'ies'} {', '.join(map(str, refused))}: not stuck or failed "
                    "(sent and skipped emails cannot be released); nothing was released. See: nurture deliveries --stuck"
                )
        if older_than is not None:
            chosen += list(session.scalars(select(m.Delivery.id).where(stuck_condition(now, older_than))))
        return release_claims(session, chosen, now)


def count_due(app: App, now: datetime) -> int:
    """Series steps due now (an upper bound for a pass: some will wait for a window or the cap)."""
    with reading(app.engine) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(m.Enrollment).where(m.Enrollment.status == m.EnrollmentStatus.ACTIVE, m.Enrollment.next_due_at <= now)
            )
            or 0
        )
