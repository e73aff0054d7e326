"""The tables. The Alembic migrations must produce exactly this schema (a test proves it).

Times are stored as naive UTC (`UtcDateTime` converts at the boundary) so that
SQLite and PostgreSQL compare and sort them the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in Python, naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# Integer ids that are BIGINT on PostgreSQL and INTEGER (rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}

    if TYPE_CHECKING:
        # SQLAlchemy types __table__ as any FromClause (a model may map a join or a
        # select). Every model here declares its own columns, so it is a Table.
        __table__: ClassVar[Table]


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


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"  # in the series: the next step is due at next_due_at
    COMPLETED = "completed"
    STOPPED = "stopped"


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "campaign"),
        Index("ix_enrollments_due", "status", "next_due_at", "id"),  # claimed in this order
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(Id, ForeignKey("subscribers.id", ondelete="CASCADE"))
    campaign: Mapped[str] = mapped_column(String(100))
    next_step: Mapped[int] = mapped_column(Integer)  # 1-based position of the next step in `version`
    # The place that counts: the key of the next step and the published version it is
    # taken from. NULL only on rows from before series versions, until version 1 exists.
    next_step_key: Mapped[str | None] = mapped_column(String(120))
    version: Mapped[int | None] = mapped_column(Integer)
    next_due_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20))
    enrolled_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CampaignState(Base):
    """Owner's switches for a campaign defined in campaigns/<slug>/."""

    __tablename__ = "campaign_states"

    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class SeriesVersion(Base):
    """One published version of a series: what the sending pass sends, never the files.

    `snapshot` holds the campaign.yaml settings and, per step in order, its key, file,
    delay and the email as approved (see nurture.series.versions).
    """

    __tablename__ = "series_versions"
    __table_args__ = (UniqueConstraint("campaign", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per campaign
    published_at: Mapped[datetime]
    snapshot: Mapped[dict[str, Any]]


class DeliveryStatus(StrEnum):
    CLAIMED = "claimed"  # written before the transport; unknown outcome while it stays so
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # consent or a stop tag changed between claim and send


def _step_key_of_unkeyed_row(context: Any) -> str:
    """The key of a delivery written without one (code or tests from before step keys).

    A newsletter's is fixed; a series step gets the placeholder "#<position>" that the
    migration gives old rows, which version 1 of the series and the stats resolve.
    """
    params = context.get_current_parameters()
    if params.get("newsletter_id") is not None or str(params.get("stream") or "").startswith("newsletter:"):
        return "newsletter"
    return f"#{params.get('step')}"


class Delivery(Base):
    """One email to one subscriber. The unique key is what makes sends exactly-once.

    `stream` is a campaign slug or "newsletter:<id>"; `step_key` the series step's stable
    key (a newsletter's is fixed), so each person gets each key of a stream at most
    once whatever the owner edits. `step` is the step's position in `series_version`,
    kept for reading. subscriber_id is nulled when a person is forgotten, keeping
    anonymous counts for stats.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "stream", "step_key"),
        Index("ix_deliveries_status_claimed_at", "status", "claimed_at"),
        Index("ix_deliveries_subscriber_claimed_at", "subscriber_id", "claimed_at"),
        # The week's and the day's counts (Today, alerts, the summary) without reading all history.
        Index("ix_deliveries_status_finished_at", "status", "finished_at"),
        # One newsletter's results and audience without reading every delivery.
        Index("ix_deliveries_newsletter_id", "newsletter_id"),
        Index("ix_deliveries_message_key", "message_key", unique=True),
        # Room for the handed-over mark's new row versions beside the old (migration 0007v).
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(Id, ForeignKey("subscribers.id", ondelete="SET NULL"))
    stream: Mapped[str] = mapped_column(String(120))
    step: Mapped[int] = mapped_column(Integer)
    step_key: Mapped[str] = mapped_column(String(120), default=_step_key_of_unkeyed_row)
    series_version: Mapped[int | None] = mapped_column(
        Integer
    )  # the version it was sent from; NULL for newsletters
    newsletter_id: Mapped[int | None] = mapped_column(Id, ForeignKey("newsletters.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))
    worker: Mapped[str | None] = mapped_column(String(80))
    claimed_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    provider_message_id: Mapped[str | None] = mapped_column(String(200), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    # The kinds of provider event this delivery had, kept as bits (RETIRED_BITS) once the
    # retention pass has deleted the events themselves: the results pages still count them.
    retired_events: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the provider echoes back in its events instead of the row id: random, never
    # reused (a released row's id may be handed out again on SQLite). NULL on rows
    # claimed before migration 0007t, whose events still carry the numeric id.
    message_key: Mapped[str | None] = mapped_column(String(40))
    # The transport the email was handed to (its `facts_for` say how long its events may
    # lag), and when (the pass's clock): written just before the request goes out.
    provider: Mapped[str | None] = mapped_column(String(20))
    submitted_at: Mapped[datetime | None]


class NewsletterStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"


class EventKind(StrEnum):
    """Provider events in one neutral vocabulary (ProviderEvent.kind), whoever the provider.

    Each provider's event module maps its own names onto these; settling, suppression,
    stats and alerts read only these. A bounce is hard (the address is gone: suppress),
    soft (try again later: a full mailbox, a block) or undetermined (the provider could
    not tell); "rejected" means the provider refused to send the email at all.
    """

    ACCEPTED = "accepted"  # the provider took the email (SendGrid processed, SES Send)
    DELIVERED = "delivered"
    DEFERRED = "deferred"  # delayed, still trying
    BOUNCED_HARD = "bounced_hard"
    BOUNCED_SOFT = "bounced_soft"
    BOUNCED_UNDETERMINED = "bounced_undetermined"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    REJECTED = "rejected"  # the provider would not send it (SendGrid dropped, SES Reject)
    OPENED = "opened"
    CLICKED = "clicked"
    RESUBSCRIBED = "resubscribed"
    UNKNOWN = "unknown"

    # Names from before the neutral vocabulary, as aliases of the same kinds: code written
    # against them reads the neutral values (migration 0007p renamed the stored rows).
    PROCESSED = "accepted"
    BOUNCED = "bounced_hard"
    BLOCKED = "bounced_soft"
    DROPPED = "rejected"

    @classmethod
    def from_stored(cls, value: str) -> EventKind:
        """A stored kind, old names included (a row written before migration 0007p)."""
        try:
            return cls(LEGACY_EVENT_KINDS.get(value, value))
        except ValueError:
            return cls.UNKNOWN


# What a delivery keeps of its deleted events (Delivery.retired_events): one bit per count
# the results pages show.
RETIRED_BITS = {
    "delivered": 1,
    "opened": 2,
    "clicked": 4,
    "bounced": 8,
    "complained": 16,
    "unsubscribed": 32,
}

# Stored kinds before the neutral vocabulary -> their neutral names (migration 0007p).
LEGACY_EVENT_KINDS = {
    "processed": "accepted",
    "bounced": "bounced_hard",
    "blocked": "bounced_soft",
    "dropped": "rejected",
}
# Every kind that says the email did not reach the person (stats' "bounced").
BOUNCE_KINDS = (
    EventKind.BOUNCED_HARD,
    EventKind.BOUNCED_SOFT,
    EventKind.BOUNCED_UNDETERMINED,
    EventKind.REJECTED,
)


class Newsletter(Base):
    __tablename__ = "newsletters"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source_file: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(200))
    # The rendered-and-linted content at scheduling time, so later edits of the file
    # do not change what was approved.
    content: Mapped[dict[str, Any]]
    segment_tag: Mapped[str | None] = mapped_column(String(64))
    # Local wall-clock time; `timezone_mode` says whose zone it is read in.
    send_at_local: Mapped[str] = mapped_column(String(19))
    timezone_mode: Mapped[str] = mapped_column(String(20))
    first_due_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class NewsletterZone(Base):
    """A zone (a subscribers.timezone value, "" for none) in which a newsletter has reached everyone.

    Written once a zone's time has come and nobody eligible there is left without a
    delivery, so later passes skip it without looking; released claims delete the rows.
    """

    __tablename__ = "newsletter_zones"

    newsletter_id: Mapped[int] = mapped_column(
        Id, ForeignKey("newsletters.id", ondelete="CASCADE"), primary_key=True
    )
    timezone: Mapped[str] = mapped_column(String(64), primary_key=True)
    finished_at: Mapped[datetime]


class ProviderEvent(Base):
    __tablename__ = "provider_events"
    __table_args__ = (
        Index("ix_provider_events_delivery_kind", "delivery_id", "kind"),
        # "Has the webhook been heard from today?" and the alert rates over 7 days.
        Index("ix_provider_events_received_at", "received_at"),
        Index("ix_provider_events_kind_occurred_at", "kind", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    provider_event_id: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(30))  # our normalized kind
    raw_event: Mapped[str] = mapped_column(String(40))  # the provider's own name for it
    delivery_id: Mapped[int | None] = mapped_column(Id, ForeignKey("deliveries.id", ondelete="SET NULL"))
    stream: Mapped[str | None] = mapped_column(String(120))
    step: Mapped[int | None] = mapped_column(Integer)
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    detail: Mapped[str | None] = mapped_column(String(500))
    # The event named a delivery but another address than its recipient's: stored, tied
    # to nothing, changed nothing (counted on the console's deliveries page).
    address_mismatch: Mapped[bool | None]


class Suppression(Base):
    """Addresses that must never be mailed or re-imported, kept only as a keyed hash."""

    __tablename__ = "suppressions"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]


class OwnerNotice(Base):
    """Each weekly summary and alert sent to the owner, so that it goes out once.

    The row is written before the email (like a delivery's claim): two daemons cannot
    both send the same week's summary, or two alerts on one day.
    """

    __tablename__ = "owner_notices"
    __table_args__ = (UniqueConstraint("kind", "period"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # "summary" or "alert"
    period: Mapped[str] = mapped_column(
        String(40)
    )  # the summary's Monday, or the alert's day (practice time)
    sent_at: Mapped[datetime]
    detail: Mapped[str | None] = mapped_column(String(500))  # what an alert was about; never an address


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


class HoldKind(StrEnum):
    NEWSLETTERS = "newsletters"  # spam complaints past the stop line: newsletters wait
    ALL = "all"  # bounces past the pause line: the sending pass sends nothing


class SendingHold(Base):
    """Sending stopped by an alert until the owner says to go on (nurture.sending.holds)."""

    __tablename__ = "sending_holds"
    __table_args__ = (
        # One hold of a kind in place at a time, even when several workers' alerts race.
        Index(
            "uq_sending_holds_kind_in_place",
            "kind",
            unique=True,
            sqlite_where=text("lifted_at IS NULL"),
            postgresql_where=text("lifted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(500))  # in words, with the numbers; never an address
    placed_at: Mapped[datetime]
    lifted_at: Mapped[datetime | None] = mapped_column(index=True)
    lifted_by: Mapped[str | None] = mapped_column(String(320))  # the owner's address at the time


class SignupAttempt(Base):
    """Signup attempts per client in the current window: the web form's rate limit,
    shared by every process serving it. Keyed by a keyed hash of the client's IP
    (never the IP); rows whose window has passed are deleted as new attempts come."""

    __tablename__ = "signup_attempts"

    client_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer)


# ---------------------------------------------------------------- the owner console


class Owner(Base):
    """A person who may use the web console. Only a hash of the password is kept; the code
    app's secret only sealed (nurture.at_rest), so a copy of the database holds neither."""

    __tablename__ = "owners"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, with its parameters and salt
    totp_sealed: Mapped[str | None] = mapped_column(String(255))
    # The time step of the last code accepted: a code works once, even within its 30 seconds.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # A code app being set up in the console: it replaces totp_sealed once a code from it is typed.
    totp_pending_sealed: Mapped[str | None] = mapped_column(String(255))
    totp_pending_at: Mapped[datetime | None]
    totp_pending_misses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]


class OwnerRecoveryCode(Base):
    """One-time codes that stand in for the code app (a lost phone). Only their SHA-256 is
    kept: each is 80 random bits, so the hash cannot be searched back."""

    __tablename__ = "owner_recovery_codes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    owner_id: Mapped[int] = mapped_column(Id, ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class OwnerInvite(Base):
    """An invitation to become an owner: a one-time link that expires. Only the SHA-256 of
    the link's token is kept; a used one stays, so a second use can be told apart."""

    __tablename__ = "owner_invites"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), index=True)
    invited_by: Mapped[str] = mapped_column(String(320))  # the inviting owner's address at the time
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class OwnerSession(Base):
    """A console login. The cookie holds the session id; the store holds only its SHA-256,
    so a copy of the database does not let anyone in."""

    __tablename__ = "owner_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[int] = mapped_column(Id, ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(200))  # so she can tell her sessions apart


