"""Emails to the practice owner: the weekly summary and the alerts.

They are transactional emails to `practice.owner_email` only (never to subscribers),
rendered through the same templates (templates/notice.*) and checked by the same
rules as every other email before they go out through the configured transport.

Each goes out once: a row in owner_notices is written first, like a delivery's claim
(unique per kind and period), and removed again if the email could not be sent
(`nurture.sending.one_email.send_now` with a `NoticeRecord` as its ledger). A round
of notices reads everything it decides on in one read transaction; each notice it
sends then takes one write transaction for its record (two if it must be removed).

- The summary: `nurture summary` sends it on demand; `nurture run` sends it each
  Monday from 08:00 practice time (delivery.default_timezone), once per week (a
  Monday the daemon was down all day is skipped, not made up later in the week).
- An alert: after any pass, when complaints or bounces cross their lines over the
  last 7 days (nurture.reporting.owner_summary), or emails are stuck for an hour with
  no way to settle them. Each alert goes out once, one email each, saying what to do:
  a warning at most once a week, the stuck alert at most once a day. An alert that
  stops something (spam complaints past 0.3%: newsletters; bounces past 5%: all
  sending) first places a hold (nurture.sending.holds), whether or not the owner has
  an address set, and its email goes out once per hold. Once the owner lifts a hold,
  its family is judged on what came after.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.config import Config
from nurture.content.checks import check_email
from nurture.content.prepared import PreparedEmail, Recipient
from nurture.content.rendering import Renderer
from nurture.errors import ConfigError, ContentError, NurtureError
from nurture.providers.base import Transport
from nurture.reporting.owner_summary import (
    ALERT_WINDOW,
    Alert,
    OwnerNumbers,
    action_items,
    alerts,
    count_owner_numbers,
    rate_alerts,
)
from nurture.sending.holds import active_holds, last_lifted, place
from nurture.sending.one_email import send_now
from nurture.sending.planning import at_local, zone
from nurture.store import models as m
from nurture.store.db import reading, transaction

log = logging.getLogger(__name__)

SUMMARY = "summary"
ALERT = "alert"
SUMMARY_WEEKDAY = 0  # Monday
SUMMARY_TIME = time(8, 0)
# The alerts' window ends at now, included: an event recorded this instant counts.
UP_TO_NOW = timedelta(microseconds=1)
# Each alert family, and the hold its stop line places.
FAMILIES = (("complaints", m.HoldKind.NEWSLETTERS), ("bounces", m.HoldKind.ALL))
ALERT_SUBJECTS = {
    "complaints-warn": "Action needed: spam complaints are rising",
    "complaints-stop": "Newsletters held: too many spam complaints",
    "bounces-warn": "Action needed: many emails bounce",
    "bounces-pause": "Sending paused: too many emails bounce",
    "stuck": "Action needed: emails are stuck",
}


@dataclass(frozen=True)
class Notice:
    name: str
    subject: str
    preheader: str
    body: str  # Markdown


def owner_address(config: Config, to: str | None = None) -> str:
    address = to or config.practice.owner_email
    if not address:
        raise ConfigError(
            f"{config.path}: practice.owner_email is not set: "
            "add the address that should get the weekly summary "
            "and alerts under practice:, or give --to"
        )
    return address


def _when(moment: datetime, config: Config) -> str:
    return f"{moment.astimezone(zone(config.delivery.default_timezone)):%a %d %b %Y %H:%M}"


def summary_notice(config: Config, numbers: OwnerNumbers, now: datetime) -> Notice:
    sent = numbers.sent_total
    lines = [
        f"Here is how the emails did from {_when(numbers.start, config)} to {_when(numbers.end, config)} "
        f"({config.delivery.default_timezone}).",
        "",
        f"- New subscribers: {numbers.new_subscribers}",
        f"- Emails sent: {sent}",
        *[f"    - {line.label}: {line.count}" for line in numbers.sent],
        f"- Unsubscribes: {numbers.unsubscribes}",
        f"- Bounces: {numbers.bounces} ({numbers.bounce_rate:.1%} of sent)",
        f"- Spam complaints: {numbers.complaints} ({numbers.complaint_rate:.2%} of sent)",
        f"- Failed: {numbers.failed}",
        f"- Stuck now: {numbers.stuck.stuck}",
        "",
    ]
    items = action_items(numbers, now)
    if items:
        lines += ["**Needs your attention**", "", *[f"- {item}" for item in items]]
    else:
        lines.append("Nothing needs your attention this week.")
    return Notice(
        name="owner-summary",
        subject=f"Weekly summary: {sent} emails sent, {numbers.new_subscribers} new subscribers",
        preheader="New subscribers, emails sent, unsubscribes, bounces and anything that needs you.",
        body="\n".join(lines),
    )


def alert_notice(alert: Alert) -> Notice:
    lines = ["nurture noticed something that needs you:", "", alert.text, ""]
    if alert.action:
        lines += [f"**What to do:** {alert.action}", ""]
    if alert.hold is None:
        lines.append(
            "Sending goes on meanwhile. You get this alert once; nurture tells you again if it goes on."
        )
    else:
        lines.append("The console's Today page shows this too, with the button that ends the hold.")
    return Notice(
        name="owner-alert",
        subject=ALERT_SUBJECTS.get(alert.key, "Action needed: your practice emails"),
        preheader=alert.text[:120],
        body="\n".join(lines),
    )


def prepare_notice(config: Config, renderer: Renderer, notice: Notice) -> PreparedEmail:
    """Rendered through templates/notice.*, and checked with the rules every email passes."""
    prepared = renderer.prepare_notice(notice.name, notice.subject, notice.preheader, notice.body)
    findings = check_email(config, renderer, None, prepared)
    if findings:
        raise ContentError("\n".join(str(finding) for finding in findings))
    return prepared


@dataclass(frozen=True)
class PracticeDays:
    """`now` on the practice's calendar (delivery.default_timezone)."""

    today: str  # ISO date: an alert's period
    monday: str  # this week's Monday: the summary's period
    summary_due_at: datetime  # that Monday at 08:00


