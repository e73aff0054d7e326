"""Newsletters, and the zones in which one has reached everyone."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from nurture.store.models.base import Base, Id


class NewsletterStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"


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