class LoginOutcome(StrEnum):
    SIGNED_IN = "signed_in"
    FAILED = "failed"  # a wrong address, password or (when none is set up) anything
    WRONG_CODE = "wrong_code"  # the right password with a wrong code: counted apart (brute force)


class LoginAttempt(Base):
    """Each console login attempt, for throttling across processes. `account` is a hash of
    the address typed, whether or not an owner has it; `ip` the network it came from
    (nurture.owners.throttle.network_of)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_at", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime]
    account: Mapped[str] = mapped_column(String(64), index=True)
    ip: Mapped[str] = mapped_column(String(45), index=True)
    outcome: Mapped[str] = mapped_column(String(20))  # a LoginOutcome


class OwnerAuditEntry(Base):
    """Every owner action. Append-only: the migration installs triggers that refuse UPDATE
    and DELETE. Subscribers are named by id, never by address, so forgetting someone
    leaves nothing personal here."""

    __tablename__ = "owner_audit"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    owner: Mapped[str] = mapped_column(String(320))  # the owner's address at the time
    action: Mapped[str] = mapped_column(String(60))
    detail: Mapped[str | None] = mapped_column(String(400))
    ip: Mapped[str | None] = mapped_column(String(45))


class SendPassRecord(Base):
    """When each sending pass ran and how it ended, for the console's today page."""

    __tablename__ = "send_passes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime] = mapped_column(index=True)
    sent: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    stuck: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(300))  # "ok" or what went wrong, in words


