"""The reader's own choices, as the preference center (/preferences/<token>) changes them.

What a reader may choose, each stored on their subscriber row and read by the sending
pass both when it claims and again right before it sends:

- the series on or off (off: their place in each series is kept; back on, it goes on
  from the email they would have had next), the newsletter on or off;
- how often at most: as emails come, up to `delivery.max_emails_per_day`, or at most
  one in any seven days;
- a pause of 30, 60 or 90 days: nothing at all goes out until then, and then mail
  starts again by itself, each series from where it stopped (newsletters sent during
  the pause are skipped). A paused reader stays subscribed: never counted as lost;
- their first name and time zone; and leaving altogether.

Every change appends a consent record (kind "preference": what changed, when, and
from which page), never an IP address: the opt-in is the consent evidence, and a
preference only narrows it. Looking at the page is a sign of life for re-permission
(`preferences_seen_at`), nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from nurture.addresses import clean_first_name, clean_timezone
from nurture.app import App
from nurture.audience import repermission
from nurture.audience.consent import record_consent
from nurture.audience.signup import unsubscribe
from nurture.errors import InputError
from nurture.store import models as m
from nurture.store.db import reading, transaction

PAGE = "preference center"
PAUSE_DAYS = (30, 60, 90)


@dataclass(frozen=True)
class Choices:
    series: bool
    newsletter: bool
    frequency: m.Frequency
    first_name: str | None
    timezone: str | None


@dataclass(frozen=True)
class Reader:
    """What the preference center shows a reader about themselves."""

    subscriber_id: int
    active: bool  # only an active subscriber's choices can change
    address_hint: str  # "s…@example.com": whose page this is, without spelling it out
    choices: Choices
    paused_until: datetime | None  # None when not paused now
    paused_by_sunset: bool
    asked: bool  # an open re-permission ask: the page offers "keep me on the list"


def address_hint(email: str) -> str:
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}…@{domain}" if local else email


def _reader(subscriber: m.Subscriber, now: datetime, asked: bool) -> Reader:
    paused = subscriber.paused_until if subscriber.paused_until and subscriber.paused_until > now else None
    return Reader(
        subscriber_id=subscriber.id,
        active=subscriber.status == m.SubscriberStatus.ACTIVE,
        address_hint=address_hint(subscriber.email),
        choices=Choices(
            series=not subscriber.series_off,
            newsletter=not subscriber.newsletter_off,
            frequency=m.Frequency(subscriber.frequency),
            first_name=subscriber.first_name,
            timezone=subscriber.timezone,
        ),
        paused_until=paused,
        paused_by_sunset=repermission.paused_by_sunset(paused),
        asked=asked,
    )


def visit(app: App, subscriber_id: int, now: datetime) -> Reader | None:
    """The reader's page; None when there is no such subscriber. Notes the visit (a sign of life)."""
    with transaction(app.engine) as session:
        subscriber = session.get(m.Subscriber, subscriber_id)
        if subscriber is None:
            return None
        if subscriber.status == m.SubscriberStatus.ACTIVE:
            subscriber.preferences_seen_at = now
        return _reader(subscriber, now, repermission.has_open_ask(session, subscriber_id))


def look(app: App, subscriber_id: int, now: datetime) -> Reader | None:
    """The reader's page without noting a visit (the "keep" page, which a link scanner may open)."""
    with reading(app.engine) as session:
        subscriber = session.get(m.Subscriber, subscriber_id)
        if subscriber is None:
            return None
        return _reader(subscriber, now, repermission.has_open_ask(session, subscriber_id))


def save(app: App, subscriber_id: int, choices: Choices, now: datetime, *, source: str = PAGE) -> list[str]:
    """Apply the reader's choices; what changed, in words (also the consent records' details).

    InputError (nothing changed) for a first name or time zone that cannot be used."""
    name = clean_first_name(choices.first_name)
    zone = clean_timezone(choices.timezone)
    with transaction(app.engine) as session:
        subscriber = _active(session, subscriber_id)
        changes: list[str] = []
        if subscriber.series_off == choices.series:
            subscriber.series_off = not choices.series
            changes.append(f"series: {'on' if choices.series else 'off'}")
        if subscriber.newsletter_off == choices.newsletter:
            subscriber.newsletter_off = not choices.newsletter
            changes.append(f"newsletter: {'on' if choices.newsletter else 'off'}")
        if subscriber.frequency != choices.frequency:
            subscriber.frequency = choices.frequency
            changes.append(f"how often: {describe_frequency(choices.frequency)}")
        if subscriber.first_name != name:
            subscriber.first_name = name
            changes.append("first name changed" if name else "first name removed")
        if subscriber.timezone != zone:
            subscriber.timezone = zone
            changes.append(f"time zone: {zone or 'the practice’s'}")
        for change in changes:
            record_consent(
                session, subscriber_id, m.ConsentKind.PREFERENCE, now, source=source, detail=change
            )
        return changes


