"""Joining and leaving: double opt-in, the confirmation email, confirming, unsubscribing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select

from nurture import links
from nurture.addresses import clean_first_name, clean_timezone, normalize_email
from nurture.app import App
from nurture.audience.consent import ensure_wording, record_consent
from nurture.audience.people import get_by_email
from nurture.content.prepared import Recipient
from nurture.errors import InputError, TokenError
from nurture.sending.one_email import send_now
from nurture.series.enrollment import enroll, stop_enrollments
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.store.summaries import mark_days_dirty
from nurture.tokens import address_hash, read_confirm_token


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
            session,
            subscriber.id,
            m.ConsentKind.OPT_IN,
            now,
            source=source,
            ip=ip,
            user_agent=user_agent,
            wording_version=wording,
        )
        subscriber_id, nonce = subscriber.id, subscriber.confirm_nonce
        recipient_name = subscriber.first_name
    send_confirmation(app, subscriber_id, address, recipient_name, nonce, now)
    return SubscribeResult("confirmation_sent", subscriber_id)


def send_confirmation(
    app: App, subscriber_id: int, email: str, first_name: str | None, nonce: int, now: datetime
) -> None:
    recipient = Recipient(
        email=email,
        first_name=first_name,
        confirm_url=links.confirm_url(app.config, subscriber_id, nonce, now),
    )
    send_now(
        app.transport,
        app.renderer.prepare_confirmation(),
        recipient,
        kind="confirmation",
        label=f"confirm-{subscriber_id}-{nonce}",
        what="the confirmation email",
        error=InputError,
    )


@dataclass(frozen=True)
class ConfirmResult:
    status: str  # "confirmed" | "already_active"
    subscriber_id: int
    enrolled: int


def confirm(
    app: App,
    token: str,
    now: datetime,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
    source: str = "cli",
) -> ConfirmResult:
    claim = read_confirm_token(app.config.secrets.verification_keys(), token, now)
    with transaction(app.engine) as session:
        subscriber = session.get(m.Subscriber, claim.subscriber_id)
        if subscriber is None:
            raise TokenError("this confirmation link is no longer valid: please sign up again")
        if subscriber.confirm_nonce != claim.nonce:
            raise TokenError(
                "this confirmation link was replaced by a newer "
                "one: use the most recent email, or sign up again"
            )
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
            session,
            subscriber.id,
            m.ConsentKind.CONFIRM,
            now,
            source=source,
            ip=ip,
            user_agent=user_agent,
            wording_version=wording,
        )
        session.execute(
            delete(m.Suppression).where(
                m.Suppression.address_hash.in_(
                    [
                        address_hash(key, subscriber.email_key)
                        for key in app.config.secrets.verification_keys()
                    ]
                )
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
            select(m.ConsentEvent.kind)
            .where(m.ConsentEvent.subscriber_id == subscriber.id)
            .order_by(m.ConsentEvent.id.desc())
            .limit(1)
        )
        if subscriber.status == m.SubscriberStatus.UNSUBSCRIBED or last_kind == m.ConsentKind.UNSUBSCRIBE:
            return False
        if subscriber.status in (m.SubscriberStatus.ACTIVE, m.SubscriberStatus.PENDING):
            subscriber.status = m.SubscriberStatus.UNSUBSCRIBED
            subscriber.status_changed_at = now
        # A bounced or complained status stays (it is the stronger block), but the
        # person's own withdrawal is still part of their consent record.
        detail = "; ".join(part for part in (f"from {stream}" if stream else None, reason) if part) or None
        record_consent(
            session,
            subscriber.id,
            m.ConsentKind.UNSUBSCRIBE,
            now,
            source=source,
            ip=ip,
            user_agent=user_agent,
            detail=detail,
        )
        stop_enrollments(session, [subscriber.id], now)
        if stream:
            # Results credit a web unsubscribe to the person's latest email of that stream.
            credited = session.scalar(
                select(func.max(m.Delivery.claimed_at)).where(
                    m.Delivery.subscriber_id == subscriber.id,
                    m.Delivery.stream == stream,
                    m.Delivery.status == m.DeliveryStatus.SENT,
                    m.Delivery.claimed_at <= now,
                )
            )
            mark_days_dirty(session, [credited])
        return True


def unsubscribe_email(
    app: App, email: str, now: datetime, *, reason: str | None = None, source: str = "cli"
) -> bool:
    with transaction(app.engine) as session:
        subscriber_id = get_by_email(session, email).id
    return unsubscribe(app, subscriber_id, now, source=source, reason=reason)
