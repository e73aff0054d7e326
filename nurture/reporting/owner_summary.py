"""The numbers the owner is told each week, and the ones that call for an alert at once.

Over a window [start, end):

- new subscribers: confirmed in the window (imports count when they were imported);
- sent: deliveries recorded as sent in the window, per series step and per newsletter;
- unsubscribes: consent records of kind "unsubscribe" (link, one-click, provider, CLI);
- bounces and complaints: provider events ("bounced" and "blocked"; "complained");
- failed: deliveries that failed in the window; stuck: claims whose outcome is unknown
  now, with the reason any of them cannot be settled automatically.

Alerts look at the last 7 days: complaints at 0.1% of sent or more, bounces at 2% or
more (the thresholds mailbox providers hold senders to), and deliveries stuck for an
hour with no way to settle them (no webhook key, or a silent webhook).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.config import Config
from nurture.sending.deliveries import ReconcileStatus, stuck_status
from nurture.sending.streams import is_newsletter_stream
from nurture.store import models as m
from nurture.store.db import reading

ALERT_WINDOW = timedelta(days=7)
COMPLAINT_ALERT = 0.001
BOUNCE_ALERT = 0.02
STUCK_ALERT_AFTER = timedelta(hours=1)
BOUNCE_EVENT_KINDS = (m.EventKind.BOUNCED, m.EventKind.BLOCKED)


@dataclass(frozen=True)
class SentLine:
    label: str  # "kap-intro step 2" or "newsletter 7: <subject>"
    count: int


@dataclass
class OwnerNumbers:
    start: datetime
    end: datetime
    new_subscribers: int = 0
    sent: list[SentLine] = field(default_factory=list)
    unsubscribes: int = 0
    bounces: int = 0
    complaints: int = 0
    failed: int = 0
    stuck: ReconcileStatus = field(default_factory=ReconcileStatus)

    @property
    def sent_total(self) -> int:
        return sum(line.count for line in self.sent)

    @property
    def bounce_rate(self) -> float:
        return self.bounces / self.sent_total if self.sent_total else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent_total if self.sent_total else 0.0


def owner_numbers(app: App, start: datetime, end: datetime) -> OwnerNumbers:
    """`count_owner_numbers` in a read transaction of its own."""
    with reading(app.engine) as session:
        return count_owner_numbers(session, app.config, start, end)


def count_owner_numbers(session: Session, config: Config, start: datetime, end: datetime) -> OwnerNumbers:
    """The numbers over [start, end), and the stuck deliveries as of `end`, read in `session`."""
    numbers = OwnerNumbers(start=start, end=end)
    numbers.new_subscribers = int(
        session.scalar(
            select(func.count())
            .select_from(m.Subscriber)
            .where(m.Subscriber.confirmed_at >= start, m.Subscriber.confirmed_at < end)
        )
        or 0
    )
    sent_window = (m.Delivery.finished_at >= start, m.Delivery.finished_at < end)
    rows = session.execute(
        select(m.Delivery.stream, m.Delivery.step, m.Delivery.newsletter_id, func.count())
        .where(m.Delivery.status == m.DeliveryStatus.SENT, *sent_window)
        .group_by(m.Delivery.stream, m.Delivery.step, m.Delivery.newsletter_id)
        .order_by(m.Delivery.stream, m.Delivery.step)
    ).all()
    subjects = dict(
        session.execute(
            select(m.Newsletter.id, m.Newsletter.subject).where(
                m.Newsletter.id.in_({row[2] for row in rows if row[2] is not None})
            )
        ).all()
    )
    for stream, step, newsletter_id, count in rows:
        if newsletter_id is not None:
            label = f"newsletter {newsletter_id}: {subjects.get(newsletter_id, '')}".rstrip(": ")
        elif is_newsletter_stream(stream):
            label = "newsletter test copies"
        else:
            label = f"{stream} step {step}"
        numbers.sent.append(SentLine(label, int(count)))
    numbers.unsubscribes = int(
        session.scalar(
            select(func.count())
            .select_from(m.ConsentEvent)
            .where(
                m.ConsentEvent.kind == m.ConsentKind.UNSUBSCRIBE,
                m.ConsentEvent.recorded_at >= start,
                m.ConsentEvent.recorded_at < end,
            )
        )
        or 0
    )
    event_window = (m.ProviderEvent.occurred_at >= start, m.ProviderEvent.occurred_at < end)
    kinds = dict(
        session.execute(
            select(m.ProviderEvent.kind, func.count())
            .where(m.ProviderEvent.kind.in_([*BOUNCE_EVENT_KINDS, m.EventKind.COMPLAINED]), *event_window)
            .group_by(m.ProviderEvent.kind)
        ).all()
    )
    numbers.bounces = sum(int(kinds.get(kind, 0)) for kind in BOUNCE_EVENT_KINDS)
    numbers.complaints = int(kinds.get(m.EventKind.COMPLAINED, 0))
    numbers.failed = int(
        session.scalar(
            select(func.count())
            .select_from(m.Delivery)
            .where(m.Delivery.status == m.DeliveryStatus.FAILED, *sent_window)
        )
        or 0
    )
    numbers.stuck = stuck_status(session, config, end)
    return numbers


def alert_reasons(numbers: OwnerNumbers, now: datetime) -> list[str]:
    """What needs the owner now, from numbers over the last 7 days; empty when all is well."""
    reasons = []
    if numbers.sent_total and numbers.complaint_rate >= COMPLAINT_ALERT:
        reasons.append(
            f"spam complaints: {numbers.complaints} of {numbers.sent_total} "
            f"emails sent in 7 days ({numbers.complaint_rate:.2%}; "
            f"the limit is {COMPLAINT_ALERT:.1%}). Look at which emails drew them and who is on the list."
        )
    if numbers.sent_total and numbers.bounce_rate >= BOUNCE_ALERT:
        reasons.append(
            f"bounces: {numbers.bounces} of {numbers.sent_total} "
            f"emails sent in 7 days ({numbers.bounce_rate:.1%}; "
            f"the limit is {BOUNCE_ALERT:.0%}). Check recent imports for old or mistyped addresses."
        )
    stuck = numbers.stuck
    if (
        stuck.blocked
        and stuck.oldest_claimed_at is not None
        and stuck.oldest_claimed_at <= now - STUCK_ALERT_AFTER
    ):
        reasons.append(
            f"{stuck.blocked} emails have been stuck for over an hour "
            f"and cannot be settled automatically: {stuck.reason}."
        )
    return reasons


def action_items(numbers: OwnerNumbers, now: datetime) -> list[str]:
    """The summary's "needs your attention" list: the alerts, and smaller things to look at."""
    items = alert_reasons(numbers, now)
    if numbers.failed:
        items.append(
            f"{numbers.failed} emails failed this week: see "
            "`nurture deliveries --stuck` and the send log for why."
        )
    if numbers.stuck.stuck and not numbers.stuck.blocked:
        items.append(
            f"{numbers.stuck.stuck} emails are waiting for SendGrid's report; nurture settles them by itself."
        )
    return items
