"""The people on the list: subscribers and their tags, the consent record, suppressed
addresses, the signup form's rate limit, and re-permission (asks and daily reviews)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from nurture.store.models.base import Base, Id


class SubscriberStatus(StrEnum):
    """Only ACTIVE may receive marketing email."""

    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


SUBSCRIBER_STATUSES = tuple(SubscriberStatus)


class Subscriber(Base):
    __tablename__ = "subscribers"
    # A subscriber-time newsletter claims one zone at a time, in id order
    # (nurture/sending/newsletter_zones.py).
    __table_args__ = (Index("ix_subscribers_status_timezone_id", "status", "timezone", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # The address as given (normalized by email-validator) and its case-folded key.
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), index=True)
    source: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    status_changed_at: Mapped[datetime]
    # Bumped on every new opt-in so that an older confirmation link stops working.
    confirm_nonce: Mapped[int] = mapped_column(Integer, default=0)
    # The reader's own choices, from the preference center (nurture.audience.preferences).
    # Server defaults too, so that rows written by any statement get "everything, as it comes".
    series_off: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    newsletter_off: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    frequency: Mapped[str] = mapped_column(String(10), default="daily", server_default="daily")
    # Nothing is sent before this instant (a pause); the sending pass reads it at claim and at send.
    paused_until: Mapped[datetime | None]
    # The last visit to the preference center: a sign of life for re-permission
    # (nurture.audience.repermission).
    preferences_seen_at: Mapped[datetime | None]


class Frequency(StrEnum):
    """How often at most a reader wants marketing email."""

    DAILY = "daily"  # as it comes, up to delivery.max_emails_per_day
    WEEKLY = "weekly"  # at most one in any seven days


class SubscriberTag(Base):
    __tablename__ = "subscriber_tags"

    subscriber_id: Mapped[int] = mapped_column(
        Id, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    created_at: Mapped[datetime]


class ConsentKind(StrEnum):
    OPT_IN = "opt_in"
    CONFIRM = "confirm"
    IMPORT = "import"
    UNSUBSCRIBE = "unsubscribe"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    BOOKED = "booked"  # the booking webhook ended the series; no booking details are kept
    # The owner added the person in the console, with the evidence of a consent given elsewhere
    # (where, when, and the words they agreed to).
    ADDED = "added"
    PREFERENCE = "preference"  # the reader changed a choice in the preference center (detail: what)
    RECONFIRM = "reconfirm"  # the reader answered a re-permission email: keep me on the list
    SUNSET_PAUSE = "sunset_pause"  # no answer to a re-permission email: paused (sunset.then: pause)


class ConsentEvent(Base):
    """Append-only: the migration installs triggers that refuse UPDATE."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        Id, ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime]
    source: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    wording_version: Mapped[str | None] = mapped_column(ForeignKey("consent_wordings.version"))
    detail: Mapped[str | None] = mapped_column(String(400))


class ConsentWording(Base):
    """Each version of the consent wording, so a record can show what was shown."""

    __tablename__ = "consent_wordings"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    wording: Mapped[str] = mapped_column(Text)
    first_used_at: Mapped[datetime]


class Suppression(Base):
    """Addresses that must never be mailed or re-imported, kept only as a keyed hash."""

    __tablename__ = "suppressions"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]


class SignupAttempt(Base):
    """Signup attempts per client in the current window: the web form's rate limit,
    shared by every process serving it. Keyed by a keyed hash of the client's IP
    (never the IP); rows whose window has passed are deleted as new attempts come."""

    __tablename__ = "signup_attempts"

    client_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer)


class AskOutcome(StrEnum):
    """How a re-permission ask ended (NULL while it is open)."""

    KEPT = "kept"  # the reader pressed "keep me on the list", or showed another sign of life
    PAUSED = "paused"  # no answer in time: paused (sunset.then: pause)
    UNSUBSCRIBED = "unsubscribed"  # no answer in time: unsubscribed with reason sunset
    LEFT = "left"  # unsubscribed, bounced or paused by themselves before the answer was due
    NOT_SENT = "not sent"  # the email could not be delivered (failed or skipped)


class RepermissionAsk(Base):
    """One "still want these?" question to a quiet reader (nurture.audience.repermission).

    The email itself is a delivery of stream "repermission:ask" with step key "ask-<round>",
    so it goes out at most once per round, like any email; this row says whom to ask and
    how it ended."""

    __tablename__ = "repermission_asks"
    __table_args__ = (UniqueConstraint("subscriber_id", "round"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        Id, ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    round: Mapped[int] = mapped_column(Integer)  # 1 for the first ask of this person, then 2, ...
    created_at: Mapped[datetime]  # when the review found them quiet
    quiet_since: Mapped[datetime]  # their last sign of life then
    outcome: Mapped[str | None] = mapped_column(String(20), index=True)
    decided_at: Mapped[datetime | None]


class SunsetReview(Base):
    """The day (practice time) of each re-permission review, so that it runs once a day."""

    __tablename__ = "sunset_reviews"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    ran_at: Mapped[datetime]
