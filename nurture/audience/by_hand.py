"""One person added by the owner, with the evidence of a consent given elsewhere: where
(a paper form at an open day), when, and the words they agreed to.

The same rules as an import (nurture.audience.importer): an address erased at the
person's request is never added again, someone who left (unsubscribed, bounced or
complained) is not brought back, someone already subscribed is left as they are, and
someone who signed up but never confirmed becomes subscribed on the evidence given.
The words shown are kept as a consent wording of their own, so the person's record
shows exactly what they agreed to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from nurture.addresses import clean_first_name, clean_timezone, normalize_email
from nurture.app import App
from nurture.audience.consent import is_suppressed, record_consent
from nurture.errors import InputError
from nurture.series.enrollment import enroll
from nurture.store import models as m
from nurture.store.db import transaction

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_WORDING = 4000
SOURCE = "added by hand"
LEFT = {
    m.SubscriberStatus.UNSUBSCRIBED: "unsubscribed",
    m.SubscriberStatus.BOUNCED: "had emails bounce",
    m.SubscriberStatus.COMPLAINED: "reported an email as spam",
}


@dataclass(frozen=True)
class Added:
    status: str  # "added" | "confirmed" (was waiting to confirm) | "already" (nothing changed)
    subscriber_id: int
    enrolled: int = 0


def wording_version(text: str) -> str:
    """The version a wording is kept under: the same words, the same version."""
    return "shown-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def add_person(
    app: App,
    email: str,
    now: datetime,
    *,
    consented_at: datetime,
    source: str,
    wording: str,
    first_name: str | None = None,
    timezone: str | None = None,
) -> Added:
    """Add `email` as subscribed on the evidence given. InputError, with nothing changed, when the
    evidence is missing or the address may not be added."""
    address, key = normalize_email(email)
    name = clean_first_name(first_name)
    zone = clean_timezone(timezone)
    where = " ".join(source.split())
    words = wording.strip().replace("\r\n", "\n")
    if not where:
        raise InputError("say where this person agreed (for example: paper form at the spring open day)")
    if len(where) > 200:
        raise InputError("keep where they agreed under 200 characters")
    if len(words) < 10:
        raise InputError("give the words the person agreed to, as they were shown")
    if len(words) > MAX_WORDING:
        raise InputError(f"keep the words they agreed to under {MAX_WORDING} characters")
    if consented_at.tzinfo is None:
        raise InputError("the date they agreed needs a time zone")
    if consented_at > now:
        raise InputError("the date they agreed is in the future")
    if consented_at < EARLIEST:
        raise InputError("the date they agreed is before 2000: give the date they actually agreed")
    version = wording_version(words)
    with transaction(app.engine) as session:
        if is_suppressed(session, app, key):
            raise InputError(
                "this address was erased at the person's request, so it cannot be added again; "
                "they are welcome to sign up again themselves"
            )
        person = session.scalar(select(m.Subscriber).where(m.Subscriber.email_key == key))
        if person is not None and person.status == m.SubscriberStatus.ACTIVE:
            return Added("already", person.id)
        if person is not None and person.status in LEFT:
            raise InputError(
                f"this person {LEFT[m.SubscriberStatus(person.status)]}, and adding them back by hand "
                "is not allowed; they are welcome to sign up again themselves"
            )
        if session.get(m.ConsentWording, version) is None:
            session.add(m.ConsentWording(version=version, wording=words, first_used_at=now))
        if person is None:
            person = m.Subscriber(
                email=address,
                email_key=key,
                first_name=name,
                timezone=zone,
                status=m.SubscriberStatus.ACTIVE,
                source=SOURCE,
                created_at=now,
                confirmed_at=now,
                status_changed_at=now,
                confirm_nonce=0,
            )
            session.add(person)
            status = "added"
        else:  # waiting to confirm: the evidence given counts as their consent
            person.status = m.SubscriberStatus.ACTIVE
            person.confirmed_at = person.confirmed_at or now
            person.status_changed_at = now
            person.first_name = person.first_name or name
            person.timezone = person.timezone or zone
            status = "confirmed"
        session.flush()
        record_consent(
            session,
            person.id,
            m.ConsentKind.ADDED,
            now,
            occurred_at=consented_at,
            source=where,
            wording_version=version,
            detail="added by the owner in the console",
        )
        enrolled = enroll(session, app, [person.id], now)
        return Added(status, person.id, enrolled)