def pause(app: App, subscriber_id: int, days: int, now: datetime, *, source: str = PAGE) -> datetime:
    """Nothing goes out for `days` (30, 60 or 90) from now; mail starts again by itself then."""
    if days not in PAUSE_DAYS:
        raise InputError(f"a pause is {', '.join(map(str, PAUSE_DAYS))} days long, not {days}")
    until = now + timedelta(days=days)
    with transaction(app.engine) as session:
        subscriber = _active(session, subscriber_id)
        subscriber.paused_until = until
        record_consent(
            session,
            subscriber_id,
            m.ConsentKind.PREFERENCE,
            now,
            source=source,
            detail=f"paused for {days} days, until {until:%Y-%m-%d %H:%M} UTC",
        )
    return until


def resume(app: App, subscriber_id: int, now: datetime, *, source: str = PAGE) -> bool:
    """End a pause now (the reader's own, or sunset's). False when nothing was paused."""
    with transaction(app.engine) as session:
        subscriber = _active(session, subscriber_id)
        if subscriber.paused_until is None or subscriber.paused_until <= now:
            return False
        by_sunset = repermission.paused_by_sunset(subscriber.paused_until)
        subscriber.paused_until = None
        record_consent(
            session,
            subscriber_id,
            m.ConsentKind.PREFERENCE,
            now,
            source=source,
            detail="pause ended: emails start again" + (" (after a sunset pause)" if by_sunset else ""),
        )
        return True


def keep(app: App, subscriber_id: int, now: datetime) -> bool:
    """The re-permission email's "keep me on the list"; False when there was nothing to answer."""
    with transaction(app.engine) as session:
        return repermission.keep(session, subscriber_id, now)


def leave(app: App, subscriber_id: int, now: datetime, *, source: str = PAGE) -> bool:
    """Unsubscribe from everything, from the preference center."""
    return unsubscribe(app, subscriber_id, now, source=source, reason="from the preference center")


def describe_frequency(frequency: str) -> str:
    return "at most one email a week" if frequency == m.Frequency.WEEKLY else "as emails come"


def _active(session: Session, subscriber_id: int) -> m.Subscriber:
    subscriber = session.get(m.Subscriber, subscriber_id)
    if subscriber is None or subscriber.status != m.SubscriberStatus.ACTIVE:
        raise InputError("only a subscribed reader's choices can change")
    return subscriber


@dataclass(frozen=True)
class ChoiceCounts:
    """How many subscribed readers made each choice (the results page), and how many left from the page."""

    active: int
    series_off: int
    newsletter_off: int
    weekly: int
    paused: int  # by themselves, until a date
    paused_by_sunset: int  # no answer to a re-permission email
    left_here: int  # unsubscribed from the preference center (in `since`, or ever)


def choice_counts(app: App, now: datetime, since: datetime | None = None) -> ChoiceCounts:
    subscriber = m.Subscriber
    active = subscriber.status == m.SubscriberStatus.ACTIVE
    paused = and_(subscriber.paused_until.is_not(None), subscriber.paused_until > now)
    by_sunset = subscriber.paused_until >= repermission.UNTIL_THEY_RETURN

    def counted(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    with reading(app.engine) as session:
        row = session.execute(
            select(
                func.count(),
                counted(subscriber.series_off.is_(True)),
                counted(subscriber.newsletter_off.is_(True)),
                counted(subscriber.frequency == m.Frequency.WEEKLY),
                counted(and_(paused, ~by_sunset)),
                counted(and_(paused, by_sunset)),
            ).where(active)
        ).one()
        left = (
            select(func.count())
            .select_from(m.ConsentEvent)
            .where(m.ConsentEvent.kind == m.ConsentKind.UNSUBSCRIBE, m.ConsentEvent.source == PAGE)
        )
        if since is not None:
            left = left.where(m.ConsentEvent.recorded_at >= since)
        left_here = int(session.scalar(left) or 0)
    active_count, series_off, newsletter_off, weekly, paused_count, by_sunset_count = (int(v) for v in row)
    return ChoiceCounts(
        active=active_count,
        series_off=series_off,
        newsletter_off=newsletter_off,
        weekly=weekly,
        paused=paused_count,
        paused_by_sunset=by_sunset_count,
        left_here=left_here,
    )
