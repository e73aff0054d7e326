"""Publishing a new version of a series: store it and move every enrollment to it, in one transaction.

What that means for each person is worked out by `nurture.series.plan`; here the plan
is worked out again inside the publishing transaction, against the rows as they are
then, and carried out: each enrollment gets its next step and due time under the new
version, and with `only_ahead` each skipped step is stored as a "skipped" delivery.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from nurture.content.campaigns import Campaign
from nurture.errors import InputError
from nurture.series.catalog import NEW_SERIES, SeriesStore, insert_version
from nurture.series.plan import PublishPlan, plan_in
from nurture.store import models as m
from nurture.store.db import chunks, insert_rows, transaction

SKIP_NOTE = "skipped: published with --only-ahead after this person had passed it"


def publish(app: SeriesStore, draft: Campaign, now: datetime, *, only_ahead: bool = False) -> PublishPlan:
    """Store `draft` as the next version and move every enrollment to it (one transaction).

    The plan is worked out again inside the transaction, against the rows as they
    are then, and returned. Refused when the files match the latest version.
    """
    with transaction(app.engine) as session:
        result = plan_in(session, draft, only_ahead=only_ahead, lock=True)
        if result.old_version is not None and result.diff.empty:
            raise InputError(
                f"{draft.slug}: the files match version {result.old_version}; nothing to publish"
            )
        insert_version(session, draft.slug, result.new_version, result.snapshot, now)
        if result.old_version is not None:
            _apply(session, draft, result, now)
    app.catalog.forget()
    # A series made in the console is a series to send from now on.
    (draft.path / NEW_SERIES).unlink(missing_ok=True)
    return result


def _apply(session: Session, draft: Campaign, result: PublishPlan, now: datetime) -> None:
    version = result.new_version
    positions = {step.step_key: step for step in draft.steps}
    updates: list[dict[str, Any]] = []
    skipped_rows: list[dict[str, Any]] = []
    for move in result.moves:
        person = move.person
        values: dict[str, Any] = {"id": person.enrollment_id, "version": version, "updated_at": now}
        step = positions.get(move.next_key) if move.next_key is not None else None
        values["next_step_key"] = move.next_key
        values["next_step"] = step.number if step is not None else len(draft.steps) + 1
        if person.in_series:
            if step is None:
                values |= {"status": m.EnrollmentStatus.COMPLETED, "next_due_at": None}
            else:
                values["status"] = m.EnrollmentStatus.ACTIVE
                unchanged = (
                    person.status == m.EnrollmentStatus.ACTIVE
                    and person.next_key == move.next_key
                    and not any(change.key == move.next_key for change in result.diff.of_kind("delay"))
                )
                if not unchanged or person.next_due_at is None:
                    previous = person.last_sent_at or person.enrolled_at
                    values["next_due_at"] = previous + timedelta(days=step.delay_days)
        updates.append(values)
        for key in move.skips:
            skipped_rows.append(
                {
                    "subscriber_id": person.subscriber_id,
                    "stream": draft.slug,
                    "step": positions[key].number,
                    "step_key": key,
                    "series_version": version,
                    "status": m.DeliveryStatus.SKIPPED,
                    "worker": "publish",
                    "claimed_at": now,
                    "finished_at": now,
                    "error": SKIP_NOTE,
                }
            )
    # Grouped by the columns they set, so each group is one executemany.
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for values in updates:
        by_shape.setdefault(tuple(sorted(values)), []).append(values)
    for rows in by_shape.values():
        for chunk in chunks(rows, 1000):
            session.execute(update(m.Enrollment), chunk)
    if skipped_rows:
        insert_rows(session, m.Delivery.__table__, skipped_rows)