def practice_days(config: Config, now: datetime) -> PracticeDays:
    tz = zone(config.delivery.default_timezone)
    local = now.astimezone(tz).date()
    monday = local - timedelta(days=(local.weekday() - SUMMARY_WEEKDAY) % 7)
    return PracticeDays(local.isoformat(), monday.isoformat(), at_local(monday, SUMMARY_TIME, tz))


@dataclass
class NoticeRecord:
    """The owner_notices row of one notice (unique per kind and period): the ledger of `send_now`."""

    engine: Engine | Connection
    kind: str
    period: str
    now: datetime
    detail: str | None = None
    notice_id: int | None = None

    def claim(self) -> bool:
        try:
            with transaction(self.engine) as session:
                row = m.OwnerNotice(
                    kind=self.kind,
                    period=self.period,
                    sent_at=self.now,
                    detail=self.detail and self.detail[:500],
                )
                session.add(row)
                session.flush()
                self.notice_id = row.id
        except IntegrityError:
            return False  # another process has it
        return True

    def release(self) -> None:
        with transaction(self.engine) as session:
            row = session.get(m.OwnerNotice, self.notice_id)
            if row is not None:
                session.delete(row)


def send_notice(
    transport: Transport, prepared: PreparedEmail, to: str, record: NoticeRecord | None = None
) -> bool:
    """The prepared notice to `to` now; False when `record` finds it sent already."""
    name = prepared.name
    recipient = Recipient(email=to, first_name=None)
    return (
        send_now(
            transport,
            prepared,
            recipient,
            kind=name,
            label=name,
            what=f"the {name.replace('-', ' ')} email",
            ledger=record,
        )
        is not None
    )


def send_summary(app: App, now: datetime, *, to: str | None = None) -> OwnerNumbers:
    """`nurture summary`: the last 7 days, sent now; it counts as this week's summary."""
    config = app.config
    address = owner_address(config, to)
    with reading(app.engine) as session:
        numbers = count_owner_numbers(session, config, now - ALERT_WINDOW, now)
    send_notice(
        app.transport, prepare_notice(config, app.renderer, summary_notice(config, numbers, now)), address
    )
    if to is None:
        NoticeRecord(
            app.engine, SUMMARY, practice_days(config, now).monday, now
        ).claim()  # already there: fine
    return numbers


