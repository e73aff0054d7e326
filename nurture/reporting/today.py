"""What the console's first page shows: the next 24 hours, the last sending pass,
deliveries that need the owner, holds and warnings (the same alerts the owner is
emailed, from nurture.reporting.notices), and the week's signups."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from nurture.app import App
from nurture.reporting.notices import UP_TO_NOW, current_alerts
from nurture.reporting.owner_summary import ALERT_WINDOW, count_owner_numbers
from nurture.sending.deliveries import count_stuck
from nurture.sending.holds import Hold, active_holds
from nurture.sending.passlog import last_pass
from nurture.store import models as m
from nurture.store.db import reading

PASS_SILENCE = timedelta(minutes=10)
WEBHOOK_SILENCE = timedelta(hours=24)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Upcoming:
    subject: str
    what: str  # "Series: <title>, email 2" or "Newsletter"
    count: int
    whose_time: str


@dataclass
class Today:
    upcoming: list[Upcoming] = field(default_factory=list)
    last_pass: m.SendPassRecord | None = None
    stuck: int = 0
    failed_week: int = 0
    warnings: list[str] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)  # sending an alert stopped until the owner says so
    paused_readers: int = 0  # of `active`: readers who paused their mail (or whom sunset paused)
    active: int = 0
    new_this_week: int = 0
    sent_week: int = 0


def _receiving(now: datetime, *, series: bool) -> tuple[Any, ...]:
    """Readers who get this kind of email now: not paused, and not turned off."""
    turned_off = m.Subscriber.series_off if series else m.Subscriber.newsletter_off
    return (
        turned_off.is_(False),
        or_(m.Subscriber.paused_until.is_(None), m.Subscriber.paused_until <= now),
    )


def _upcoming(app: App, now: datetime) -> list[Upcoming]:
    horizon = now + timedelta(hours=24)
    found: list[Upcoming] = []
    with reading(app.engine) as session:
        steps = session.execute(
            select(m.Enrollment.campaign, m.Enrollment.next_step, func.count())
            .join(m.Subscriber, m.Subscriber.id == m.Enrollment.subscriber_id)
            .where(m.Enrollment.status == m.EnrollmentStatus.ACTIVE, m.Enrollment.next_due_at <= horizon)
            .where(m.Subscriber.status == m.SubscriberStatus.ACTIVE, *_receiving(now, series=True))
            .group_by(m.Enrollment.campaign, m.Enrollment.next_step)
            .order_by(m.Enrollment.campaign, m.Enrollment.next_step)
        ).all()
        letters = session.scalars(
            select(m.Newsletter).where(
                m.Newsletter.status.in_([m.NewsletterStatus.SCHEDULED, m.NewsletterStatus.SENDING]),
                m.Newsletter.first_due_at <= horizon,
            )
        ).all()
        audience = {}
        for letter in letters:
            query = (
                select(func.count())
                .select_from(m.Subscriber)
                .where(m.Subscriber.status == m.SubscriberStatus.ACTIVE, *_receiving(now, series=False))
            )
            if letter.segment_tag:
                query = query.join(m.SubscriberTag).where(m.SubscriberTag.tag == letter.segment_tag)
            already = (
                select(func.count()).select_from(m.Delivery).where(m.Delivery.newsletter_id == letter.id)
            )
            audience[letter.id] = max(0, int(session.scalar(query) or 0) - int(session.scalar(already) or 0))
    for slug, step, count in steps:
        campaign = app.campaigns.get(slug)
        if campaign is None or step > len(campaign.steps):
            continue
        found.append(
            Upcoming(
                campaign.step(step).email.subject,
                f"Series “{campaign.title}”, email {step}",
                int(count),
                "each reader’s own time, within the send window",
            )
        )
    for letter in letters:
        whose = (
            "each reader’s own time"
            if letter.timezone_mode == "subscriber"
            else "practice time, everyone at once"
        )
        found.append(
            Upcoming(
                letter.subject,
                f"Newsletter, {letter.send_at_local.replace('T', ' ')[:16]}",
                audience[letter.id],
                whose,
            )
        )
    return found


def today(app: App, now: datetime) -> Today:
    info = Today(upcoming=_upcoming(app, now), last_pass=last_pass(app), stuck=count_stuck(app, now))
    week_ago = now - WEEK
    with reading(app.engine) as session:

        def count(query: object) -> int:
            return int(session.scalar(query) or 0)  # type: ignore[call-overload]

        info.failed_week = count(
            select(func.count())
            .select_from(m.Delivery)
            .where(m.Delivery.status == m.DeliveryStatus.FAILED, m.Delivery.claimed_at >= week_ago)
        )
        info.active = count(
            select(func.count())
            .select_from(m.Subscriber)
            .where(m.Subscriber.status == m.SubscriberStatus.ACTIVE)
        )
        info.new_this_week = count(
            select(func.count()).select_from(m.Subscriber).where(m.Subscriber.created_at >= week_ago)
        )
        info.sent_week = count(
            select(func.count())
            .select_from(m.Delivery)
            .where(m.Delivery.status == m.DeliveryStatus.SENT, m.Delivery.claimed_at >= week_ago)
        )
        numbers = count_owner_numbers(
            session, app.config, now - ALERT_WINDOW, now + UP_TO_NOW, per_email=False
        )
        found = current_alerts(session, app.config, numbers, now)
        info.holds = active_holds(session)
        info.paused_readers = count(
            select(func.count())
            .select_from(m.Subscriber)
            .where(
                m.Subscriber.status == m.SubscriberStatus.ACTIVE,
                m.Subscriber.paused_until.is_not(None),
                m.Subscriber.paused_until > now,
            )
        )
        sent_day = count(
            select(func.count())
            .select_from(m.Delivery)
            .where(m.Delivery.status == m.DeliveryStatus.SENT, m.Delivery.claimed_at >= now - WEBHOOK_SILENCE)
        )
        heard_day = count(
            select(func.count())
            .select_from(m.ProviderEvent)
            .where(m.ProviderEvent.received_at >= now - WEBHOOK_SILENCE)
        )
    held = {hold.kind for hold in info.holds}
    for alert in found:
        if alert.key == "stuck" or alert.hold in held:
            continue  # stuck deliveries have their own card; a hold in place is shown as the hold
        info.warnings.append(f"{alert.text[:1].upper()}{alert.text[1:]} {alert.action}")
    if info.last_pass is None or info.last_pass.finished_at < now - PASS_SILENCE:
        when = "has ever run" if info.last_pass is None else "has run in the last 10 minutes"
        info.warnings.append(
            f"No sending pass {when}: nothing goes out until one does. Sending runs on the "
            "server every minute once it is switched on: ask whoever looks after the server."
        )
    elif info.last_pass.outcome != "ok":
        info.warnings.append(f"The last sending pass stopped early: {info.last_pass.outcome}")
    if sent_day and not heard_day:
        info.warnings.append(
            "Emails went out in the last 24 hours but no delivery events came back from the email provider: "
            "check the Event Webhook settings (bounces and complaints are not being recorded)."
        )
    info.warnings.extend(str(problem) for problem in app.settings_problems)
    return info