class SavedSetting(Base):
    """A setting the owner changed on the console's Settings page, by its dotted key
    ("delivery.send_window.start"). It overrides config.yaml; an environment variable
    overrides both (nurture.config.overrides says how they are combined)."""

    __tablename__ = "saved_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    saved_at: Mapped[datetime]
    saved_by: Mapped[str] = mapped_column(String(320))  # the owner's address at the time


class ResultDayState(StrEnum):
    WORKING = "working"  # claimed by a summarizer, not done yet: read live
    DONE = "done"  # its counts are in result_counts and result_sends
    DIRTY = "dirty"  # something changed after: read live until summarized again


class ResultDay(Base):
    """A UTC day of sends whose results are kept summarized (nurture.reporting.result_days),
    so the Results pages do not read every delivery and event ever stored."""

    __tablename__ = "result_days"

    day: Mapped[datetime] = mapped_column(primary_key=True)  # the day's UTC midnight
    state: Mapped[str] = mapped_column(String(10), index=True)
    summarized_at: Mapped[datetime]


class ResultCount(Base):
    """One email's counts for the deliveries sent on one summarized day (see stats.step_stats)."""

    __tablename__ = "result_counts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    day: Mapped[datetime] = mapped_column(index=True)
    stream: Mapped[str] = mapped_column(String(120))
    step_key: Mapped[str] = mapped_column(String(120))
    series_version: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    newsletter_id: Mapped[int | None] = mapped_column(Id)
    sent: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[int] = mapped_column(Integer)
    opened: Mapped[int] = mapped_column(Integer)
    clicked: Mapped[int] = mapped_column(Integer)
    bounced: Mapped[int] = mapped_column(Integer)
    complained: Mapped[int] = mapped_column(Integer)
    unsubscribed: Mapped[int] = mapped_column(Integer)


class ResultSends(Base):
    """Sends of one summarized day per quarter hour (UTC), series and newsletters apart."""

    __tablename__ = "result_sends"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    day: Mapped[datetime] = mapped_column(index=True)
    stream: Mapped[str] = mapped_column(String(120))
    quarter_start: Mapped[datetime]
    newsletter: Mapped[bool] = mapped_column(Boolean)
    sent: Mapped[int] = mapped_column(Integer)


class RateSchedule(Base):
    """One provider's sending timeline, shared by every worker on this store
    (nurture.providers.rate_limit): the moment its next free slot starts."""

    __tablename__ = "rate_schedules"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float)  # seconds since the epoch
