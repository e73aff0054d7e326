"""Subscribers: double opt-in, consent records, unsubscribe, tags, export and erasure.

Every consent change appends a ConsentEvent; nothing here updates or deletes one,
except `forget`, which erases the whole person on their request.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from nurture import links
from nurture.app import App
from nurture.errors import InputError, NotFound, TokenError
from nurture.store import models as m
from nurture.store.db import chunks, insert_rows, reading, transaction
from nurture.tokens import address_hash, read_confirm_token

MAX_NAME = 100
MAX_TAG = 64


# ---------------------------------------------------------------- validation


def normalize_email(raw: str) -> tuple[str, str]:
    """Return (address as it should be written, case-folded key), or raise InputError."""
    candidate = (raw or "").strip()
    if not candidate:
        raise InputError("email address is empty")
    try:
        normalized = validate_email(candidate, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InputError(f"{candidate!r} is not a valid email address: {exc}") from None
    return normalized, normalized.casefold()


def clean_first_name(raw: str | None) -> str | None:
    """A first name safe to show in HTML and never able to break a header."""
    if raw is None:
        return None
    name = raw.strip()
    if not name:
        return None
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise InputError("first name contains a line break or control character: use letters, spaces and punctuation only")
    if len(name) > MAX_NAME:
        raise InputError(f"first name is longer than {MAX_NAME} characters")
    return name


def clean_timezone(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    zone = raw.strip()
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"{zone!r} is not an IANA time zone (for example America/Chicago, Europe/London)") from None
    return zone


def clean_tag(raw: str) -> str:
    tag = raw.strip().lower()
    if not tag or len(tag) > MAX_TAG or not all(ch.isalnum() or ch in "-_" for ch in tag):
        raise InputError(f"tag {raw!r}: use 1 to {MAX_TAG} letters, digits, '-' or '_'")
    return tag


# ---------------------------------------------------------------- store helpers


def find_by_email(session: Session, email: str) -> m.Subscriber | None:
    _, key = normalize_email(email)
    return session.scalar(select(m.Subscriber).where(m.Subscriber.email_key == key))


def get_by_email(session: Session, email: str) -> m.Subscriber:
    subscriber = find_by_email(session, email)
    if subscriber is None:
        raise NotFound("no subscriber with that address (check the spelling; `nurture subscribers list` shows who is here)")
    return subscriber


def ensure_wording(session: Session, app: App, now: datetime) -> str:
    """Store the current consent wording under its version the first time it is used."""
    consent = app.config.consent
    stored = session.get(m.ConsentWording, consent.version)
    if stored is None:
        session.add(m.ConsentWording(version=consent.version, wording=consent.wording, first_used_at=now))
        session.flush()
    elif stored.wording != consent.wording:
        raise InputError(
            f"consent.wording changed but consent.version is still {consent.version!r}: "
            "give the new wording a new version in config.yaml, so each record shows what was shown"
        )
    return consent.version


def record_consent(
    session: Session,
    subscriber_id: int,
    kind: str,
    now: datetime,
    *,
    occurred_at: datetime | None = None,
    source: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    wording_version: str | None = None,
    detail: str | None = None,
) -> None:
    session.add(
        m.ConsentEvent(
            subscriber_id=subscriber_id,
            kind=kind,
            occurred_at=occurred_at or now,
            recorded_at=now,
            source=source,
            ip=ip,
            user_agent=(user_agent or None) and user_agent[:400],
            wording_version=wording_version,
            detail=detail,
        )
    )


def is_suppressed(session: Session, app: App, email_key: str) -> bool:
    # Under every key: a forgotten person stays suppressed after the secret is rotated.
    return any(session.get(m.Suppression, address_hash(key, email_key)) is not None for key in app.config.secrets.verification_keys())


def enroll(session: Session, app: App, subscriber_ids: Sequence[int], now: datetime, *, trigger: str = "confirmed") -> int:
    """Enroll subscribers in every campaign with this trigger; resume stopped enrollments.

    Someone carrying one of a campaign's stop_on_tags is not enrolled in it.
    Returns the number of enrollments created or resumed.
    """
    if not subscriber_ids:
        return 0
    changed = 0
    for campaign in app.campaigns.values():
        if campaign.trigger != trigger:
            continue
        changed += enroll_in_campaign(session, campaign.slug, campaign.steps[0].delay_days, campaign.stop_on_tags, subscriber_ids, now)
    return changed


def enroll_in_campaign(
    session: Session,
    campaign: str,
    first_delay_days: float,
    stop_on_tags: Iterable[str],
    subscriber_ids: Sequence[int],
    start: datetime,
) -> int:
    from datetime import timedelta

    changed = 0
    due = start + timedelta(days=first_delay_days)
    stop_tags = list(stop_on_tags)
    for chunk in chunks(list(subscriber_ids), 500):
        tagged: set[int] = set()
        if stop_tags:
            tagged = set(
                session.scalars(
                    select(m.SubscriberTag.subscriber_id).where(
                        m.SubscriberTag.subscriber_id.in_(chunk), m.SubscriberTag.tag.in_(stop_tags)
                    )
                )
            )
        existing = {
            row.subscriber_id: row
            for row in session.scalars(
                select(m.Enrollment).where(m.Enrollment.campaign == campaign, m.Enrollment.subscriber_id.in_(chunk))
            )
        }
        fresh = []
        for subscriber_id in chunk:
            if subscriber_id in tagged:
                continue
            enrollment = existing.get(subscriber_id)
            if enrollment is None:
                fresh.append(
                    {
                        "subscriber_id": subscriber_id,
                        "campaign": campaign,
                        "next_step": 1,
                        "next_due_at": due,
                        "status": m.EnrollmentStatus.ACTIVE,
                        "enrolled_at": start,
                        "updated_at": start,
                    }
                )
            elif enrollment.status == m.EnrollmentStatus.STOPPED:
                # Resume where they left off; the unique delivery key keeps sent steps sent.
                enrollment.status = m.EnrollmentStatus.ACTIVE
                enrollment.next_due_at = start
                enrollment.updated_at = start
                changed += 1
        if fresh:
            insert_rows(session, m.Enrollment.__table__, fresh)
            changed += len(fresh)
    return changed


def stop_enrollments(session: Session, subscriber_ids: Sequence[int], now: datetime, campaigns: Sequence[str] | None = None) -> None:
    for chunk in chunks(list(subscriber_ids), 500):
        statement = (
            update(m.Enrollment)
            .where(m.Enrollment.subscriber_id.in_(chunk), m.Enrollment.status == m.EnrollmentStatus.ACTIVE)
            .values(status=m.EnrollmentStatus.STOPPED, updated_at=now)
        )
        if campaigns is not None:
            statement = statement.where(m.Enrollment.campaign.in_(list(campaigns)))
        session.execute(statement)


# ---------------------------------------------------------------- opt-in and confirmation


@dataclass(frozen=True)
class SubscribeResult:
    status: str  # "confirmation_sent" | "already_active"
    subscriber_id: int


def subscribe(
    app: App,
    email: str,
    now: datetime,
    *,
    first_name: str | None = None,
    timezone: str | None = None,
    source: str = "cli",
    ip: str | None = None,
    user_agent: str | None = None,
) -> SubscribeResult:
    """Create or re-open a pending subscriber, record the opt-in and send the confirmation."""
    address, key = normalize_email(email)
    name = clean_first_name(first_name)
    zone = clean_timezone(timezone)
    app.config.secrets.require_secret_key()
    with transaction(app.engine) as session:
        subscriber = session.scalar(select(m.Subscriber).where(m.Subscriber.email_key == key))
        if subscriber is not None and subscriber.status == m.SubscriberStatus.ACTIVE:
            return SubscribeResult("already_active", subscriber.id)
        wording = ensure_wording(session, app, now)
        if subscriber is None:
            subscriber = m.Subscriber(
                email=address,
                email_key=key,
                first_name=name,
                timezone=zone,
                status=m.SubscriberStatus.PENDING,
                source=source[:100],
                created_at=now,
                status_changed_at=now,
                confirm_nonce=1,
            )
            session.add(subscriber)
            session.flush()
        else:
            # Pending again, or back after leaving: they must confirm afresh.
            subscriber.status = m.SubscriberStatus.PENDING
            subscriber.status_changed_at = now
            subscriber.confirm_nonce += 1
            subscriber.first_name = name or subscriber.first_name
            subscriber.timezone = zone or subscriber.timezone
        record_consent(
            session, subscriber.id, m.ConsentKind.OPT_IN, now, source=source, ip=ip, user_agent=user_agent, wording_version=wording
        )
        subscriber_id, nonce = subscriber.id, subscriber.confirm_nonce
        recipient_name = subscriber.first_name
    send_confirmation(app, subscriber_id, address, recipient_name, nonce, now)
    return SubscribeResult("confirmation_sent", subscriber_id)


def send_confirmation(app: App, subscriber_id: int, email: str, first_name: str | None, nonce: int, now: datetime) -> None:
    from nurture.content.rendering import Recipient

    prepared = app.renderer.prepare_confirmation()
    recipient = Recipient(email=email, first_name=first_name, confirm_url=links.confirm_url(app.config, subscriber_id, nonce, now))
    # A random tail: confirmations are not deliveries, and a store reset beside an old
    # outbox must not collide with an earlier file of the same name.
    envelope = prepared.envelope(f"confirm-{subscriber_id}-{nonce}-{secrets.token_hex(4)}", recipient, {"kind": "confirmation"})
    outcomes = app.transport.send(prepared.batch([envelope]))
    failed = [outcome for outcome in outcomes if outcome.status != "sent"]
    if failed:
        raise InputError(f"the confirmation email could not be sent: {failed[0].error}")


@dataclass(frozen=True)
class ConfirmResult:
    status: str  # "confirmed" | "already_active"
    subscriber_id: int
    enrolled: int


def confirm(app: App, token: str, now: datetime, *, ip: str | None = None, user_agent: str | None = None, source: str = "cli") -> ConfirmResult:
    claim = read_confirm_token(app.config.secrets.verification_keys(), token, now)
    with transaction(app.engine) as session:
        subscriber = session.get(m.Subscriber, claim.subscriber_id)
        if subscriber is None:
            raise TokenError("this confirmation link is no longer valid: please sign up again")
        if subscriber.confirm_nonce != claim.nonce:
            raise TokenError("this confirmation link was replaced by a newer one: use the most recent email, or sign up again")
        if subscriber.status == m.SubscriberStatus.ACTIVE:
            return ConfirmResult("already_active", subscriber.id, 0)
        if subscriber.status != m.SubscriberStatus.PENDING:
            raise TokenError("this confirmation link is no longer valid: please sign up again")
        subscriber.status = m.SubscriberStatus.ACTIVE
        subscriber.confirmed_at = now
        subscriber.status_changed_at = now
        # The confirmation is of the opt-in it answers: record the wording that opt-in showed.
        wording = session.scalar(
            select(m.ConsentEvent.wording_version)
            .where(m.ConsentEvent.subscriber_id == subscriber.id, m.ConsentEvent.kind == m.ConsentKind.OPT_IN)
            .order_by(m.ConsentEvent.id.desc())
            .limit(1)
        )
        record_consent(
            session, subscriber.id, m.ConsentKind.CONFIRM, now, source=source, ip=ip, user_agent=user_agent, wording_version=wording
        )
        session.execute(
            delete(m.Suppression).where(
                m.Suppression.address_hash.in_([address_hash(key, subscriber.email_key) for key in app.config.secrets.verification_keys()])
            )
        )
        enrolled = enroll(session, app, [subscriber.id], now)
        return ConfirmResult("confirmed", subscriber.id, enrolled)


# ---------------------------------------------------------------- leaving


def unsubscribe(
    app: App,
    subscriber_id: int,
    now: datetime,
    *,
    source: str,
    stream: str | None = None,
    reason: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """Stop all marketing mail to this subscriber. Idempotent: returns False if nothing changed.

    One list, one switch: leaving from any email stops the series and newsletters alike,
    which is what people expect from a small practice's mail.
    """
    with transaction(app.engine) as session:
        subscriber = session.get(m.Subscriber, subscriber_id)
        if subscriber is None:
            return False
        last_kind = session.scalar(
            select(m.ConsentEvent.kind).where(m.ConsentEvent.subscriber_id == subscriber.id).order_by(m.ConsentEvent.id.desc()).limit(1)
        )
        if subscriber.status == m.SubscriberStatus.UNSUBSCRIBED or last_kind == m.ConsentKind.UNSUBSCRIBE:
            return False
        if subscriber.status in (m.SubscriberStatus.ACTIVE, m.SubscriberStatus.PENDING):
            subscriber.status = m.SubscriberStatus.UNSUBSCRIBED
            subscriber.status_changed_at = now
        # A bounced or complained status stays (it is the stronger block), but the
        # person's own withdrawal is still part of their consent record.
        detail = "; ".join(part for part in (f"from {stream}" if stream else None, reason) if part) or None
        record_consent(session, subscriber.id, m.ConsentKind.UNSUBSCRIBE, now, source=source, ip=ip, user_agent=user_agent, detail=detail)
        stop_enrollments(session, [subscriber.id], now)
        return True


def unsubscribe_email(app: App, email: str, now: datetime, *, reason: str | None = None, source: str = "cli") -> bool:
    with transaction(app.engine) as session:
        subscriber_id = get_by_email(session, email).id
    return unsubscribe(app, subscriber_id, now, source=source, reason=reason)


def suppress(session: Session, subscriber_ids: Sequence[int], kind: m.ConsentKind, now: datetime, *, source: str, detail: str | None = None) -> int:
    """Provider said bounce / complaint / unsubscribe: stop mail at once. Returns how many changed."""
    status = {m.ConsentKind.BOUNCE: m.SubscriberStatus.BOUNCED, m.ConsentKind.COMPLAINT: m.SubscriberStatus.COMPLAINED, m.ConsentKind.UNSUBSCRIBE: m.SubscriberStatus.UNSUBSCRIBED}[kind]
    # A complaint outranks everything else and is recorded even for someone who
    # already left; a bounce or a provider unsubscribe only changes someone reachable.
    if kind == m.ConsentKind.COMPLAINT:
        replaceable = [m.SubscriberStatus.ACTIVE, m.SubscriberStatus.PENDING, m.SubscriberStatus.UNSUBSCRIBED, m.SubscriberStatus.BOUNCED]
    else:
        replaceable = [m.SubscriberStatus.ACTIVE, m.SubscriberStatus.PENDING]
    changed = 0
    for chunk in chunks(list(set(subscriber_ids)), 500):
        rows = session.scalars(
            select(m.Subscriber).where(m.Subscriber.id.in_(chunk), m.Subscriber.status.in_(replaceable))
        ).all()
        for subscriber in rows:
            subscriber.status = status
            subscriber.status_changed_at = now
            record_consent(session, subscriber.id, kind, now, source=source, detail=detail)
        stop_enrollments(session, [row.id for row in rows], now)
        changed += len(rows)
    return changed


def forget(app: App, email: str, now: datetime) -> None:
    """Erase the person; keep only a keyed hash of the address so they stay suppressed."""
    secret = app.config.secrets.require_secret_key()
    with transaction(app.engine) as session:
        subscriber = get_by_email(session, email)
        digest = address_hash(secret, subscriber.email_key)
        if session.get(m.Suppression, digest) is None:
            session.add(m.Suppression(address_hash=digest, reason="erased", created_at=now))
        # Deliveries keep anonymous counts for stats (subscriber_id set NULL); the rest cascades.
        session.execute(update(m.Delivery).where(m.Delivery.subscriber_id == subscriber.id).values(subscriber_id=None))
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
            delete(m.SubscriberTag).where(m.SubscriberTag.subscriber_id == subscriber.id, m.SubscriberTag.tag == name)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- reading


def list_subscribers(app: App, *, status: str | None = None, tag_name: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    with reading(app.engine) as session:
        query = select(m.Subscriber).order_by(m.Subscriber.id)
        if status:
            query = query.where(m.Subscriber.status == status)
        if tag_name:
            query = query.join(m.SubscriberTag).where(m.SubscriberTag.tag == clean_tag(tag_name))
        if limit:
            query = query.limit(limit)
        return [
            {
                "id": row.id,
                "email": row.email,
                "first_name": row.first_name,
                "timezone": row.timezone,
                "status": row.status,
                "created_at": row.created_at,
            }
            for row in session.scalars(query)
        ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export(app: App, email: str) -> dict[str, Any]:
    """Everything held about one person, for a subject access request."""
    with reading(app.engine) as session:
        subscriber = get_by_email(session, email)
        wordings = {row.version: row.wording for row in session.scalars(select(m.ConsentWording))}
        events = session.scalars(
            select(m.ConsentEvent).where(m.ConsentEvent.subscriber_id == subscriber.id).order_by(m.ConsentEvent.id)
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
                select(m.ProviderEvent).where(m.ProviderEvent.delivery_id.in_(delivery_ids)).order_by(m.ProviderEvent.id)
            ).all()
            if delivery_ids
            else []
        )
        tags = session.scalars(select(m.SubscriberTag.tag).where(m.SubscriberTag.subscriber_id == subscriber.id)).all()
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
                    "next_due_at": _iso(row.next_due_at),
                    "enrolled_at": _iso(row.enrolled_at),
                }
                for row in enrollments
            ],
            "deliveries": [
                {
                    "stream": row.stream,
                    "step": row.step,
                    "status": row.status,
                    "claimed_at": _iso(row.claimed_at),
                    "finished_at": _iso(row.finished_at),
                    "provider_message_id": row.provider_message_id,
                    "error": row.error,
                }
                for row in deliveries
            ],
            "provider_events": [
                {"kind": row.kind, "event": row.raw_event, "occurred_at": _iso(row.occurred_at), "detail": row.detail}
                for row in provider_events
            ],
        }
