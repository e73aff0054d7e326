"""Deliveries after the pass: stuck claims, settling them by evidence, the owner's release, what is due.

A claim whose outcome is unknown (the process died, or the provider did not answer)
stays "claimed" and is never sent again blindly. Evidence settles it (DESIGN.md,
invariant 8):

- any provider event naming it (the provider echoes its random message key) means the
  provider saw it: sent, or failed when the provider dropped it (`settle_from_events`);
- a claim never handed to a transport (keyed, with no `submitted_at`: each request's
  transport and time are written down, and committed, before it goes: `mark_submitted`)
  never left; it is released `delivery.reconcile_after` after its claim, when no worker
  can still be about to send it (a worker holds unsent claims for two batches' wait;
  a batch whose claims are no longer all its own is not sent);
- silence about a handed-over email releases it (`reconcile`: the next claim sends it)
  only when both hold:
  1. its request is older than the provider's event retry window (`facts_for(provider)
     .event_retry_window`, 24 h for SendGrid) and than `delivery.reconcile_after` (a
     minimum the owner sets). Until then the provider may still be retrying the post
     of its events to a webhook that was down: silence proves nothing yet.
  2. an event arrived *within that window* for an email of the same provider submitted
     after it: the webhook was working while the provider could still post this one's.
  Why this is safe: a provider that accepted the email posts its events, and retries a
  failing post for at most its retry window. Past that window every post for it has
  either arrived (it would be settled) or been given up. During an outage each batch
  is retried on its own, so a later email's events may come first (the trap): that is
  why (1) waits for the whole window, not for the first sign of life. And a post given
  up means the webhook was down until the window's end, when (2) cannot hold. So an
  outage up to the retry window releases nothing that went out, and a longer one
  leaves the rows stuck for the owner, never sent twice.
- the last claims before a crash have no later email to prove anything: the pass then
  sends a probe (`nurture.sending.probe`), an email to the practice's own address,
  whose events give them one.

Without a webhook key, or with a silent webhook, nothing is released by itself and
`stuck_status` says why; the owner can still check and release by hand.
Releasing deletes the delivery row, so the next pass claims that email again (with a
new message key: a late event for the old one names nothing).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, false, func, or_, select, true, update
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.config import Config
from nurture.errors import InputError
from nurture.sending.evidence import (
    NO_WEBHOOK,
    SILENT_WEBHOOK,
    STUCK_AFTER,
    ReconcileStatus,
    Waiting,
    assess,
    explain,
    mark_submitted,
    stuck_condition,
)
from nurture.store import models as m
from nurture.store.db import chunks, reading, transaction
from nurture.store.statements import statements_for

log = logging.getLogger(__name__)

SETTLED_NOTE = "settled by provider event"
RECONCILED_NOTE = "reconciled: no provider record"
__all__ = [
    "NO_WEBHOOK",
    "SILENT_WEBHOOK",
    "STUCK_AFTER",
    "ReconcileStatus",
    "mark_submitted",
    "stuck_condition",
]


def release_claims(
    session: Session, delivery_ids: Sequence[int], now: datetime, *, worker: str | None = None
) -> int:
    """Give claimed (or failed) deliveries back: the next pass may send them again.

    Only for deliveries known not to have gone out, or that the owner has checked.
    `worker`: only that worker's claims (a pass releasing its own).
    """
    released = 0
    for start in range(0, len(delivery_ids), 500):
        chunk = list(delivery_ids[start : start + 500])
        rows = session.execute(
            select(
                m.Delivery.id,
                m.Delivery.subscriber_id,
                m.Delivery.stream,
                m.Delivery.step,
                m.Delivery.step_key,
                m.Delivery.series_version,
                m.Delivery.newsletter_id,
            ).where(
                m.Delivery.id.in_(chunk),
                m.Delivery.status.in_([m.DeliveryStatus.CLAIMED, m.DeliveryStatus.FAILED]),
                m.Delivery.worker == worker if worker is not None else true(),
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
            # Its zone is no longer finished: the next pass reads it again. The newsletter's
            # row is locked first, so a worker finishing a zone (NewsletterClaimer._may_finish)
            # either commits before this delete or leaves the zone for a later look.
            session.execute(
                select(m.Newsletter.id)
                .where(m.Newsletter.id.in_(sorted(newsletter_ids)))
                .order_by(m.Newsletter.id)
                .with_for_update()
            )
            session.execute(
                delete(m.NewsletterZone).where(m.NewsletterZone.newsletter_id.in_(newsletter_ids))
            )
            session.execute(
                update(m.Newsletter)
                .where(m.Newsletter.id.in_(newsletter_ids), m.Newsletter.status == m.NewsletterStatus.SENT)
                .values(status=m.NewsletterStatus.SENDING, updated_at=now)
            )
        released += len(rows)
    return released


def count_stuck(app: App, now: datetime) -> int:
    with reading(app.engine) as session:
        return int(
            session.scalar(select(func.count()).select_from(m.Delivery).where(stuck_condition(now))) or 0
        )


def list_stuck(app: App, now: datetime, older_than: timedelta = STUCK_AFTER) -> list[dict[str, Any]]:
    """The stuck rows, each with what it waits for (`waits_for`) and until when (`until`, or None)."""
    with reading(app.engine) as session:
        rows = session.execute(
            select(
                m.Delivery.id,
                m.Delivery.stream,
                m.Delivery.step,
                m.Delivery.worker,
                m.Delivery.claimed_at,
                m.Delivery.error,
                m.Delivery.provider,
                m.Delivery.submitted_at,
                m.Delivery.message_key,
            )
            .where(stuck_condition(now, older_than))
            .order_by(m.Delivery.id)
        ).all()
        listed = []
        for row in rows:
            waiting: Waiting = explain(session, app.config, now, row)
            shown = {key: value for key, value in row._asdict().items() if key != "message_key"}
            listed.append({**shown, "waits_for": waiting.what, "until": waiting.until})
    return listed


def release(app: App, now: datetime, *, ids: Sequence[int] = (), older_than: timedelta | None = None) -> int:
    """The owner's release of stuck or failed deliveries, by id or by age."""
    with transaction(app.engine) as session:
        chosen = list(dict.fromkeys(ids))
        if chosen:
            releasable = set(
                session.scalars(
                    select(m.Delivery.id).where(
                        m.Delivery.id.in_(chosen),
                        m.Delivery.status.in_([m.DeliveryStatus.CLAIMED, m.DeliveryStatus.FAILED]),
                    )
                )
            )
            refused = [delivery_id for delivery_id in chosen if delivery_id not in releasable]
            if refused:
                # Nothing is released when any named id is wrong: a typo must not half-apply.
                raise InputError(
                    f"deliver{'y' if len(refused) == 1 else 'ies'} "
                    f"{', '.join(map(str, refused))}: not stuck or failed "
                    "(sent and skipped emails cannot be released); "
                    "nothing was released. See: nurture deliveries --stuck"
                )
        if older_than is not None:
            chosen += list(session.scalars(select(m.Delivery.id).where(stuck_condition(now, older_than))))
        return release_claims(session, chosen, now)


