"""The numbers the owner is told each week, and the ones that call for an alert at once.

Over a window [start, end):

- new subscribers: confirmed in the window (imports count when they were imported);
- sent: deliveries recorded as sent in the window, per series step and per newsletter;
- unsubscribes: consent records of kind "unsubscribe" (link, one-click, provider, CLI);
- bounces and complaints: provider events (bounces hard, soft or undetermined; "complained");
- failed: deliveries that failed in the window; stuck: claims whose outcome is unknown
  now, with the reason any of them cannot be settled automatically.

Alerts (`alerts`) look at the last 7 days: spam complaints at 0.1% of sent or more
(warn) and at 0.3% (newsletters stop until the owner confirms), bounces at 2% (warn)
and at 5% (all sending pauses): the lines Gmail and Yahoo hold bulk senders to. And
deliveries stuck for an hour with no way to settle them (no webhook key, or a silent
webhook). nurture.reporting.notices sends each alert once and places the holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.config import Config
from nurture.sending.deliveries import ReconcileStatus, stuck_status
from nurture.sending.streams import PROBE_STREAM, is_newsletter_stream
from nurture.store import models as m
from nurture.store.db import reading

ALERT_WINDOW = timedelta(days=7)
COMPLAINT_ALERT = 0.001  # warn
COMPLAINT_STOP = 0.003  # newsletters stop until the owner confirms
BOUNCE_ALERT = 0.02  # warn
BOUNCE_PAUSE = 0.05  # all sending pauses until the owner confirms
STUCK_ALERT_AFTER = timedelta(hours=1)
BOUNCE_EVENT_KINDS = (m.EventKind.BOUNCED_HARD, m.EventKind.BOUNCED_SOFT, m.EventKind.BOUNCED_UNDETERMINED)


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


ALL_EMAILS = "all emails"  # the one sent line when they are not counted per email


def owner_numbers(app: App, start: datetime, end: datetime, *, per_email: bool = True) -> OwnerNumbers:
    """`count_owner_numbers` in a read transaction of its own."""
    with reading(app.engine) as session:
        return count_owner_numbers(session, app.config, start, end, per_email=per_email)


def count_owner_numbers(
    session: Session, config: Config, start: datetime, end: datetime, *, per_email: bool = True
) -> OwnerNumbers:
    """The numbers over [start, end), and the stuck deliveries as of `end`, read in `session`.

    Without `per_email` the sends are one line, ALL_EMAILS: enough for the alerts, which
    judge rates only. Every pass and the Today page read them; grouping a week of a
    million sends per email took 1.27 s on SQLite, counting them 0.31 s."""
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
    sent = (m.Delivery.status == m.DeliveryStatus.SENT, m.Delivery.stream != PROBE_STREAM, *sent_window)
    if per_email:
        numbers.sent = _sent_per_email(session, sent)
    else:
        total = int(session.scalar(select(func.count()).select_from(m.Delivery).where(*sent)) or 0)
        numbers.sent = [SentLine(ALL_EMAILS, total)] if total else []
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


def _sent_per_email(session: Session, sent: tuple[ColumnElement[bool], ...]) -> list[SentLine]:
    rows = session.execute(
        select(m.Delivery.stream, m.Delivery.step, m.Delivery.newsletter_id, func.count())
        .where(*sent)
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
    lines: list[SentLine] = []
    for stream, step, newsletter_id, count in rows:
        if newsletter_id is not None:
            label = f"newsletter {newsletter_id}: {subjects.get(newsletter_id, '')}".rstrip(": ")
        elif is_newsletter_stream(stream):
            label = "newsletter test copies"
        else:
            label = f"{stream} step {step}"
        lines.append(SentLine(label, int(count)))
    return lines


@dataclass(frozen=True)
class Alert:
    """Something the owner must know now, and what to do about it."""

    key: str  # complaints-warn, complaints-stop, bounces-warn, bounces-pause, stuck
    text: str  # what happened, with the numbers
    action: str  # what to do
    hold: m.HoldKind | None = None  # what the alert stops until the owner confirms
    repeat: timedelta = ALERT_WINDOW  # sent again only this long after (a hold's: once per hold)

    @property
    def reason(self) -> str:
        return f"{self.text} {self.action}"


def rate_alerts(numbers: OwnerNumbers, *, family: str | None = None) -> list[Alert]:
    """The complaint and bounce alerts the numbers call for: per family the stronger one only.

    `family` ("complaints" or "bounces") keeps one family's alerts."""
    found: list[Alert] = []
    sent = numbers.sent_total
    if sent and numbers.complaint_rate >= COMPLAINT_ALERT and family in (None, "complaints"):
        said = (
            f"spam complaints: {numbers.complaints} of {sent} emails sent in 7 days "
            f"({numbers.complaint_rate:.2%}; the limit is {COMPLAINT_ALERT:.1%})."
        )
        if numbers.complaint_rate >= COMPLAINT_STOP:
            found.append(
                Alert(
                    "complaints-stop",
                    f"{said} That is past {COMPLAINT_STOP:.1%}, the line Gmail and Yahoo hold senders to: "
                    "newsletters are held, and none goes out until you say so. The series go on.",
                    "Look at which emails drew the complaints (Results) and take off the list anyone who "
                    "did not sign up themselves; then press “Send newsletters again” on the console's "
                    "Today page.",
                    hold=m.HoldKind.NEWSLETTERS,
                )
            )
        else:
            found.append(
                Alert(
                    "complaints-warn",
                    f"{said} Past {COMPLAINT_ALERT:.1%} mailbox providers start to file the practice's "
                    f"mail as spam; at {COMPLAINT_STOP:.1%} nurture holds newsletters.",
                    "Look at which emails drew them and who is on the list (Results); "
                    "send less often if readers seem tired of the emails.",
                )
            )
    if sent and numbers.bounce_rate >= BOUNCE_ALERT and family in (None, "bounces"):
        said = (
            f"bounces: {numbers.bounces} of {sent} emails sent in 7 days "
            f"({numbers.bounce_rate:.1%}; the limit is {BOUNCE_ALERT:.0%})."
        )
        if numbers.bounce_rate >= BOUNCE_PAUSE:
            found.append(
                Alert(
                    "bounces-pause",
                    f"{said} That is past {BOUNCE_PAUSE:.0%}: all sending is paused, so that the "
                    "practice's address keeps its good name; nothing goes out until you say so.",
                    "Check recent imports for old or mistyped addresses and remove them, run "
                    "`nurture doctor`, then press “Resume sending” on the console's Today page.",
                    hold=m.HoldKind.ALL,
                )
            )
        else:
            found.append(
                Alert(
                    "bounces-warn",
                    f"{said} Past {BOUNCE_ALERT:.0%} mailbox providers start to distrust the sender; "
                    f"at {BOUNCE_PAUSE:.0%} nurture pauses all sending.",
                    "Check recent imports for old or mistyped addresses.",
                )
            )
    return found


def stuck_alert(numbers: OwnerNumbers, now: datetime) -> Alert | None:
    stuck = numbers.stuck
    if (
        stuck.blocked
        and stuck.oldest_claimed_at is not None
        and stuck.oldest_claimed_at <= now - STUCK_ALERT_AFTER
    ):
        return Alert(
            "stuck",
            f"{stuck.blocked} emails have been stuck for over an hour "
            f"and cannot be settled automatically: {stuck.reason}.",
            "",
            repeat=timedelta(days=1),
        )
    return None


def alerts(numbers: OwnerNumbers, now: datetime) -> list[Alert]:
    """Every alert the numbers over the last 7 days call for."""
    found = rate_alerts(numbers)
    stuck = stuck_alert(numbers, now)
    return [*found, stuck] if stuck is not None else found


def alert_reasons(numbers: OwnerNumbers, now: datetime) -> list[str]:
    """What needs the owner now, from numbers over the last 7 days; empty when all is well."""
    return [alert.reason.strip() for alert in alerts(numbers, now)]


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
