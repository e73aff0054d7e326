"""Putting subscribers into campaigns, resuming them, and stopping them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert, literal, select, update
from sqlalchemy.orm import Session

from nurture.content.campaigns import Campaign
from nurture.series.catalog import SeriesStore
from nurture.store import models as m
from nurture.store.db import BulkInsert, chunks, insert_rows
from nurture.store.statements import statements_for


def enroll(
    session: Session,
    app: SeriesStore,
    subscriber_ids: Sequence[int],
    now: datetime,
    *,
    trigger: str = "confirmed",
) -> int:
    """Enroll subscribers in every campaign with this trigger; resume stopped enrollments.

    Someone carrying one of a campaign's stop_on_tags is not enrolled in it.
    Returns the number of enrollments created or resumed.
    """
    if not subscriber_ids:
        return 0
    changed = 0
    # Read afresh (reads only: callers hold a write transaction), so that a long-running
    # process enrolls people in the version published last, not the one it started with.
    for campaign in app.catalog.refresh(app.engine, create=False).values():
        if campaign.trigger != trigger:
            continue
        changed += enroll_in_campaign(session, campaign, subscriber_ids, now)
    return changed


def enroll_in_campaign(
    session: Session, series: Campaign, subscriber_ids: Sequence[int], start: datetime
) -> int:
    """Enroll in `series` (a published version) from `start`; resume stopped enrollments."""
    changed = 0
    campaign = series.slug
    first = series.steps[0]
    due = start + timedelta(days=first.delay_days)
    stop_tags = list(series.stop_on_tags)
    for chunk in chunks(list(subscriber_ids), 500):
        tagged: set[int] = set()
        if stop_tags:
            tagged = set(
                session.scalars(
                    select(m.SubscriberTag.subscriber_id).where(
                        m.SubscriberTag.subscriber_id.in_(chunk), m.SubscriberTag.tag.in_(stop_tags)
                    )
                )
            )
        existing = {
            row.subscriber_id: row
            for row in session.scalars(
                select(m.Enrollment).where(
                    m.Enrollment.campaign == campaign, m.Enrollment.subscriber_id.in_(chunk)
                )
            )
        }
        fresh = []
        for subscriber_id in chunk:
            if subscriber_id in tagged:
                continue
            enrollment = existing.get(subscriber_id)
            if enrollment is None:
                fresh.append(
                    {
                        "subscriber_id": subscriber_id,
                        "campaign": campaign,
                        "next_step": 1,
                        "next_step_key": first.step_key,
                        "version": series.version,
                        "next_due_at": due,
                        "status": m.EnrollmentStatus.ACTIVE,
                        "enrolled_at": start,
                        "updated_at": start,
                    }
                )
            elif enrollment.status == m.EnrollmentStatus.STOPPED:
                # Resume where they left off; the unique delivery key keeps sent steps sent.
                enrollment.status = m.EnrollmentStatus.ACTIVE
                enrollment.next_due_at = start
                enrollment.updated_at = start
                changed += 1
        if fresh:
            insert_rows(session, m.Enrollment.__table__, fresh)
            changed += len(fresh)
    return changed


def _first_step(series: Campaign, start: datetime) -> dict[str, Any]:
    """Every column of a new enrollment in `series` but its subscriber."""
    first = series.steps[0]
    return {
        "campaign": series.slug,
        "next_step": 1,
        "next_step_key": first.step_key,
        "version": series.version,
        "next_due_at": start + timedelta(days=first.delay_days),
        "status": m.EnrollmentStatus.ACTIVE,
        "enrolled_at": start,
        "updated_at": start,
    }


def enroll_new(
    session: Session, campaigns: Sequence[Campaign], subscriber_ids: Sequence[int], start: datetime
) -> int:
    """Enroll subscribers created in this transaction in each of `campaigns` (published versions).

    enroll_in_campaign without its lookups: a subscriber added a moment ago has no tags
    and no enrollments yet (both reference the subscriber, so none can predate it), so
    every one of them starts every series. Returns the number of enrollments created.
    """
    if not subscriber_ids:
        return 0
    table: Table = m.Enrollment.__table__
    dialect = session.get_bind().dialect
    for series in campaigns:
        row = _first_step(series, start)
        if dialect.name == "sqlite":
            bulk = BulkInsert(dialect, table, ["subscriber_id", *row])
            shared = tuple(bulk.bind(name, value) for name, value in row.items())
            bulk.run(session, [(subscriber_id, *shared) for subscriber_id in subscriber_ids])
        else:
            insert_rows(
                session, table, [{"subscriber_id": subscriber_id, **row} for subscriber_id in subscriber_ids]
            )
    return len(subscriber_ids) * len(campaigns)


def enroll_created_after(
    session: Session, campaigns: Sequence[Campaign], above: int, start: datetime
) -> None:
    """enroll_new for every subscriber whose id is above `above`, one INSERT ... SELECT per series
    (nothing per person in Python). Only for when each of them was created in this transaction
    and no one else can add any: a SQLite write transaction, which holds the write lock."""
    table: Table = m.Enrollment.__table__
    people: Table = m.Subscriber.__table__
    for series in campaigns:
        row = _first_step(series, start)
        chosen = select(
            people.c.id, *(literal(value, table.c[name].type) for name, value in row.items())
        ).where(people.c.id > above)
        session.execute(insert(table).from_select(["subscriber_id", *row], chosen))


def stop_enrollments(
    session: Session, subscriber_ids: Sequence[int], now: datetime, campaigns: Sequence[str] | None = None
) -> None:
    # By person (the (subscriber_id, campaign) key): through the due index, "active" is
    # every enrollment in the list, walked for each unsubscribe or bounce.
    status = statements_for(session.connection()).unindexed(m.Enrollment.status)
    for chunk in chunks(list(subscriber_ids), 500):
        statement = (
            update(m.Enrollment)
            .where(m.Enrollment.subscriber_id.in_(chunk), status == m.EnrollmentStatus.ACTIVE)
            .values(status=m.EnrollmentStatus.STOPPED, updated_at=now)
        )
        if campaigns is not None:
            statement = statement.where(m.Enrollment.campaign.in_(list(campaigns)))
        session.execute(statement)