def count_due(app: App, now: datetime) -> int:
    """Series steps due now (an upper bound for a pass: some will wait for a window or the cap)."""
    with reading(app.engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(m.Enrollment)
                .where(m.Enrollment.status == m.EnrollmentStatus.ACTIVE, m.Enrollment.next_due_at <= now)
            )
            or 0
        )


# ---------------------------------------------------------------- settling by evidence


def settle_from_events(session: Session, delivery_ids: Sequence[int] | None, now: datetime) -> int:
    """Settle claimed deliveries that stored provider events name; `None` looks at all of them.

    The provider saw the email, so it must never be sent again: "sent", or "failed" with
    the reason when the provider dropped it. A drop also overrides an earlier settlement
    by, say, SendGrid's "processed" (which comes first). Returns how many changed.
    """
    wanted = [None] if delivery_ids is None else list(chunks(sorted(set(delivery_ids)), 500))
    # Looking at every delivery (each pass does), only claimed ones: a small set, so the
    # pass stays cheap however many events are stored. A drop after "processed" arrives
    # with its own ids, through the webhook.
    current_status: Any = m.Delivery.status
    settled_by_event: Any = false()
    if delivery_ids is not None:
        # Named rows are found by id: through the status index, "sent" is every email ever
        # sent, walked for each webhook batch (5x slower after 1,000,000: RESULTS.md).
        current_status = statements_for(session.connection()).unindexed(m.Delivery.status)
        settled_by_event = and_(
            current_status == m.DeliveryStatus.SENT, m.Delivery.error.startswith(SETTLED_NOTE)
        )
    changed = 0
    for chunk in wanted:
        query = (
            select(
                m.ProviderEvent.delivery_id,
                m.ProviderEvent.kind,
                m.ProviderEvent.raw_event,
                m.ProviderEvent.detail,
                m.Delivery.status,
            )
            .join(m.Delivery, m.Delivery.id == m.ProviderEvent.delivery_id)
            .where(or_(current_status == m.DeliveryStatus.CLAIMED, settled_by_event))
            .order_by(m.ProviderEvent.delivery_id, m.ProviderEvent.occurred_at, m.ProviderEvent.id)
        )
        if chunk is not None:
            query = query.where(m.ProviderEvent.delivery_id.in_(chunk), m.Delivery.id.in_(chunk))
        verdicts: dict[int, tuple[str, str]] = {}
        current: dict[int, str] = {}
        for row in session.execute(query):
            current[row.delivery_id] = row.status
            if row.kind == m.EventKind.REJECTED:
                reason = f"; {row.detail}" if row.detail else ""
                verdicts[row.delivery_id] = (
                    m.DeliveryStatus.FAILED,
                    f"dropped by the provider ({SETTLED_NOTE} {row.raw_event}{reason})",
                )
            elif row.delivery_id not in verdicts:
                verdicts[row.delivery_id] = (m.DeliveryStatus.SENT, f"{SETTLED_NOTE} {row.raw_event}")
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for delivery_id, verdict in verdicts.items():
            if current[delivery_id] == m.DeliveryStatus.CLAIMED or verdict[0] == m.DeliveryStatus.FAILED:
                groups[verdict].append(delivery_id)
        for (status, note), ids in groups.items():
            result = session.execute(
                update(m.Delivery)
                .where(
                    m.Delivery.id.in_(ids), or_(current_status == m.DeliveryStatus.CLAIMED, settled_by_event)
                )
                .values(status=status, error=note, finished_at=now)
            )
            changed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return changed