def _recorded(
    session: Session, kind: str, *, period: str | None = None, since: datetime | None = None
) -> bool:
    query = select(m.OwnerNotice.id).where(m.OwnerNotice.kind == kind)
    if period is not None:
        query = query.where(m.OwnerNotice.period == period)
    if since is not None:
        query = query.where(m.OwnerNotice.sent_at > since)
    return session.scalar(query.limit(1)) is not None


def _alerted(session: Session, key: str, since: datetime) -> bool:
    """An alert of `key` went out after `since` (its periods are "<key>:<day or hold>")."""
    query = select(m.OwnerNotice.id).where(
        m.OwnerNotice.kind == ALERT, m.OwnerNotice.period.startswith(f"{key}:"), m.OwnerNotice.sent_at > since
    )
    return session.scalar(query.limit(1)) is not None


def current_alerts(session: Session, config: Config, numbers: OwnerNumbers, now: datetime) -> list[Alert]:
    """The alerts of `numbers` (the last 7 days), each family judged only on what came after
    the owner last lifted its hold, when she did so within the window."""
    found = alerts(numbers, now)
    for family, kind in FAMILIES:
        lifted = last_lifted(session, kind)
        if lifted is not None and lifted > numbers.start:
            later = count_owner_numbers(session, config, lifted, now + UP_TO_NOW, per_email=False)
            found = [alert for alert in found if not alert.key.startswith(family)]
            found += rate_alerts(later, family=family)
    return found


def place_holds(app: App, found: list[Alert], now: datetime) -> dict[str, int]:
    """Place the holds these alerts call for (one per kind at a time); alert key -> its hold's id."""
    wanted = [alert for alert in found if alert.hold is not None]
    if not wanted:
        return {}
    holds: dict[str, int] = {}
    with transaction(app.engine) as session:
        for alert in wanted:
            assert alert.hold is not None
            placed = place(session, alert.hold, alert.text, now)
            if placed is None:
                placed = next(hold.id for hold in active_holds(session) if hold.kind == alert.hold)
            else:
                log.warning("sending hold placed: %s (%s)", alert.hold, alert.key)
            holds[alert.key] = placed
    return holds


def send_due_notices(app: App, now: datetime, *, weekly: bool) -> list[str]:
    """After a pass: the holds and alerts called for (each alert once), and with `weekly` the
    Monday summary once it is due. Returns what was sent; never raises for a notice that
    could not go out (the pass's own work is done), it logs it instead."""
    config = app.config
    days = practice_days(config, now)
    sent: list[str] = []
    try:
        with reading(app.engine) as session:
            # Monday from 08:00 only: a daemon started later in the week waits for the next Monday.
            summary_due = (
                weekly
                and now >= days.summary_due_at
                and days.today == days.monday
                and not _recorded(session, SUMMARY, period=days.monday)
            )
            # Sends per email only for the summary: the alerts judge rates, from one total.
            numbers = count_owner_numbers(
                session, config, now - ALERT_WINDOW, now + UP_TO_NOW, per_email=summary_due
            )
            found = current_alerts(session, config, numbers, now)
        holds = place_holds(app, found, now)  # whether or not anyone can be told
        if not config.practice.owner_email:
            return []
        address = owner_address(config)
        due: list[tuple[NoticeRecord, Notice]] = []
        with reading(app.engine) as session:
            for alert in found:
                hold = holds.get(alert.key)
                period = f"{alert.key}:hold-{hold}" if hold is not None else f"{alert.key}:{days.today}"
                if _recorded(session, ALERT, period=period) or (
                    hold is None and _alerted(session, alert.key, now - alert.repeat)
                ):
                    continue
                due.append((NoticeRecord(app.engine, ALERT, period, now, alert.text), alert_notice(alert)))
        if summary_due:
            due.append(
                (NoticeRecord(app.engine, SUMMARY, days.monday, now), summary_notice(config, numbers, now))
            )
        for record, notice in due:
            if send_notice(app.transport, prepare_notice(config, app.renderer, notice), address, record):
                sent.append(
                    record.kind if record.kind == SUMMARY else f"alert ({record.period.split(':')[0]})"
                )
    except NurtureError as exc:
        log.warning("owner notice not sent: %s", exc)
    return sent
