"""Emails to the practice owner: the weekly summary and the alerts.

They are transactional emails to `practice.owner_email` only (never to subscribers),
rendered through the same templates (templates/notice.*) and checked by the same
rules as every other email before they go out through the configured transport.

Each goes out once: a row in owner_notices is written first, like a delivery's claim
(unique per kind and period), and removed again if the email could not be sent.

- The summary: `nurture summary` sends it on demand; `nurture run` sends it each
  Monday from 08:00 practice time (delivery.default_timezone), once per week (a
  Monday the daemon was down all day is skipped, not made up later in the week).
- An alert: after any pass, when complaints or bounces cross their limits over the
  last 7 days, or emails are stuck for an hour with no way to settle them; at most
  one a day.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nurture.app import App
from nurture.content.checks import check_email
from nurture.content.prepared import Recipient
from nurture.errors import ConfigError, ContentError, NurtureError, TransportError
from nurture.reporting.owner_summary import ALERT_WINDOW, OwnerNumbers, action_items, alert_reasons, owner_numbers
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


def owner_address(app: App, to: str | None = None) -> str:
    address = to or app.config.practice.owner_email
    if not address:
        raise ConfigError(
            f"{app.config.path}: practice.owner_email is not set: add the address that should get the weekly summary "
            "and alerts under practice:, or give --to"
        )
    return address


def _when(moment: datetime, app: App) -> str:
    return f"{moment.astimezone(zone(app.config.delivery.default_timezone)):%a %d %b %Y %H:%M}"


def summary_notice(app: App, numbers: OwnerNumbers, now: datetime) -> Notice:
    sent = numbers.sent_total
    lines = [
        f"Here is how the emails did from {_when(numbers.start, app)} to {_when(numbers.end, app)} "
        f"({app.config.delivery.default_timezone}).",
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


def alert_notice(app: App, reasons: list[str]) -> Notice:
    lines = ["nurture noticed something that needs you soon:", "", *[f"- {reason}" for reason in reasons], ""]
    lines.append("Sending goes on meanwhile; this alert is sent at most once a day.")
    return Notice(name="owner-alert", subject="Action needed: your practice emails", preheader=reasons[0][:120], body="\n".join(lines))


def send_notice(app: App, notice: Notice, to: str) -> None:
    """Render, check with the rules every email passes, send through the transport."""
    prepared = app.renderer.prepare_notice(notice.name, notice.subject, notice.preheader, notice.body)
    findings = check_email(app.config, app.renderer, None, prepared)
    if findings:
        raise ContentError("\n".join(str(finding) for finding in findings))
    envelope = prepared.envelope(f"{notice.name}-{secrets.token_hex(4)}", Recipient(email=to, first_name=None), {"kind": notice.name})
    outcomes = app.transport.send(prepared.batch([envelope]))
    failed = [outcome for outcome in outcomes if outcome.status != "sent"]
    if failed:
        raise TransportError(f"the {notice.name.replace('-', ' ')} email could not be sent: {failed[0].error}")


def summary_period(app: App, now: datetime) -> tuple[str, datetime]:
    """This week's summary: its Monday (practice time) and the moment it is due."""
    tz = zone(app.config.delivery.default_timezone)
    local = now.astimezone(tz).date()
    monday = local - timedelta(days=(local.weekday() - SUMMARY_WEEKDAY) % 7)
    return monday.isoformat(), at_local(monday, SUMMARY_TIME, tz)


def _claim(app: App, kind: str, period: str, now: datetime, detail: str | None = None) -> int | None:
    try:
        with transaction(app.engine) as session:
            notice = m.OwnerNotice(kind=kind, period=period, sent_at=now, detail=detail and detail[:500])
            session.add(notice)
            session.flush()
            return notice.id
    except IntegrityError:
        return None  # another process has it


def _unclaim(app: App, notice_id: int) -> None:
    with transaction(app.engine) as session:
        row = session.get(m.OwnerNotice, notice_id)
        if row is not None:
            session.delete(row)


def send_summary(app: App, now: datetime, *, to: str | None = None) -> OwnerNumbers:
    """`nurture summary`: the last 7 days, sent now; it counts as this week's summary."""
    address = owner_address(app, to)
    numbers = owner_numbers(app, now - ALERT_WINDOW, now)
    send_notice(app, summary_notice(app, numbers, now), address)
    if to is None:
        _claim(app, SUMMARY, summary_period(app, now)[0], now)
    return numbers


def _alert_sent_since(app: App, since: datetime) -> bool:
    with reading(app.engine) as session:
        return session.scalar(select(m.OwnerNotice.id).where(m.OwnerNotice.kind == ALERT, m.OwnerNotice.sent_at > since).limit(1)) is not None


def _recorded(app: App, kind: str, period: str) -> bool:
    with reading(app.engine) as session:
        return session.scalar(select(m.OwnerNotice.id).where(m.OwnerNotice.kind == kind, m.OwnerNotice.period == period)) is not None


def _send_claimed(app: App, kind: str, period: str, now: datetime, notice: Notice, detail: str | None = None) -> bool:
    if _recorded(app, kind, period):
        return False
    claimed = _claim(app, kind, period, now, detail)
    if claimed is None:
        return False
    try:
        send_notice(app, notice, owner_address(app))
    except BaseException:
        _unclaim(app, claimed)  # not sent: the next pass tries again
        raise
    return True


def send_due_notices(app: App, now: datetime, *, weekly: bool) -> list[str]:
    """After a pass: an alert if one is called for (at most daily), and with `weekly` the
    Monday summary once it is due. Returns what was sent; never raises for a notice
    that could not go out (the pass's own work is done), it logs it instead."""
    if not app.config.practice.owner_email:
        return []
    sent: list[str] = []
    try:
        numbers = owner_numbers(app, now - ALERT_WINDOW, now)
        reasons = alert_reasons(numbers, now)
        if reasons and not _alert_sent_since(app, now - ALERT_EVERY):
            period = now.astimezone(zone(app.config.delivery.default_timezone)).date().isoformat()
            if _send_claimed(app, ALERT, period, now, alert_notice(app, reasons), detail=" | ".join(reasons)):
                sent.append(ALERT)
        if weekly:
            period, due_at = summary_period(app, now)
            # Monday from 08:00 only: a daemon started later in the week waits for the next Monday.
            today = now.astimezone(zone(app.config.delivery.default_timezone)).date().isoformat()
            if now >= due_at and today == period and _send_claimed(app, SUMMARY, period, now, summary_notice(app, numbers, now)):
                sent.append(SUMMARY)
    except NurtureError as exc:
        log.warning("owner notice not sent: %s", exc)
    return sent