@dataclass
class ReconcileReport:
    settled: int = 0  # settled by provider events at the start of the pass
    released: int = 0  # reconciled: no provider record, released to be sent again


def stuck_status(session: Session, config: Config, now: datetime) -> ReconcileStatus:
    """How many deliveries are stuck, and why any are not released automatically (reads only)."""
    return assess(session, config, now)[0]


def reconcile_status(app: App, now: datetime) -> ReconcileStatus:
    """`stuck_status` in a read transaction of its own."""
    with reading(app.engine) as session:
        return stuck_status(session, app.config, now)


def reconcile(bind: Engine | Connection, config: Config, now: datetime) -> ReconcileReport:
    """Run at the start of each pass: settle by stored events, release what silence proves unsent."""
    report = ReconcileReport()
    with transaction(bind) as session:
        report.settled = settle_from_events(session, None, now)
        _, releasable = assess(session, config, now)
        if releasable is None:
            return report
        # Locked so that two workers never release (and step back) the same claim.
        rows = session.execute(
            select(m.Delivery.id, m.Delivery.stream, m.Delivery.step)
            .where(releasable)
            .order_by(m.Delivery.id)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return report
        report.released = release_claims(session, [row.id for row in rows], now)
    for row in rows:
        log.warning(
            "%s: delivery %d (%s step %d) released to be sent again",
            RECONCILED_NOTE,
            row.id,
            row.stream,
            row.step,
        )
    return report
