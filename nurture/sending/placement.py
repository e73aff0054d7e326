"""Where an enrollment goes next in a published version, by step key.

A person's place in a series is the set of step keys they already have a delivery
of (sent, failed, skipped or in flight): their next step is the first step of the
version, in its order, whose key is not in that set. Used by the claim pass after
each claim, and for enrollments still on an older version.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from nurture.content.campaigns import Campaign, Step
from nurture.sending.claim_statements import received_query
from nurture.store import models as m
from nurture.store.statements import Values, statements_for


def received_keys(
    session: Session, subscriber_ids: Sequence[int], streams: Sequence[str]
) -> dict[tuple[int, str], set[str]]:
    """(subscriber, series) -> the step keys they already have a delivery of, whatever its status."""
    result: dict[tuple[int, str], set[str]] = defaultdict(set)
    if not subscriber_ids or not streams:
        return result
    connection = session.connection()
    statements = statements_for(connection)
    query = statements.built("received", received_query)
    for chunk in statements.id_chunks(list(dict.fromkeys(subscriber_ids))):
        for subscriber_id, stream, key in connection.execute(
            query, {"ids": chunk, "streams": sorted(set(streams))}
        ).all():
            result[(subscriber_id, stream)].add(key)
    return result


def first_missing(campaign: Campaign, had: set[str]) -> Step | None:
    """The first step of `campaign`, in its order, whose key is not in `had`."""
    return next((step for step in campaign.steps if step.step_key not in had), None)


def placed(campaign: Campaign, step: Step | None, due: datetime | None, now: datetime) -> Values:
    """An enrollment's new values with `step` of `campaign` next, due at `due` (no step: completed)."""
    if step is None:
        return (
            ("next_step", len(campaign.steps) + 1),
            ("next_step_key", None),
            ("version", campaign.version),
            ("status", m.EnrollmentStatus.COMPLETED),
            ("next_due_at", None),
            ("updated_at", now),
        )
    return (
        ("next_step", step.number),
        ("next_step_key", step.step_key),
        ("version", campaign.version),
        ("next_due_at", due),
        ("updated_at", now),
    )
