"""The consent record: wording versions, consent events, suppression.

Every consent change appends a ConsentEvent; nothing here updates or deletes one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.errors import InputError
from nurture.series.enrollment import stop_enrollments
from nurture.store import models as m
from nurture.store.db import chunks
from nurture.store.statements import statements_for
from nurture.tokens import address_hash


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
    return any(
        session.get(m.Suppression, address_hash(key, email_key)) is not None
        for key in app.config.secrets.verification_keys()
    )


def suppress(
    session: Session,
    subscriber_ids: Sequence[int],
    kind: m.ConsentKind,
    now: datetime,
    *,
    source: str,
    detail: str | None = None,
) -> int:
    """Provider said bounce / complaint / unsubscribe: stop mail at once. Returns how many changed."""
    status = {
        m.ConsentKind.BOUNCE: m.SubscriberStatus.BOUNCED,
        m.ConsentKind.COMPLAINT: m.SubscriberStatus.COMPLAINED,
        m.ConsentKind.UNSUBSCRIBE: m.SubscriberStatus.UNSUBSCRIBED,
    }[kind]
    # A complaint outranks everything else and is recorded even for someone who
    # already left; a bounce or a provider unsubscribe only changes someone reachable.
    if kind == m.ConsentKind.COMPLAINT:
        replaceable = [
            m.SubscriberStatus.ACTIVE,
            m.SubscriberStatus.PENDING,
            m.SubscriberStatus.UNSUBSCRIBED,
            m.SubscriberStatus.BOUNCED,
        ]
    else:
        replaceable = [m.SubscriberStatus.ACTIVE, m.SubscriberStatus.PENDING]
    # Found by id; the status only sorts them out. Through the status index it would be
    # every active reader, walked for each webhook batch with a bounce.
    current = statements_for(session.connection()).unindexed(m.Subscriber.status)
    changed = 0
    for chunk in chunks(list(set(subscriber_ids)), 500):
        rows = session.scalars(
            select(m.Subscriber).where(m.Subscriber.id.in_(chunk), current.in_(replaceable))
        ).all()
        for subscriber in rows:
            subscriber.status = status
            subscriber.status_changed_at = now
            record_consent(session, subscriber.id, kind, now, source=source, detail=detail)
        stop_enrollments(session, [row.id for row in rows], now)
        changed += len(rows)
    return changed
