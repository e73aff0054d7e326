"""One person or many: look up, tag, list, export (subject access) and erase."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from nurture.addresses import clean_tag, normalize_email
from nurture.app import App
from nurture.errors import NotFound
from nurture.series.enrollment import stop_enrollments
from nurture.store import models as m
from nurture.store.db import reading, transaction
from nurture.store.summaries import mark_days_dirty
from nurture.tokens import address_hash


def find_by_email(session: Session, email: str) -> m.Subscriber | None:
    _, key = normalize_email(email)
    return session.scalar(select(m.Subscriber).where(m.Subscriber.email_key == key))


def get_by_email(session: Session, email: str) -> m.Subscriber:
    subscriber = find_by_email(session, email)
    if subscriber is None:
        raise NotFound(
            "no subscriber with that address (check the spelling; "
            "`nurture subscribers list` shows who is here)"
        )
    return subscriber


def forget(app: App, email: str, now: datetime) -> None:
    """Erase the person; keep only a keyed hash of the address so they stay suppressed."""
    secret = app.config.secrets.require_secret_key()
    with transaction(app.engine) as session:
        subscriber = get_by_email(session, email)
        digest = address_hash(secret, subscriber.email_key)
        if session.get(m.Suppression, digest) is None:
            session.add(m.Suppression(address_hash=digest, reason="erased", created_at=now))
        # Results credit web unsubscribes through the person's consent record, which goes:
        # the days of their emails are counted live again (then summarized without it).
        mark_days_dirty(
            session,
            session.scalars(select(m.Delivery.claimed_at).where(m.Delivery.subscriber_id == subscriber.id)),
        )
        # Deliveries keep anonymous counts for stats (subscriber_id set NULL); the rest cascades.
        session.execute(
            update(m.Delivery).where(m.Delivery.subscriber_id == subscriber.id).values(subscriber_id=None)
        )
        session.delete(subscriber)


# ---------------------------------------------------------------- tags


def tag(app: App, email: str, tag_name: str, now: datetime) -> list[str]:
    """Tag a subscriber; campaigns listing the tag in stop_on_tags end for them. Returns those campaigns."""
    name = clean_tag(tag_name)
    stopped = [slug for slug, campaign in app.campaigns.items() if name in campaign.stop_on_tags]
    with transaction(app.engine) as session:
        subscriber = get_by_email(session, email)
        if session.get(m.SubscriberTag, (subscriber.id, name)) is None:
            session.add(m.SubscriberTag(subscriber_id=subscriber.id, tag=name, created_at=now))
        if stopped:
            stop_enrollments(session, [subscriber.id], now, campaigns=stopped)
    return stopped


def untag(app: App, email: str, tag_name: str) -> bool:
    name = clean_tag(tag_name)
    with transaction(app.engine) as session:
        subscriber = get_by_email(session, email)
        result = session.execute(
            delete(m.SubscriberTag).where(
                m.SubscriberTag.subscriber_id == subscriber.id, m.SubscriberTag.tag == name
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- reading


def list_subscribers(
    app: App, *, status: str | None = None, tag_name: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    # The six columns shown, not whole ORM objects: listing 100,000 people took 6 s, most of
    # it making and filling objects whose other columns nobody reads.
    columns = (
        m.Subscriber.id,
        m.Subscriber.email,
        m.Subscriber.first_name,
        m.Subscriber.timezone,
        m.Subscriber.status,
        m.Subscriber.created_at,
    )
    with reading(app.engine) as session:
        query = select(*columns).order_by(m.Subscriber.id)
        if status:
            query = query.where(m.Subscriber.status == status)
        if tag_name:
            query = query.join(m.SubscriberTag).where(m.SubscriberTag.tag == clean_tag(tag_name))
        if limit:
            query = query.limit(limit)
        return [row._asdict() for row in session.execute(query)]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export(app: App, email: str) -> dict[str, Any]:
    """Everything held about one person, for a subject access request."""
    with reading(app.engine) as session:
        subscriber = get_by_email(session, email)
        wordings = {row.version: row.wording for row in session.scalars(select(m.ConsentWording))}
        events = session.scalars(
            select(m.ConsentEvent)
            .where(m.ConsentEvent.subscriber_id == subscriber.id)
            .order_by(m.ConsentEvent.id)
        ).all()
        enrollments = session.scalars(
            select(m.Enrollment).where(m.Enrollment.subscriber_id == subscriber.id).order_by(m.Enrollment.id)
        ).all()
        deliveries = session.scalars(
            select(m.Delivery).where(m.Delivery.subscriber_id == subscriber.id).order_by(m.Delivery.id)
        ).all()
        delivery_ids = [row.id for row in deliveries]
        provider_events = (
            session.scalars(
                select(m.ProviderEvent)
                .where(m.ProviderEvent.delivery_id.in_(delivery_ids))
                .order_by(m.ProviderEvent.id)
            ).all()
            if delivery_ids
            else []
        )
        tags = session.scalars(
            select(m.SubscriberTag.tag).where(m.SubscriberTag.subscriber_id == subscriber.id)
        ).all()
        return {
            "subscriber": {
                "email": subscriber.email,
                "first_name": subscriber.first_name,
                "timezone": subscriber.timezone,
                "status": subscriber.status,
                "source": subscriber.source,
                "created_at": _iso(subscriber.created_at),
                "confirmed_at": _iso(subscriber.confirmed_at),
                "status_changed_at": _iso(subscriber.status_changed_at),
                # The reader's own choices (the preference center); each change is also
                # in the consent history below.
                "preferences": {
                    "series": not subscriber.series_off,
                    "newsletter": not subscriber.newsletter_off,
                    "frequency": subscriber.frequency,
                    "paused_until": _iso(subscriber.paused_until),
                },
                "preferences_seen_at": _iso(subscriber.preferences_seen_at),
            },
            "tags": sorted(tags),
            "consent_events": [
                {
                    "kind": event.kind,
                    "occurred_at": _iso(event.occurred_at),
                    "recorded_at": _iso(event.recorded_at),
                    "source": event.source,
                    "ip": event.ip,
                    "user_agent": event.user_agent,
                    "wording_version": event.wording_version,
                    "wording": wordings.get(event.wording_version) if event.wording_version else None,
                    "detail": event.detail,
                }
                for event in events
            ],
            "enrollments": [
                {
                    "campaign": row.campaign,
                    "status": row.status,
                    "next_step": row.next_step,
                    "next_step_key": row.next_step_key,
                    "version": row.version,
                    "next_due_at": _iso(row.next_due_at),
                    "enrolled_at": _iso(row.enrolled_at),
                }
                for row in enrollments
            ],
            "deliveries": [
                {
                    "stream": row.stream,
                    "step": row.step,
                    "step_key": row.step_key,
                    "status": row.status,
                    "claimed_at": _iso(row.claimed_at),
                    "finished_at": _iso(row.finished_at),
                    "provider_message_id": row.provider_message_id,
                    "error": row.error,
                }
                for row in deliveries
            ],
            "provider_events": [
                {
                    "kind": row.kind,
                    "event": row.raw_event,
                    "occurred_at": _iso(row.occurred_at),
                    "detail": row.detail,
                }
                for row in provider_events
            ],
        }
