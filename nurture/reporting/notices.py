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
- An alert: after any pass, when complaints or bounces cross their limits over the
  last 7 days, or emails are stuck for an hour with no way to settle them; at most
  one a day.
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
    OwnerNumbers,
    action_items,
    alert_reasons,
    count_owner_numbers,
)
from nurture.sending.one_email import send_now
from nurture.sending.planning import at_local, zone
from nurture.store import models as m
from nurture.store.db import reading, transaction

log = logging.getLogger(__name__)

SUMMARY = "summary"
ALERT = "alert"
SUMMARY_WEEKDAY = 0  # Monday
SUMMARY_TIME = time(8, 0)
ALERT_EVERY = timedelta(days=1)


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


def alert_notice(reasons: list[str]) -> Notice:
    lines = ["nurture noticed something that needs you soon:", "", *[f"- {reason}" for reason in reasons], ""]
    lines.append("Sending goes on meanwhile; this alert is sent at most once a day.")
    return Notice(
        name="owner-alert",
        subject="Action needed: your practice emails",
        preheader=reasons[0][:120],
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


def send_due_notices(app: App, now: datetime, *, weekly: bool) -> list[str]:
    """After a pass: an alert if one is called for (at most daily), and with `weekly` the
    Monday summary once it is due. Returns what was sent; never raises for a notice
    that could not go out (the pass's own work is done), it logs it instead."""
    config = app.config
    if not config.practice.owner_email:
        return []
    address = owner_address(config)
    days = practice_days(config, now)
    sent: list[str] = []
    try:
        with reading(app.engine) as session:
            numbers = count_owner_numbers(session, config, now - ALERT_WINDOW, now)
            alerted = _recorded(session, ALERT, since=now - ALERT_EVERY) or _recorded(
                session, ALERT, period=days.today
            )
            summarized = _recorded(session, SUMMARY, period=days.monday)
        due: list[tuple[NoticeRecord, Notice]] = []
        reasons = alert_reasons(numbers, now)
        if reasons and not alerted:
            due.append(
                (NoticeRecord(app.engine, ALERT, days.today, now, " | ".join(reasons)), alert_notice(reasons))
            )
        # Monday from 08:00 only: a daemon started later in the week waits for the next Monday.
        if weekly and now >= days.summary_due_at and days.today == days.monday and not summarized:
            due.append(
                (NoticeRecord(app.engine, SUMMARY, days.monday, now), summary_notice(config, numbers, now))
            )
        for record, notice in due:
            if send_notice(app.transport, prepare_notice(config, app.renderer, notice), address, record):
                sent.append(record.kind)
    except NurtureError as exc:
        log.warning("owner notice not sent: %s", exc)
    return sent
