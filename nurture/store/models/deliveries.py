"""Deliveries (one email to one person) and what providers report of them, in one
neutral vocabulary of event kinds."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.store.models.base import Base, Id


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
    # Shown, never looked up (events find their delivery by message_key): no index (0007y).
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    # The kinds of provider event this delivery has had, as bits (EVENT_BITS), set as each
    # event is stored and kept after the retention pass deletes the events: the Results
    # count from them without reading the events (migration 0007x).
    event_bits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the provider echoes back in its events instead of the row id: random, never
    # reused (a released row's id may be handed out again on SQLite). NULL on rows
    # claimed before migration 0007t, whose events still carry the numeric id.
    message_key: Mapped[str | None] = mapped_column(String(40))
    # The transport the email was handed to (its `facts_for` say how long its events may
    # lag), and when (the pass's clock): written just before the request goes out.
    provider: Mapped[str | None] = mapped_column(String(20))
    submitted_at: Mapped[datetime | None]


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

# The kinds of event a delivery has had (Delivery.event_bits): one bit per count the
# Results show. Fixed: stored rows hold them (migration 0007x writes the same numbers).
EVENT_BITS = {
    "delivered": 1,
    "opened": 2,
    "clicked": 4,
    "bounced": 8,
    "complained": 16,
    "unsubscribed": 32,
}
# The bit each kind of event sets; the other kinds (accepted, deferred...) set none.
EVENT_KIND_BITS = {
    EventKind.DELIVERED: EVENT_BITS["delivered"],
    EventKind.OPENED: EVENT_BITS["opened"],
    EventKind.CLICKED: EVENT_BITS["clicked"],
    EventKind.COMPLAINED: EVENT_BITS["complained"],
    EventKind.UNSUBSCRIBED: EVENT_BITS["unsubscribed"],
    **{kind: EVENT_BITS["bounced"] for kind in BOUNCE_KINDS},
}


class ProviderEvent(Base):
    __tablename__ = "provider_events"
    __table_args__ = (
        Index("ix_provider_events_delivery_kind", "delivery_id", "kind"),
        # "Has the webhook been heard from today?" and the alert rates over 7 days.
        Index("ix_provider_events_received_at", "received_at"),
        Index("ix_provider_events_kind_occurred_at", "kind", "occurred_at"),
        # The deliveries page counts mismatched events on every view: a handful among
        # millions, so only they are indexed (migration 0007w). SQLite uses a partial index
        # only for a query whose condition is written the same way, hence one per dialect.
        Index(
            "ix_provider_events_address_mismatch",
            "address_mismatch",
            sqlite_where=text("address_mismatch IS 1"),
            postgresql_where=text("address_mismatch IS TRUE"),
        ),
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
